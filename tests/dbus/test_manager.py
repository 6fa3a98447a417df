"""org.qubes.Storage1.Manager and the ObjectManager: drivers, pools, signals."""

import os
import re
import shutil
import subprocess
import tempfile
import unittest

from storaged import (ERROR_PREFIX, MANAGER, OBJECT_MANAGER, POOL, ROOT, VOLUME, MiB, StoragedTestCase,
                      ficlone_works, opts, pool_path, volume_path)


def project_version():
    with open(os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           'meson.build')) as f:
        m = re.search(r"project\([^)]*?version\s*:\s*'([^']+)'", f.read(), re.S)
    return m.group(1)


def qubes_ifaces(ifaces):
    """The interfaces of an InterfacesAdded/GetManagedObjects entry without
    the standard org.freedesktop.DBus.* ones."""
    return {k: v for k, v in ifaces.items() if not k.startswith('org.freedesktop.DBus.')}


def without_usage(props):
    """Pool properties without the ones that follow the filesystem's fill level
    (other processes write to the same filesystem)."""
    return {k: v for k, v in props.items() if k not in ('Usage', 'UsageDetails')}


class ManagerTest(StoragedTestCase):

    # ---- Version, drivers, default pools -------------------------------------

    def test_version(self):
        version = self.get_prop(ROOT, MANAGER, 'Version')
        self.assertEqual(version, project_version())
        self.assertEqual(self.get_all(ROOT, MANAGER), {'Version': project_version()})

    def test_list_drivers(self):
        # API.md's drivers in API.md's order; the service lists those it has
        # (file and linux-kernel at least), in that order, with exactly
        # these parameter names
        api = [
            ('file', ['revisions_to_keep', 'dir_path']),
            ('file-reflink', ['revisions_to_keep', 'dir_path', 'setup_check']),
            ('lvm_thin', ['revisions_to_keep', 'volume_group', 'thin_pool']),
            ('linux-kernel', ['dir_path']),
        ]
        got = self.list_drivers()
        for entry in got:
            self.assertIn(entry, api, f'ListDrivers entry {entry} is not in API.md')
        self.assertEqual(got, [e for e in api if e in got], 'ListDrivers order differs from API.md')
        names = [n for n, _ in got]
        self.assertIn('file', names)
        self.assertIn('linux-kernel', names)

    def test_default_pools(self):
        self.assertEqual(self.list_pools(), [
            ('linux-kernel', pool_path('linux-kernel')),
            ('varlibqubes', pool_path('varlibqubes')),
        ])
        self.assertEqual(self.get_pool('varlibqubes'), pool_path('varlibqubes'))
        self.assertEqual(self.get_pool('linux-kernel'), pool_path('linux-kernel'))

        expected_driver = 'file-reflink' if ficlone_works(self.base_dir) else 'file'
        st = os.statvfs(self.base_dir)
        self.wait_prop(pool_path('varlibqubes'), POOL, 'Size', st.f_frsize * st.f_blocks)
        p = self.pprops('varlibqubes')
        self.assertEqual(p['Name'], 'varlibqubes')
        self.assertEqual(p['Driver'], expected_driver)
        self.assertConfig(p['Config'], 'varlibqubes', expected_driver,
                          {'dir_path': self.base_dir, 'revisions_to_keep': '1'})
        self.assertEqual(p['RevisionsToKeep'], 1)
        self.assertEqual(p['Size'], st.f_frsize * st.f_blocks)
        self.assertGreater(p['Usage'], 0)
        self.assertEqual(set(p['UsageDetails']), {'data_size', 'data_usage', 'provisioned'})
        self.assertEqual(p['UsageDetails']['provisioned'], p['Provisioned'])
        self.assertEqual(p['UsageDetails']['data_size'], p['Size'])
        self.assertEqual(p['UsageDetails']['data_usage'], p['Usage'])
        self.assertEqual(set(p), {'Name', 'Driver', 'Config', 'Size', 'Usage', 'UsageDetails', 'RevisionsToKeep',
                                  'Provisioned', 'UsageLimits', 'UsageState'})
        self.assertEqual(p['UsageLimits'], (90, 95))
        # the file driver's setup made its directories
        self.assertTrue(os.path.isdir(os.path.join(self.base_dir, 'appvms')))
        self.assertTrue(os.path.isdir(os.path.join(self.base_dir, 'vm-templates')))

        k = self.pprops('linux-kernel')
        self.assertEqual(k['Name'], 'linux-kernel')
        self.assertEqual(k['Driver'], 'linux-kernel')
        kconfig = dict(k['Config'])
        self.assertEqual(kconfig.pop('revisions_to_keep', '0'), '0')
        self.assertConfig(kconfig, 'linux-kernel', 'linux-kernel',
                          {'dir_path': os.path.join(self.base_dir, 'vm-kernels')})
        self.assertEqual(k['RevisionsToKeep'], 0)
        self.assertEqual(k['Size'], 0)
        self.assertEqual(k['Usage'], 0)
        self.assertEqual(k['UsageDetails'], {'provisioned': 0})
        self.assertEqual((k['Provisioned'], k['UsageState']), (0, ''))
        self.assertEqual(self.list_volumes('linux-kernel'), [])
        self.assertEqual(self.list_volumes('varlibqubes'), [])

    def test_get_pool_no_such_pool(self):
        self.assertRejected('NoSuchPool', self.get_pool, 'nosuchpool', contains='nosuchpool')

    def test_unknown_pool_object(self):
        e = self.assertDBusError(('org.freedesktop.DBus.Error.UnknownObject',
                                  'org.freedesktop.DBus.Error.UnknownMethod',
                                  'org.freedesktop.DBus.Error.UnknownInterface'),
                                 self.get_all, pool_path('nosuchpool'), POOL)
        self.assertIsNotNone(e)

    # ---- AddPool ---------------------------------------------------------------

    def test_add_file_pool(self):
        m = self.mark()
        d = os.path.join(self.pools_dir, 'p1')
        path = self.add_pool('p1', 'file', {'dir_path': d, 'revisions_to_keep': '1'},
                             opts(**{'auth.no_user_interaction': True}))
        self.assertEqual(path, pool_path('p1'))
        self.assertTrue(os.path.isdir(d))
        self.assertTrue(os.path.isdir(os.path.join(d, 'appvms')))
        self.assertTrue(os.path.isdir(os.path.join(d, 'vm-templates')))
        self.assertEqual(self.get_pool('p1'), path)
        self.assertEqual([n for n, _ in self.list_pools()], ['linux-kernel', 'p1', 'varlibqubes'])
        self.assertIn(('p1', path), self.list_pools())
        st = os.statvfs(d)
        self.wait_prop(path, POOL, 'Size', st.f_frsize * st.f_blocks)
        p = self.pprops('p1')
        self.assertEqual(p['Name'], 'p1')
        self.assertEqual(p['Driver'], 'file')
        self.assertConfig(p['Config'], 'p1', 'file', {'dir_path': d, 'revisions_to_keep': '1'})
        self.assertEqual(p['RevisionsToKeep'], 1)
        self.assertEqual(p['Size'], st.f_frsize * st.f_blocks)
        self.assertEqual(self.list_volumes('p1'), [])
        # announced with the Pool interface and its properties
        args = self.wait_signal(m, 'InterfacesAdded', ROOT, OBJECT_MANAGER, match=lambda a: a[0] == path)
        added = qubes_ifaces(args[1])
        self.assertEqual(set(added), {POOL})
        self.assertClientModel(m, path, POOL)
        # persisted in the state dir
        self.assertTrue(self.state_records(), 'nothing written to the state dir')

    def test_add_pool_existing_dir_and_defaults(self):
        d = os.path.join(self.pools_dir, 'p2')
        os.makedirs(os.path.join(d, 'appvms'))
        self.add_pool('p2', 'file', {'dir_path': d})
        p = self.pprops('p2')
        self.assertEqual(p['RevisionsToKeep'], 1)
        self.assertConfig(p['Config'], 'p2', 'file', {'dir_path': d, 'revisions_to_keep': '1'})
        self.assertTrue(os.path.isdir(os.path.join(d, 'vm-templates')))

    def test_add_pool_revisions_to_keep_0(self):
        self.add_file_pool('p0', revisions_to_keep=0)
        self.assertEqual(self.pprops('p0')['RevisionsToKeep'], 0)
        self.assertConfig(self.pprops('p0')['Config'], 'p0', 'file',
                          {'dir_path': os.path.join(self.pools_dir, 'p0'), 'revisions_to_keep': '0'})

    def test_add_pool_valid_names(self):
        for name in ('a', 'A-z_0.9-x', '1pool', 'x' * 64, 'a..b', 'a-', 'Z_'):
            with self.subTest(name=name):
                path = self.add_file_pool(name)
                self.assertEqual(path, pool_path(name))
                self.assertEqual(self.get_prop(path, POOL, 'Name'), name)
        names = [n for n, _ in self.list_pools()]
        self.assertEqual(names, sorted(names))

    def test_add_linux_kernel_pool(self):
        d = os.path.join(self.pools_dir, 'k')
        os.makedirs(d)
        path = self.add_pool('k', 'linux-kernel', {'dir_path': d})
        self.assertEqual(path, pool_path('k'))
        p = self.pprops('k')
        self.assertEqual(p['Driver'], 'linux-kernel')
        kconfig = dict(p['Config'])
        self.assertEqual(kconfig.pop('revisions_to_keep', '0'), '0')
        self.assertConfig(kconfig, 'k', 'linux-kernel', {'dir_path': d})
        self.assertEqual(p['RevisionsToKeep'], 0)
        self.assertEqual(p['UsageDetails'], {'provisioned': 0})
        self.assertEqual(self.list_volumes('k'), [])

    def test_add_pool_already_exists(self):
        self.add_file_pool('p1')
        self.assertRejected('AlreadyExists', self.add_pool, 'p1', 'file',
                            {'dir_path': os.path.join(self.pools_dir, 'other')}, contains='p1')
        self.assertRejected('AlreadyExists', self.add_pool, 'varlibqubes', 'file',
                            {'dir_path': os.path.join(self.pools_dir, 'other')}, contains='varlibqubes')
        self.assertFalse(os.path.exists(os.path.join(self.pools_dir, 'other')))
        self.assertEqual(self.pprops('p1')['Config']['dir_path'], os.path.join(self.pools_dir, 'p1'))

    def test_add_pool_unknown_driver(self):
        self.assertRejected('UnknownDriver', self.add_pool, 'p1', 'nosuchdriver',
                            {'dir_path': os.path.join(self.pools_dir, 'p1')}, contains=('p1', 'nosuchdriver'))
        self.assertRejected('UnknownDriver', self.add_pool, 'p1', '',
                            {'dir_path': os.path.join(self.pools_dir, 'p1')}, contains='p1')
        self.assertDBusError('NoSuchPool', self.get_pool, 'p1')

    def test_add_pool_invalid_names(self):
        for name in ('', '-x', '.x', 'a/b', 'x' * 65, 'a b', 'a:b', 'ä'):
            with self.subTest(name=name):
                contains = (name,) if name else ()
                self.assertRejected('InvalidArgument', self.add_pool, name, 'file',
                                    {'dir_path': os.path.join(self.pools_dir, 'p')}, contains=contains)
        self.assertEqual([n for n, _ in self.list_pools()], ['linux-kernel', 'varlibqubes'])

    def test_add_pool_unknown_config_key(self):
        self.assertRejected('InvalidArgument', self.add_pool, 'p1', 'file',
                            {'dir_path': os.path.join(self.pools_dir, 'p1'), 'bogus_key': '1'},
                            contains=('bogus_key', 'p1'))
        # a parameter of another driver is unknown to this one
        self.assertRejected('InvalidArgument', self.add_pool, 'p1', 'file',
                            {'dir_path': os.path.join(self.pools_dir, 'p1'), 'volume_group': 'vg'},
                            contains=('volume_group', 'p1'))
        self.assertRejected('InvalidArgument', self.add_pool, 'k1', 'linux-kernel',
                            {'dir_path': os.path.join(self.pools_dir, 'k1'), 'revisions_to_keep': '1'},
                            contains=('revisions_to_keep', 'k1'))
        self.assertDBusError('NoSuchPool', self.get_pool, 'p1')

    def test_add_pool_missing_dir_path(self):
        self.assertRejected('InvalidArgument', self.add_pool, 'p1', 'file', {}, contains=('dir_path', 'p1'))
        self.assertRejected('InvalidArgument', self.add_pool, 'p1', 'file', {'dir_path': ''},
                            contains=('dir_path', 'p1'))

    def test_add_pool_unknown_option(self):
        self.assertRejected('InvalidArgument', self.add_pool, 'p1', 'file',
                            {'dir_path': os.path.join(self.pools_dir, 'p1')}, opts(bogus_option=True),
                            contains=('bogus_option', 'p1'))

    def test_add_pool_wrong_option_type(self):
        self.assertRejected('InvalidArgument', self.add_pool, 'p1', 'file',
                            {'dir_path': os.path.join(self.pools_dir, 'p1')},
                            opts(**{'auth.no_user_interaction': 'yes'}), contains=('auth.no_user_interaction', 'p1'))

    def test_add_file_pool_revisions_to_keep_limits(self):
        d = os.path.join(self.pools_dir, 'p1')
        # the file driver keeps at most one revision
        e = self.assertRejected(('NotSupported', 'InvalidArgument'), self.add_pool, 'p1', 'file',
                                {'dir_path': d, 'revisions_to_keep': '2'}, contains='p1')
        if e.name.endswith('InvalidArgument'):
            self.assertIn('revisions_to_keep', e.message, 'InvalidArgument must name the parameter')
        for bad in ('-1', 'abc', '', '1x', '99999999999999999999'):
            with self.subTest(revisions_to_keep=bad):
                self.assertRejected('InvalidArgument', self.add_pool, 'p1', 'file',
                                    {'dir_path': d, 'revisions_to_keep': bad}, contains=('revisions_to_keep', 'p1'))
        self.assertFalse(os.path.exists(d))
        self.assertDBusError('NoSuchPool', self.get_pool, 'p1')

    def test_add_pool_setup_failure_adds_nothing(self):
        # dir_path below a regular file: the file driver's setup cannot mkdir
        blocker = os.path.join(self.pools_dir, 'file')
        with open(blocker, 'w') as f:
            f.write('x')
        self.assertRejected('Failed', self.add_pool, 'p1', 'file', {'dir_path': os.path.join(blocker, 'p1')},
                            contains='p1')
        self.assertDBusError('NoSuchPool', self.get_pool, 'p1')
        self.assertEqual([n for n, _ in self.list_pools()], ['linux-kernel', 'varlibqubes'])

    # ---- RemovePool ------------------------------------------------------------

    def test_remove_pool(self):
        path = self.add_file_pool('p1')
        d = os.path.join(self.pools_dir, 'p1')
        m = self.mark()
        self.remove_pool('p1', opts(**{'auth.no_user_interaction': True}))
        self.assertDBusError('NoSuchPool', self.get_pool, 'p1')
        self.assertEqual([n for n, _ in self.list_pools()], ['linux-kernel', 'varlibqubes'])
        args = self.wait_signal(m, 'InterfacesRemoved', ROOT, OBJECT_MANAGER, match=lambda a: a[0] == path)
        self.assertIn(POOL, args[1])
        self.assertNotIn(path, self.managed_objects())
        # data on disk stays
        self.assertTrue(os.path.isdir(os.path.join(d, 'appvms')))
        # and it stays removed
        self.restart_service()
        self.assertEqual([n for n, _ in self.list_pools()], ['linux-kernel', 'varlibqubes'])

    def test_remove_pool_state_records(self):
        before = self.state_records()
        self.add_file_pool('p1')
        self.assertNotEqual(self.state_records(), before)
        self.remove_pool('p1')
        self.assertEqual(self.state_records(), before)

    def test_remove_pool_no_such_pool(self):
        self.assertRejected('NoSuchPool', self.remove_pool, 'nosuchpool', contains='nosuchpool')

    def test_remove_pool_unknown_option(self):
        self.add_file_pool('p1')
        self.assertRejected('InvalidArgument', self.remove_pool, 'p1', opts(bogus_option=True),
                            contains=('bogus_option', 'p1'))
        self.assertEqual(self.get_pool('p1'), pool_path('p1'))

    def test_remove_pool_in_use(self):
        self.add_file_pool('p1')
        v = self.create_volume('p1', dict(name='private', vm='work', size=MiB, rw=True, save_on_stop=True))
        self.assertRejected('PoolInUse', self.remove_pool, 'p1', contains='p1')
        self.assertEqual(self.get_pool('p1'), pool_path('p1'))
        self.assertEqual(self.list_volumes('p1'), [('appvms/work/private', v)])
        self.remove(v)
        self.remove_pool('p1')
        self.assertDBusError('NoSuchPool', self.get_pool, 'p1')

    def test_set_revisions_behind_remove_pool_is_refused(self):
        """A SetRevisionsToKeep that arrives while the pool's removal runs is
        refused: it used to be queued behind the removal and write the pool's
        record again, so that the pool came back at the next start."""
        self.add_file_pool('p1', revisions_to_keep=1)
        for _ in range(5):
            # sent together: the second arrives while the removal runs
            remove = self.call_async(ROOT, MANAGER, 'RemovePool', 'sa{sv}', ('p1', {}), '')
            setrev = self.call_async(pool_path('p1'), POOL, 'SetRevisionsToKeep', 'ia{sv}', (0, {}), '')
            self.wait_until(lambda: remove['done'] and setrev['done'], 'both calls to be answered')
            self.assertNotIn('error', remove, f'RemovePool failed: {remove.get("error")}')
            # NoSuchPool, or no such object once the removal has completed
            self.assertIn('error', setrev, 'SetRevisionsToKeep of a removed pool succeeded')
            if setrev['error'].name.startswith(ERROR_PREFIX):
                self.assertEqual(setrev['error'].name, ERROR_PREFIX + 'NoSuchPool', setrev['error'].message)
            self.assertNotIn('pools/p1.pool', self.state_records())
            self.add_file_pool('p1', revisions_to_keep=1)
        self.remove_pool('p1')
        self.restart_service()
        self.assertNotIn('p1', [name for name, _ in self.list_pools()])

    # ---- ObjectManager -----------------------------------------------------------

    def test_managed_objects(self):
        objs = self.managed_objects()
        self.assertEqual(set(objs), {pool_path('varlibqubes'), pool_path('linux-kernel')})
        for name in ('varlibqubes', 'linux-kernel'):
            ifaces = qubes_ifaces(objs[pool_path(name)])
            self.assertEqual(set(ifaces), {POOL})
            self.assertEqual(without_usage(ifaces[POOL]), without_usage(self.pprops(name)))

        self.add_file_pool('p1')
        vpath = self.create_volume('p1', dict(name='private', vm='work', size=MiB, rw=True, save_on_stop=True))
        objs = self.managed_objects()
        self.assertEqual(set(objs), {pool_path('varlibqubes'), pool_path('linux-kernel'), pool_path('p1'), vpath})
        ifaces = qubes_ifaces(objs[vpath])
        self.assertEqual(set(ifaces), {VOLUME})
        self.assertEqual(ifaces[VOLUME], self.vprops(vpath))

    def test_interfaces_added_removed(self):
        m = self.mark()
        ppath = self.add_file_pool('p1')
        vpath = self.create_volume('p1', dict(name='private', vm='work', size=MiB, rw=True, save_on_stop=True))
        self.assertEqual(vpath, volume_path('p1', 'appvms/work/private'))
        args = self.wait_signal(m, 'InterfacesAdded', ROOT, OBJECT_MANAGER, match=lambda a: a[0] == ppath)
        self.assertEqual(set(qubes_ifaces(args[1])), {POOL})
        args = self.wait_signal(m, 'InterfacesAdded', ROOT, OBJECT_MANAGER, match=lambda a: a[0] == vpath)
        added = qubes_ifaces(args[1])
        self.assertEqual(set(added), {VOLUME})
        self.assertClientModel(m, ppath, POOL)
        self.assertClientModel(m, vpath, VOLUME)
        # the pool was announced before the volume
        order = [a[0] for (_, _, _, a) in self.service_signals(m, 'InterfacesAdded', ROOT)]
        self.assertLess(order.index(ppath), order.index(vpath))
        # no PropertiesChanged for an object before its InterfacesAdded
        seen_added = False
        for (p, i, mem, a) in self.service_signals(m):
            if mem == 'InterfacesAdded' and a[0] == vpath:
                seen_added = True
            if p == vpath and mem == 'PropertiesChanged':
                self.assertTrue(seen_added, 'PropertiesChanged on the volume before its InterfacesAdded')

        m = self.mark()
        self.remove(vpath)
        args = self.wait_signal(m, 'InterfacesRemoved', ROOT, OBJECT_MANAGER, match=lambda a: a[0] == vpath)
        self.assertIn(VOLUME, args[1])
        self.remove_pool('p1')
        args = self.wait_signal(m, 'InterfacesRemoved', ROOT, OBJECT_MANAGER, match=lambda a: a[0] == ppath)
        self.assertIn(POOL, args[1])
        self.assertEqual(set(self.managed_objects()), {pool_path('varlibqubes'), pool_path('linux-kernel')})

    def test_no_signals_for_rejected_calls(self):
        self.add_file_pool('p1')
        m = self.mark()
        self.assertDBusError('AlreadyExists', self.add_file_pool, 'p1')
        self.assertDBusError('InvalidArgument', self.add_file_pool, '-bad')
        self.assertDBusError('NoSuchPool', self.remove_pool, 'nosuchpool')
        self.sync()
        self.assertEqual(self.service_signals(m, 'InterfacesAdded'), [])
        self.assertEqual(self.service_signals(m, 'InterfacesRemoved'), [])

    # ---- RefreshUsage --------------------------------------------------------------

    def test_refresh_usage(self):
        self.add_file_pool('p1')
        self.refresh_usage('p1', opts(**{'auth.no_user_interaction': True}))
        p = self.pprops('p1')
        self.assertEqual(set(p['UsageDetails']), {'data_size', 'data_usage', 'provisioned'})
        self.assertEqual(p['UsageDetails']['provisioned'], p['Provisioned'])
        self.assertEqual(p['UsageDetails']['data_size'], p['Size'])
        self.refresh_usage('linux-kernel')
        k = self.pprops('linux-kernel')
        self.assertEqual((k['Size'], k['Usage'], k['UsageDetails']), (0, 0, {'provisioned': 0}))
        self.assertRejected('InvalidArgument', self.refresh_usage, 'p1', opts(bogus_option=True),
                            contains=('bogus_option', 'p1'))


class UnprivilegedReadTest(StoragedTestCase):
    """Reading is open to every local user (API.md, Authorization): the
    service's read methods and properties answer a caller that is not root.
    dbusmock's bus admits only its own uid, so this class runs its own
    private system bus that lets every user connect."""

    @classmethod
    def setUpClass(cls):
        conf = os.path.join(tempfile.mkdtemp(prefix='storaged-bus-'), 'system.conf')
        cls._conf_dir = os.path.dirname(conf)
        with open(conf, 'w') as f:
            f.write('''<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <keep_umask/>
  <listen>unix:tmpdir=/tmp</listen>
  <policy context="default">
    <allow user="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
''')
        pid, addr = cls.start_dbus(conf=conf)
        cls.system_bus_pid = pid
        os.environ['DBUS_SYSTEM_BUS_ADDRESS'] = addr
        cls.bus_address = addr

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        shutil.rmtree(cls._conf_dir, ignore_errors=True)

    def test_read_as_unprivileged_user(self):
        self.add_file_pool('p1')
        self.create_volume('p1', dict(name='private', vm='work', size=MiB, rw=True, save_on_stop=True))
        code = r'''
import sys
import gi
gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib
bus = Gio.DBusConnection.new_for_address_sync(sys.argv[1],
    Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
def call(path, iface, method, params=None):
    return bus.call_sync("org.qubes.Storage1", path, iface, method, params, None, Gio.DBusCallFlags.NONE,
                         30000, None).unpack()
def props(path, iface):
    return call(path, "org.freedesktop.DBus.Properties", "GetAll", GLib.Variant("(s)", (iface,)))[0]
M = "org.qubes.Storage1.Manager"
root = "/org/qubes/Storage1"
print(call(root, M, "ListPools"))
print(call(root, M, "ListDrivers"))
pool = call(root, M, "GetPool", GLib.Variant("(s)", ("p1",)))[0]
print(props(root, M))
print(props(pool, "org.qubes.Storage1.Pool"))
print(call(pool, "org.qubes.Storage1.Pool", "ListVolumes"))
vol = call(pool, "org.qubes.Storage1.Pool", "GetVolume", GLib.Variant("(s)", ("appvms/work/private",)))[0]
print(props(vol, "org.qubes.Storage1.Volume"))
print(call(vol, "org.freedesktop.DBus.Properties", "Get", GLib.Variant("(ss)", ("org.qubes.Storage1.Volume", "Size"))))
print(call(root, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects"))
for p in (root, pool, vol):
    call(p, "org.freedesktop.DBus.Introspectable", "Introspect")
print("uid", __import__("os").getuid(), "OK")
'''
        r = subprocess.run(['/usr/bin/python3', '-c', code, self.bus_address], user=65534, group=65534,
                           capture_output=True, text=True, timeout=120, cwd='/')
        self.assertEqual(r.returncode, 0, f'reading as uid 65534 failed:\n{r.stdout}\n{r.stderr}')
        self.assertIn('uid 65534 OK', r.stdout)

if __name__ == '__main__':
    unittest.main(verbosity=2)

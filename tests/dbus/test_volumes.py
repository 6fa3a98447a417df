"""Volumes of a file pool: CreateVolume, properties, Start/Stop/Verify, Resize,
Revert, SetRw, SetRevisionsToKeep, Remove, GetVolume/ListVolumes."""

import datetime
import os
import re
import time
import unittest

from storaged import (ERROR_PREFIX, OBJECT_MANAGER, POOL, ROOT, VOLUME, DBusCallError, GLib, MiB, StoragedTestCase,
                      allocated, opts, pool_path, snapshot_diff, vconf, volume_path)

VOLUME_PROPERTIES = {'Vid', 'Name', 'Vm', 'Pool', 'Source', 'SnapOnStart', 'SaveOnStop', 'Rw', 'RevisionsToKeep',
                     'Size', 'Usage', 'Revisions', 'IsDirty', 'IsOutdated', 'Started', 'Path', 'BlockDevice',
                     'KernelsDir'}

TIMESTAMP_RE = re.compile(r'^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|\+00:00)?$')

NOUI = {'auth.no_user_interaction': GLib.Variant('b', True)}


def write_data(path, offset=0, length=128 * 1024, byte=b'\xab'):
    with open(path, 'r+b') as f:
        f.seek(offset)
        f.write(byte * length)
        f.flush()
        os.fsync(f.fileno())


class FilePoolTestCase(StoragedTestCase):
    pool = 'testpool'

    def setUp(self):
        super().setUp()
        self.D = os.path.join(self.pools_dir, self.pool)
        self.add_pool(self.pool, 'file', {'dir_path': self.D, 'revisions_to_keep': '1'})

    def about(self, vid=None):
        """What an error message about a volume of this pool must name: the
        pool, or the volume."""
        return (self.pool,) + ((vid,) if vid else ())

    def img(self, vid):
        return os.path.join(self.D, vid + '.img')

    def cow(self, vid):
        return os.path.join(self.D, vid + '-cow.img')

    def old(self, vid):
        return os.path.join(self.D, vid + '-cow.img.old')

    def origin(self, vm='work', name='private', size=MiB, rw=True, **kw):
        return self.create_volume(self.pool, dict(name=name, vm=vm, size=size, rw=rw, save_on_stop=True, **kw))

    def template_root(self, vm='tpl', size=2 * MiB):
        return self.create_volume(self.pool, dict(name='root', vm=vm, template=True, size=size, rw=True,
                                                  save_on_stop=True))

    def snapshot(self, source='vm-templates/tpl/root', vm='work', name='root', size=2 * MiB, rw=True, **kw):
        return self.create_volume(self.pool, dict(name=name, vm=vm, size=size, rw=rw, snap_on_start=True,
                                                  source=source, **kw))

    def volatile(self, vm='work', name='volatile', size=MiB, rw=True, **kw):
        return self.create_volume(self.pool, dict(name=name, vm=vm, size=size, rw=rw, **kw))

    # expected property values as a user derives them from the files
    def expect_origin(self, vid, name, vm, size, rw=True, rtk=1, started=False, revisions=()):
        return {
            'Vid': vid, 'Name': name, 'Vm': vm, 'Pool': pool_path(self.pool), 'Source': '',
            'SnapOnStart': False, 'SaveOnStop': True, 'Rw': rw, 'RevisionsToKeep': rtk,
            'Size': size, 'Usage': allocated(self.img(vid)) + allocated(self.cow(vid)),
            'Revisions': list(revisions), 'IsDirty': False, 'IsOutdated': False, 'Started': started,
            'Path': self.img(vid),
            'BlockDevice': (f'{self.img(vid)}:{self.cow(vid)}', 'block-origin', 'disk', rw),
            'KernelsDir': '',
        }

    def expect_snapshot(self, vid, name, vm, source, size, rw=True, started=False):
        return {
            'Vid': vid, 'Name': name, 'Vm': vm, 'Pool': pool_path(self.pool), 'Source': source,
            'SnapOnStart': True, 'SaveOnStop': False, 'Rw': rw, 'RevisionsToKeep': 0,
            'Size': size, 'Usage': allocated(self.cow(vid)),
            'Revisions': [], 'IsDirty': False, 'IsOutdated': False, 'Started': started,
            'Path': self.img(source),
            'BlockDevice': (f'{self.img(source)}:{self.cow(source)}:{self.cow(vid)}', 'block-snapshot', 'disk', rw),
            'KernelsDir': '',
        }

    def expect_volatile(self, vid, name, vm, size, rw=True, started=False):
        return {
            'Vid': vid, 'Name': name, 'Vm': vm, 'Pool': pool_path(self.pool), 'Source': '',
            'SnapOnStart': False, 'SaveOnStop': False, 'Rw': rw, 'RevisionsToKeep': 0,
            'Size': size, 'Usage': allocated(self.img(vid)),
            'Revisions': [], 'IsDirty': False, 'IsOutdated': False, 'Started': started,
            'Path': self.img(vid),
            'BlockDevice': (self.img(vid), '', 'disk', rw),
            'KernelsDir': '',
        }

    def assertProps(self, vpath, expected):
        props = self.vprops(vpath)
        missing = VOLUME_PROPERTIES - set(props)
        self.assertFalse(missing, f'properties missing from GetAll: {missing}')
        got = {k: props[k] for k in expected}
        if got != expected:
            diff = '\n'.join(f'  {k}: got {got[k]!r}, expected {expected[k]!r}'
                             for k in sorted(expected) if got[k] != expected[k])
            self.fail(f'properties of {vpath} differ:\n{diff}')
        # Get answers the same as GetAll
        for k in ('Vid', 'Size', 'Started', 'BlockDevice', 'Revisions'):
            self.assertEqual(self.vprop(vpath, k), props[k], f'Get({k}) differs from GetAll')
        return props

    def assertRevisionOld(self, vpath, vid):
        revs = self.vprop(vpath, 'Revisions')
        self.assertEqual([r[0] for r in revs], ['old'])
        m = TIMESTAMP_RE.match(revs[0][1])
        self.assertIsNotNone(m, f'revision timestamp {revs[0][1]!r} is not ISO-8601 UTC')
        ctime = datetime.datetime.fromtimestamp(int(os.stat(self.old(vid)).st_ctime), datetime.timezone.utc)
        self.assertEqual(m.group(1), ctime.strftime('%Y-%m-%dT%H:%M:%S'),
                         'revision timestamp is not the ctime of -cow.img.old')
        return revs


class CreateVolumeTest(FilePoolTestCase):

    def test_create_origin_all_keys(self):
        m = self.mark()
        records = self.state_records()
        vpath = self.create_volume(self.pool, vconf(
            name='private', vm='work', template=False, size=4 * MiB, rw=True, snap_on_start=False,
            save_on_stop=True, revisions_to_keep=1, ephemeral=False), NOUI)
        vid = 'appvms/work/private'
        self.assertEqual(vpath, volume_path(self.pool, vid))
        self.assertTrue(os.path.isfile(self.img(vid)))
        self.assertEqual(os.path.getsize(self.img(vid)), 4 * MiB)
        self.assertProps(vpath, self.expect_origin(vid, 'private', 'work', 4 * MiB))
        self.assertEqual(self.list_volumes(self.pool), [(vid, vpath)])
        self.assertEqual(self.get_volume(self.pool, vid), vpath)
        args = self.wait_signal(m, 'InterfacesAdded', ROOT, OBJECT_MANAGER, match=lambda a: a[0] == vpath)
        self.assertIn(VOLUME, args[1])
        self.assertGreater(len(self.state_records()), len(records), 'volume not persisted in the state dir')

    def test_create_origin_explicit_vid(self):
        vpath = self.create_volume(self.pool, vconf(
            name='private', vm='work', template=False, vid='vm-templates/other/vol', size=MiB, rw=True,
            snap_on_start=False, save_on_stop=True, revisions_to_keep=0, ephemeral=False))
        self.assertEqual(vpath, volume_path(self.pool, 'vm-templates/other/vol'))
        self.assertTrue(os.path.isfile(self.img('vm-templates/other/vol')))
        self.assertProps(vpath, self.expect_origin('vm-templates/other/vol', 'private', 'work', MiB, rtk=0))

    def test_create_template_default_vid(self):
        vpath = self.template_root()
        vid = 'vm-templates/tpl/root'
        self.assertEqual(vpath, volume_path(self.pool, vid))
        self.assertEqual(os.path.getsize(self.img(vid)), 2 * MiB)
        self.assertProps(vpath, self.expect_origin(vid, 'root', 'tpl', 2 * MiB))

    def test_create_origin_defaults(self):
        # rw, snap_on_start, save_on_stop default to false; revisions_to_keep to the pool's
        vpath = self.create_volume(self.pool, dict(name='data', vm='work', size=MiB, save_on_stop=True))
        props = self.vprops(vpath)
        self.assertEqual((props['Rw'], props['SnapOnStart'], props['RevisionsToKeep']), (False, False, 1))
        self.pool_set_revisions_to_keep(self.pool, 0)
        vpath = self.create_volume(self.pool, dict(name='data2', vm='work', size=MiB, save_on_stop=True))
        self.assertEqual(self.vprop(vpath, 'RevisionsToKeep'), 0)

    def test_create_snapshot(self):
        self.template_root(size=2 * MiB)
        vpath = self.create_volume(self.pool, vconf(
            name='root', vm='work', template=False, size=2 * MiB, rw=True, snap_on_start=True,
            save_on_stop=False, source='vm-templates/tpl/root', revisions_to_keep=1, ephemeral=False))
        vid = 'appvms/work/root'
        self.assertEqual(vpath, volume_path(self.pool, vid))
        # a snapshot has no image of its own until it starts
        self.assertFalse(os.path.exists(self.img(vid)))
        self.assertFalse(os.path.exists(self.cow(vid)))
        # non-origin volumes keep no revisions
        self.assertProps(vpath, self.expect_snapshot(vid, 'root', 'work', 'vm-templates/tpl/root', 2 * MiB))

    def test_create_volatile(self):
        vpath = self.create_volume(self.pool, vconf(
            name='volatile', vm='work', template=False, size=MiB, rw=True, snap_on_start=False,
            save_on_stop=False, revisions_to_keep=1, ephemeral=False))
        vid = 'appvms/work/volatile'
        self.assertEqual(vpath, volume_path(self.pool, vid))
        self.assertEqual(os.path.getsize(self.img(vid)), MiB)
        self.assertProps(vpath, self.expect_volatile(vid, 'volatile', 'work', MiB))

    def test_numbers_as_strings(self):
        vpath = self.create_volume(self.pool, vconf(name='private', vm='work', size='1048576', rw=True,
                                                    save_on_stop=True, revisions_to_keep='0'))
        self.assertEqual(self.vprop(vpath, 'Size'), MiB)
        self.assertEqual(self.vprop(vpath, 'RevisionsToKeep'), 0)
        self.assertEqual(os.path.getsize(self.img('appvms/work/private')), MiB)
        self.assertRejected('InvalidArgument', self.create_volume, self.pool,
                            vconf(name='p2', vm='work', size='12abc', rw=True, save_on_stop=True),
                            contains=('12abc', self.about('appvms/work/p2')))
        self.assertRejected('InvalidArgument', self.create_volume, self.pool,
                            vconf(name='p3', vm='work', size=MiB, rw=True, save_on_stop=True,
                                  revisions_to_keep='x'), contains=('revisions_to_keep', self.about('appvms/work/p3')))

    def test_invalid_vids(self):
        for vid in ('../x', '/abs', 'a//b', 'x' * 300, 'a/', 'a/./b', 'a/../b', '.', '..', 'a b', 'a:b', ''):
            with self.subTest(vid=vid):
                contains = (vid,) if vid else ('vid', self.about())
                self.assertRejected('InvalidArgument', self.create_volume, self.pool,
                                    vconf(name='private', vm='work', vid=vid, size=MiB, rw=True, save_on_stop=True),
                                    contains=contains)
        self.assertEqual(self.list_volumes(self.pool), [])

    def test_longest_vid(self):
        # a file pool's vids are <dir>/<vm>/<name>, each name at most 31 characters
        vid = 'vm-templates/' + 'x' * 31 + '/' + 'y' * 31
        vpath = self.volatile(vid=vid)
        self.assertEqual(vpath, volume_path(self.pool, vid))
        self.assertEqual(self.vprop(vpath, 'Vid'), vid)
        for longer in ('vm-templates/' + 'x' * 32 + '/y', 'appvms/x/' + 'y' * 32):
            self.assertRejected('InvalidArgument', self.create_volume, self.pool,
                                vconf(name='v', vm='work', vid=longer, size=MiB, rw=True), contains=(longer,))

    def test_invalid_sizes(self):
        for size in (0, 2 ** 64 - 1, 2 ** 63):
            with self.subTest(size=size):
                self.assertRejected('InvalidArgument', self.create_volume, self.pool,
                                    vconf(name='private', vm='work', size=size, rw=True, save_on_stop=True),
                                    contains=(str(size), self.about('appvms/work/private')))
        self.assertRejected('InvalidArgument', self.create_volume, self.pool,
                            vconf(name='private', vm='work', size='0', rw=True, save_on_stop=True),
                            contains=(self.about('appvms/work/private'),))
        self.assertRejected('InvalidArgument', self.create_volume, self.pool,
                            vconf(name='private', vm='work', size='-1', rw=True, save_on_stop=True),
                            contains=('-1', self.about('appvms/work/private')))
        self.assertEqual(self.list_volumes(self.pool), [])

    def test_storage_failure_leaves_nothing(self):
        # a valid size the filesystem cannot hold: the driver's create fails
        m = self.mark()
        self.assertRejected('Failed', self.create_volume, self.pool,
                            vconf(name='private', vm='work', size=2 ** 63 - 1, rw=True, save_on_stop=True),
                            contains='appvms/work/private')
        self.assertEqual(self.list_volumes(self.pool), [])
        self.assertDBusError('NoSuchVolume', self.get_volume, self.pool, 'appvms/work/private')
        self.sync()
        self.assertEqual(self.service_signals(m, 'InterfacesAdded'), [])

    def test_unknown_config_key(self):
        self.assertRejected('InvalidArgument', self.create_volume, self.pool,
                            vconf(name='private', vm='work', size=MiB, bogus_key='1'),
                            contains=('bogus_key', self.about('appvms/work/private')))
        self.assertRejected('InvalidArgument', self.create_volume, self.pool,
                            vconf(name='private', vm='work', size=MiB, pool=self.pool), contains=('pool', self.about()))

    def test_wrong_config_types(self):
        cases = {
            'size': GLib.Variant('b', True),
            'rw': GLib.Variant('s', 'yes'),
            'save_on_stop': GLib.Variant('i', 1),
            'name': GLib.Variant('i', 1),
            'revisions_to_keep': GLib.Variant('b', False),
        }
        for key, value in cases.items():
            with self.subTest(key=key):
                config = vconf(name='private', vm='work', size=MiB, rw=True, save_on_stop=True)
                config[key] = value
                self.assertRejected('InvalidArgument', self.create_volume, self.pool, config,
                                    contains=(key, self.about('appvms/work/private')))

    def test_unknown_option(self):
        self.assertRejected('InvalidArgument', self.create_volume, self.pool,
                            vconf(name='private', vm='work', size=MiB, rw=True, save_on_stop=True),
                            opts(bogus_option=True), contains=('bogus_option', self.about('appvms/work/private')))

    def test_invalid_names(self):
        for key, bad in (('vm', '1work'), ('vm', 'w' * 32), ('vm', 'a/b'), ('vm', ''), ('name', 'a/b'),
                         ('name', ''), ('name', '-x')):
            with self.subTest(key=key, value=bad):
                config = dict(name='private', vm='work', size=MiB, rw=True, save_on_stop=True)
                config[key] = bad
                self.assertRejected('InvalidArgument', self.create_volume, self.pool, config,
                                    contains=(bad if bad else key, self.about()))
        self.volatile(vm='w' * 31)   # the longest valid VM name

    def test_missing_name_or_vm(self):
        self.assertRejected('InvalidArgument', self.create_volume, self.pool,
                            dict(vm='work', size=MiB, rw=True, save_on_stop=True),
                            contains=('name', self.about()))
        self.assertRejected('InvalidArgument', self.create_volume, self.pool,
                            dict(name='private', size=MiB, rw=True, save_on_stop=True),
                            contains=('vm', self.about()))

    def test_snapshot_without_source(self):
        self.assertRejected('InvalidArgument', self.create_volume, self.pool,
                            dict(name='root', vm='work', size=MiB, rw=True, snap_on_start=True),
                            contains=('source', self.about('appvms/work/root')))

    def test_source_without_snapshot(self):
        self.template_root()
        self.assertRejected('InvalidArgument', self.create_volume, self.pool,
                            dict(name='root', vm='work', size=MiB, rw=True, source='vm-templates/tpl/root'),
                            contains=('source', self.about('appvms/work/root')))

    def test_source_missing(self):
        self.assertRejected('NoSuchVolume', self.snapshot, source='vm-templates/nosuch/root',
                            contains='vm-templates/nosuch/root')
        # a source in another pool is not a volume of this pool
        self.add_file_pool('other')
        self.create_volume('other', dict(name='root', vm='tpl', template=True, size=MiB, rw=True,
                                         save_on_stop=True))
        self.assertRejected('NoSuchVolume', self.snapshot, source='vm-templates/tpl/root',
                            contains='vm-templates/tpl/root')

    def test_origin_and_snapshot_not_supported(self):
        self.template_root()
        self.assertRejected('NotSupported', self.create_volume, self.pool,
                            dict(name='root', vm='work', size=2 * MiB, rw=True, snap_on_start=True,
                                 save_on_stop=True, source='vm-templates/tpl/root'), contains='appvms/work/root')

    def test_already_exists(self):
        self.origin()
        self.assertRejected('AlreadyExists', self.origin, contains='appvms/work/private')
        self.assertRejected('AlreadyExists', self.volatile, name='other', vid='appvms/work/private',
                            contains='appvms/work/private')

    def test_leftover_image_file_replaced(self):
        # files of a vid that no volume has are a crash's leftovers (a Create
        # killed before its record, a Remove killed after dropping it): the
        # new volume replaces them (docs/crash-safety.md)
        os.makedirs(os.path.join(self.D, 'appvms', 'work'))
        with open(self.img('appvms/work/private'), 'wb') as f:
            f.write(b'leftover')
        vpath = self.origin()
        with open(self.img('appvms/work/private'), 'rb') as f:
            self.assertEqual(f.read(8), bytes(8))
        self.assertEqual(self.list_volumes(self.pool), [('appvms/work/private', vpath)])

    def test_no_such_pool_object(self):
        e = self.assertDBusError(('org.freedesktop.DBus.Error.UnknownObject',
                                  'org.freedesktop.DBus.Error.UnknownMethod'),
                                 self.call, pool_path('nosuch'), POOL, 'CreateVolume', 'a{sv}a{sv}',
                                 (vconf(name='private', vm='work', size=MiB), {}), 'o')
        self.assertIsNotNone(e)


class ListGetTest(FilePoolTestCase):

    def test_list_volumes_sorted(self):
        vids = ['vm-templates/tpl/root', 'appvms/zed/private', 'appvms/alpha/private', 'appvms/alpha/volatile',
                'appvms/Zed/upper', 'appvms/alpha-2/private']
        paths = {}
        for vid in vids:
            paths[vid] = self.create_volume(self.pool, dict(name='v', vm='work', vid=vid, size=MiB, rw=True,
                                                            save_on_stop=True))
        self.assertEqual(self.list_volumes(self.pool), [(v, paths[v]) for v in sorted(vids)])
        for vid in vids:
            self.assertEqual(self.get_volume(self.pool, vid), paths[vid])
            self.assertEqual(paths[vid], volume_path(self.pool, vid))
        # the other pools are not affected
        self.assertEqual(self.list_volumes('varlibqubes'), [])

    def test_get_volume_no_such_volume(self):
        self.origin()
        self.assertRejected('NoSuchVolume', self.get_volume, self.pool, 'appvms/work/nosuch',
                            contains='appvms/work/nosuch')
        self.assertRejected('NoSuchVolume', self.get_volume, 'varlibqubes', 'appvms/work/private',
                            contains='appvms/work/private')


class StartStopTest(FilePoolTestCase):

    def test_start_stop_origin(self):
        vid = 'appvms/work/private'
        vpath = self.origin(size=2 * MiB)
        write_data(self.img(vid))
        m = self.mark()
        self.start(vpath, NOUI)
        self.wait_property_changed(m, vpath, VOLUME, 'Started', True)
        self.assertTrue(os.path.isfile(self.cow(vid)))
        self.assertEqual(os.path.getsize(self.cow(vid)), 2 * MiB)
        self.assertProps(vpath, self.expect_origin(vid, 'private', 'work', 2 * MiB, started=True))
        self.assertGreaterEqual(self.vprop(vpath, 'Usage'), 128 * 1024)

        # the VM writes into the CoW file
        write_data(self.cow(vid), offset=MiB, length=64 * 1024, byte=b'\xcd')
        m = self.mark()
        self.stop(vpath, NOUI)
        self.wait_property_changed(m, vpath, VOLUME, 'Started', False)
        # committed: the CoW data became the 'old' revision, a fresh empty CoW is there
        self.assertTrue(os.path.isfile(self.old(vid)))
        with open(self.old(vid), 'rb') as f:
            f.seek(MiB)
            self.assertEqual(f.read(4), b'\xcd' * 4)
        self.assertTrue(os.path.isfile(self.cow(vid)))
        self.assertEqual(allocated(self.cow(vid)), 0)
        revs = self.assertRevisionOld(vpath, vid)
        self.assertProps(vpath, self.expect_origin(vid, 'private', 'work', 2 * MiB, revisions=revs))

    def test_start_emits_one_properties_changed(self):
        """One Start is one update of the volume: everything it changed
        (Started and what the storage now says) comes in one PropertiesChanged,
        sent before the reply (docs/api.md)."""
        vid = 'appvms/work/private'
        vpath = self.origin(size=2 * MiB)
        write_data(self.img(vid))
        self.sync()
        m = self.mark()
        self.start(vpath)
        self.drain()

        def changes():
            return [a[1] for (_, _, _, a) in self.service_signals(m, 'PropertiesChanged', vpath) if a[0] == VOLUME]
        before_reply = changes()
        self.sync()
        after = changes()
        self.assertEqual(len(after), 1, f'one Start, {len(after)} PropertiesChanged of its volume: {after}')
        self.assertEqual(before_reply, after, 'the PropertiesChanged of a Start comes before its reply')
        self.assertIs(after[0].get('Started'), True, f'Started missing from {after[0]}')
        props = self.vprops(vpath)
        self.assertEqual({k: props[k] for k in after[0]}, after[0], 'the signal says what GetAll says')

    def test_start_stop_idempotent(self):
        vid = 'appvms/work/private'
        vpath = self.origin()
        self.start(vpath)
        st = os.stat(self.cow(vid))
        m = self.mark()
        self.start(vpath)
        self.assertTrue(self.vprop(vpath, 'Started'))
        self.assertEqual(os.stat(self.cow(vid)).st_ino, st.st_ino)
        self.stop(vpath)
        old = os.stat(self.old(vid))
        revs = self.vprop(vpath, 'Revisions')
        self.stop(vpath)
        self.assertFalse(self.vprop(vpath, 'Started'))
        # a second Stop commits nothing
        self.assertEqual(os.stat(self.old(vid)).st_ino, old.st_ino)
        self.assertEqual(os.stat(self.old(vid)).st_ctime_ns, old.st_ctime_ns)
        self.assertEqual(self.vprop(vpath, 'Revisions'), revs)
        self.sync()
        started = [a[1]['Started'] for (_, _, _, a) in self.service_signals(m, 'PropertiesChanged', vpath)
                   if a[0] == VOLUME and 'Started' in a[1]]
        self.assertEqual(started, [False], 'Started changed more than once')

    def test_stop_without_revisions(self):
        vid = 'appvms/work/private'
        vpath = self.origin(revisions_to_keep=0)
        self.start(vpath)
        write_data(self.cow(vid))
        self.stop(vpath)
        self.assertFalse(os.path.exists(self.old(vid)))
        self.assertEqual(self.vprop(vpath, 'Revisions'), [])
        self.assertEqual(allocated(self.cow(vid)), 0)

    def test_revisions_property_changes(self):
        vid = 'appvms/work/private'
        vpath = self.origin()
        self.start(vpath)
        m = self.mark()
        self.stop(vpath)
        revs = self.assertRevisionOld(vpath, vid)
        self.wait_property_changed(m, vpath, VOLUME, 'Revisions', revs)

    def test_start_stop_snapshot(self):
        src = 'vm-templates/tpl/root'
        vid = 'appvms/work/root'
        self.template_root()
        vpath = self.snapshot()
        self.start(vpath)
        self.assertTrue(self.vprop(vpath, 'Started'))
        self.assertTrue(os.path.isfile(self.cow(vid)))
        self.assertTrue(os.path.isfile(self.cow(src)))
        self.assertFalse(os.path.exists(self.img(vid)))
        self.assertProps(vpath, self.expect_snapshot(vid, 'root', 'work', src, 2 * MiB, started=True))
        write_data(self.cow(vid))
        self.stop(vpath)
        self.assertFalse(self.vprop(vpath, 'Started'))
        self.assertFalse(os.path.exists(self.cow(vid)))
        self.assertTrue(os.path.isfile(self.img(src)))
        self.assertProps(vpath, self.expect_snapshot(vid, 'root', 'work', src, 2 * MiB))

    def test_start_stop_volatile(self):
        vid = 'appvms/work/volatile'
        vpath = self.volatile(size=MiB)
        write_data(self.img(vid))
        self.start(vpath)
        self.assertTrue(self.vprop(vpath, 'Started'))
        # a fresh, empty image
        self.assertEqual(os.path.getsize(self.img(vid)), MiB)
        self.assertEqual(allocated(self.img(vid)), 0)
        self.assertProps(vpath, self.expect_volatile(vid, 'volatile', 'work', MiB, started=True))
        self.stop(vpath)
        self.assertFalse(self.vprop(vpath, 'Started'))
        self.assertFalse(os.path.exists(self.img(vid)))
        # no storage: the nominal size
        self.assertProps(vpath, self.expect_volatile(vid, 'volatile', 'work', MiB))
        self.start(vpath)
        self.assertEqual(os.path.getsize(self.img(vid)), MiB)

    def test_start_missing_image(self):
        vid = 'appvms/work/private'
        vpath = self.origin()
        os.unlink(self.img(vid))
        self.assertRejected('MissingImage', self.start, vpath, contains=vid)
        self.assertFalse(self.vprop(vpath, 'Started'))

    def test_verify(self):
        self.template_root()
        paths = [self.origin(), self.snapshot(), self.volatile()]
        for p in paths:
            self.assertIs(self.verify(p, NOUI), True)
        # a volatile volume needs no data
        os.unlink(self.img('appvms/work/volatile'))
        self.assertIs(self.verify(paths[2]), True)

    def test_verify_missing_image(self):
        vid = 'appvms/work/private'
        vpath = self.origin()
        os.unlink(self.img(vid))
        self.assertRejected('MissingImage', self.verify, vpath, contains=vid)

    def test_verify_snapshot_missing_source_image(self):
        self.template_root()
        vpath = self.snapshot()
        os.unlink(self.img('vm-templates/tpl/root'))
        self.assertRejected('MissingImage', self.verify, vpath, contains='vm-templates/tpl/root')

    def test_unknown_volume_object(self):
        self.assertDBusError(('org.freedesktop.DBus.Error.UnknownObject',
                              'org.freedesktop.DBus.Error.UnknownMethod'),
                             self.start, volume_path(self.pool, 'appvms/nosuch/private'))


class ResizeTest(FilePoolTestCase):

    def test_grow(self):
        vid = 'appvms/work/private'
        vpath = self.origin(size=MiB)
        m = self.mark()
        self.resize(vpath, 3 * MiB, NOUI)
        args = self.wait_signal(m, 'SizeChanged', vpath, VOLUME)
        self.assertEqual(tuple(args), (MiB, 3 * MiB))
        self.wait_property_changed(m, vpath, VOLUME, 'Size', 3 * MiB)
        self.assertEqual(os.path.getsize(self.img(vid)), 3 * MiB)
        self.assertEqual(self.vprop(vpath, 'Size'), 3 * MiB)
        self.sync()
        self.assertEqual(len(self.service_signals(m, 'SizeChanged')), 1)

    def test_grow_started(self):
        vid = 'appvms/work/private'
        vpath = self.origin(size=MiB)
        self.start(vpath)
        m = self.mark()
        self.resize(vpath, 2 * MiB)
        self.assertEqual(tuple(self.wait_signal(m, 'SizeChanged', vpath, VOLUME)), (MiB, 2 * MiB))
        self.assertEqual(os.path.getsize(self.img(vid)), 2 * MiB)

    def test_grow_volatile(self):
        vid = 'appvms/work/volatile'
        vpath = self.volatile(size=MiB)
        self.resize(vpath, 2 * MiB)
        self.assertEqual(os.path.getsize(self.img(vid)), 2 * MiB)
        self.assertEqual(self.vprop(vpath, 'Size'), 2 * MiB)

    def test_shrink_refused(self):
        vpath = self.origin(size=2 * MiB)
        m = self.mark()
        self.assertRejected('ShrinkRefused', self.resize, vpath, MiB, contains='appvms/work/private')
        self.assertEqual(self.vprop(vpath, 'Size'), 2 * MiB)
        self.sync()
        self.assertEqual(self.service_signals(m, 'SizeChanged'), [])

    def test_allow_shrink_not_supported(self):
        vpath = self.origin(size=2 * MiB)
        self.assertRejected('NotSupported', self.resize, vpath, MiB, opts(allow_shrink=True),
                            contains='appvms/work/private')
        self.assertEqual(self.vprop(vpath, 'Size'), 2 * MiB)
        # allow_shrink does not change a grow
        self.resize(vpath, 3 * MiB, opts(allow_shrink=True))
        self.assertEqual(self.vprop(vpath, 'Size'), 3 * MiB)

    def test_zero(self):
        vpath = self.origin()
        self.assertRejected('InvalidArgument', self.resize, vpath, 0, contains='appvms/work/private')

    def test_too_big(self):
        vpath = self.origin()
        self.assertRejected('InvalidArgument', self.resize, vpath, 2 ** 64 - 1,
                            contains=(str(2 ** 64 - 1), 'appvms/work/private'))
        self.assertRejected('InvalidArgument', self.resize, vpath, 2 ** 63,
                            contains=(str(2 ** 63), 'appvms/work/private'))

    def test_read_only(self):
        vpath = self.volatile(rw=False)
        self.assertRejected('ReadOnly', self.resize, vpath, 2 * MiB, contains='appvms/work/volatile')
        vpath = self.origin(rw=False)
        self.assertRejected('ReadOnly', self.resize, vpath, 2 * MiB, contains='appvms/work/private')

    def test_equal_size_does_nothing(self):
        vid = 'appvms/work/private'
        vpath = self.origin(size=MiB)
        before = self.snapshot_all()
        m = self.mark()
        self.resize(vpath, MiB)
        self.sync()
        self.assertEqual(self.service_signals(m, 'SizeChanged'), [])
        changed, _ = self.properties_changed(m, vpath, VOLUME)
        self.assertNotIn('Size', changed)
        # the image is untouched; a state record rewritten with the same
        # content is not something a user can tell
        after = self.without_state_mtimes(self.snapshot_all())
        self.assertEqual(after, self.without_state_mtimes(before),
                         'Resize to the same size changed files:\n' +
                         snapshot_diff(self.without_state_mtimes(before)['tree'], after['tree']))
        self.assertEqual(os.path.getsize(self.img(vid)), MiB)

    def test_unknown_option(self):
        vpath = self.origin()
        self.assertRejected('InvalidArgument', self.resize, vpath, 2 * MiB, opts(bogus_option=True),
                            contains=('bogus_option', 'appvms/work/private'))
        self.assertRejected('InvalidArgument', self.resize, vpath, 2 * MiB, opts(allow_shrink='yes'),
                            contains='allow_shrink')


class FreshnessTest(FilePoolTestCase):
    # reads go on this long past the API's 2 s, for a loaded machine
    MARGIN_S = 3

    def test_truncated_image_size_seen_after_reads(self):
        """An image truncated behind the service's back: its new Size shows
        within 2 s of the first read that follows (docs/api.md, "Freshness": a
        read of a view older than 1 s queues a re-read and does not wait for
        it). The test reads for 2 s after the truncation plus a margin and
        asserts that the new size was seen."""
        vid = 'appvms/work/private'
        vpath = self.origin(size=2 * MiB)
        self.assertEqual(self.vprop(vpath, 'Size'), 2 * MiB)
        os.truncate(self.img(vid), 4 * MiB)
        start = time.monotonic()
        seen = []  # (seconds after the truncation, Size) at each change of what reads answer
        while True:
            size = self.vprop(vpath, 'Size')
            now = time.monotonic() - start
            if not seen or seen[-1][1] != size:
                seen.append((round(now, 2), size))
            if size == 4 * MiB or now > 2 + self.MARGIN_S:
                break
            time.sleep(0.05)
        self.assertEqual(size, 4 * MiB, f'the truncated image\'s Size was not seen within {2 + self.MARGIN_S} s '
                                        f'of reads; reads answered (s after the truncation, Size): {seen}')
        self.sync()
        changed, _ = self.properties_changed(0, vpath, VOLUME)
        self.assertEqual(changed.get('Size'), 4 * MiB, 'the new Size is announced by PropertiesChanged')


class RevertTest(FilePoolTestCase):

    def test_revert_not_supported(self):
        vid = 'appvms/work/private'
        vpath = self.origin()
        self.start(vpath)
        self.stop(vpath)
        self.assertRevisionOld(vpath, vid)
        self.assertRejected('NotSupported', self.revert, vpath, 'old', contains=vid)
        self.assertRejected('NotSupported', self.revert, vpath, '', contains=vid)


class SetRwTest(FilePoolTestCase):

    def test_set_rw(self):
        vid = 'appvms/work/private'
        vpath = self.origin(rw=True)
        m = self.mark()
        self.set_rw(vpath, False, NOUI)
        self.wait_property_changed(m, vpath, VOLUME, 'Rw', False)
        self.assertProps(vpath, self.expect_origin(vid, 'private', 'work', MiB, rw=False))
        self.set_rw(vpath, True)
        self.assertProps(vpath, self.expect_origin(vid, 'private', 'work', MiB, rw=True))

    def test_set_rw_busy_while_started(self):
        vpath = self.origin(rw=True)
        self.start(vpath)
        self.assertRejected('VolumeBusy', self.set_rw, vpath, False, contains='appvms/work/private')
        self.assertTrue(self.vprop(vpath, 'Rw'))
        self.stop(vpath)
        self.set_rw(vpath, False)
        self.assertFalse(self.vprop(vpath, 'Rw'))

    def test_unknown_option(self):
        vpath = self.origin(rw=True)
        self.assertRejected('InvalidArgument', self.set_rw, vpath, False, opts(bogus_option=True),
                            contains=('bogus_option', 'appvms/work/private'))
        self.assertTrue(self.vprop(vpath, 'Rw'))


class RevisionsToKeepTest(FilePoolTestCase):

    def test_volume_set_revisions_to_keep(self):
        vid = 'appvms/work/private'
        vpath = self.origin()
        self.assertEqual(self.vprop(vpath, 'RevisionsToKeep'), 1)
        m = self.mark()
        self.set_revisions_to_keep(vpath, 0, NOUI)
        self.wait_property_changed(m, vpath, VOLUME, 'RevisionsToKeep', 0)
        self.start(vpath)
        self.stop(vpath)
        self.assertFalse(os.path.exists(self.old(vid)))
        self.set_revisions_to_keep(vpath, 1)
        self.assertEqual(self.vprop(vpath, 'RevisionsToKeep'), 1)

    def test_volume_limits(self):
        vpath = self.origin()
        self.assertRejected('NotSupported', self.set_revisions_to_keep, vpath, 2, contains='appvms/work/private')
        self.assertEqual(self.vprop(vpath, 'RevisionsToKeep'), 1)
        self.assertRejected('InvalidArgument', self.set_revisions_to_keep, vpath, -1,
                            contains=('-1', 'appvms/work/private'))
        self.assertEqual(self.vprop(vpath, 'RevisionsToKeep'), 1)

    def test_non_origin_keeps_zero(self):
        vpath = self.volatile()
        try:
            self.set_revisions_to_keep(vpath, 1)
        except DBusCallError as e:
            self.assertTrue(e.name.startswith(ERROR_PREFIX), str(e))
        self.assertEqual(self.vprop(vpath, 'RevisionsToKeep'), 0)

    def test_pool_set_revisions_to_keep(self):
        m = self.mark()
        self.pool_set_revisions_to_keep(self.pool, 0, NOUI)
        self.wait_property_changed(m, pool_path(self.pool), POOL, 'RevisionsToKeep', 0)
        p = self.pprops(self.pool)
        self.assertEqual(p['RevisionsToKeep'], 0)
        self.assertConfig(p['Config'], self.pool, 'file', {'dir_path': self.D, 'revisions_to_keep': '0'})
        vpath = self.origin()
        self.assertEqual(self.vprop(vpath, 'RevisionsToKeep'), 0)

    def test_pool_limits(self):
        self.assertRejected('NotSupported', self.pool_set_revisions_to_keep, self.pool, 2, contains=self.pool)
        self.assertEqual(self.pprops(self.pool)['RevisionsToKeep'], 1)
        self.assertRejected('InvalidArgument', self.pool_set_revisions_to_keep, self.pool, -1,
                            contains=('-1', self.pool))
        self.assertRejected('InvalidArgument', self.pool_set_revisions_to_keep, self.pool, 1,
                            opts(bogus_option=True), contains=('bogus_option', self.pool))
        self.assertRejected('NotSupported', self.pool_set_revisions_to_keep, 'linux-kernel', 1,
                            contains='linux-kernel')
        self.assertEqual(self.pprops('linux-kernel')['RevisionsToKeep'], 0)


class RemoveTest(FilePoolTestCase):

    def test_remove_origin(self):
        vid = 'appvms/work/private'
        records = self.state_records()
        vpath = self.origin()
        self.start(vpath)
        self.stop(vpath)
        for f in (self.img(vid), self.cow(vid), self.old(vid)):
            self.assertTrue(os.path.exists(f), f)
        m = self.mark()
        self.remove(vpath, NOUI)
        for f in (self.img(vid), self.cow(vid), self.old(vid)):
            self.assertFalse(os.path.exists(f), f'{f} left behind by Remove')
        self.assertEqual(self.list_volumes(self.pool), [])
        self.assertDBusError('NoSuchVolume', self.get_volume, self.pool, vid)
        self.assertDBusError(('org.freedesktop.DBus.Error.UnknownObject',
                              'org.freedesktop.DBus.Error.UnknownMethod',
                              'org.freedesktop.DBus.Error.UnknownInterface'),
                             self.vprops, vpath)
        args = self.wait_signal(m, 'InterfacesRemoved', ROOT, OBJECT_MANAGER, match=lambda a: a[0] == vpath)
        self.assertIn(VOLUME, args[1])
        self.assertNotIn(vpath, self.managed_objects())
        self.assertEqual(self.state_records(), records)
        # the vid can be used again
        self.origin()

    def test_remove_busy_while_started(self):
        vid = 'appvms/work/private'
        vpath = self.origin()
        self.start(vpath)
        self.assertRejected('VolumeBusy', self.remove, vpath, contains=vid)
        self.assertEqual(self.get_volume(self.pool, vid), vpath)
        self.assertTrue(self.vprop(vpath, 'Started'))

    def test_remove_snapshot_keeps_source(self):
        src = 'vm-templates/tpl/root'
        vid = 'appvms/work/root'
        spath = self.template_root()
        vpath = self.snapshot()
        self.start(vpath)
        self.stop(vpath)
        self.remove(vpath)
        self.assertFalse(os.path.exists(self.cow(vid)))
        self.assertTrue(os.path.isfile(self.img(src)))
        self.assertEqual(self.list_volumes(self.pool), [(src, spath)])

    def test_remove_volatile(self):
        vid = 'appvms/work/volatile'
        vpath = self.volatile()
        self.remove(vpath)
        self.assertFalse(os.path.exists(self.img(vid)))
        self.assertEqual(self.list_volumes(self.pool), [])

    def test_unknown_option(self):
        vpath = self.origin()
        self.assertRejected('InvalidArgument', self.remove, vpath, opts(bogus_option=True),
                            contains=('bogus_option', 'appvms/work/private'))
        self.assertEqual(self.get_volume(self.pool, 'appvms/work/private'), vpath)


class OptionsTest(FilePoolTestCase):
    """Every mutating method refuses unknown option keys (naming them) and
    options of the wrong type, and changes nothing."""

    def test_unknown_options_everywhere(self):
        vpath = self.origin()
        bad = opts(bogus_option=True)
        wrong_type = opts(**{'auth.no_user_interaction': GLib.Variant('s', 'true')})
        for o, contains in ((bad, 'bogus_option'), (wrong_type, 'auth.no_user_interaction')):
            vol = ('appvms/work/private', self.pool)
            pool = (self.pool,)
            calls = [
                ('Start', self.start, (vpath, o), vol),
                ('Stop', self.stop, (vpath, o), vol),
                ('Verify', self.verify, (vpath, o), vol),
                ('Remove', self.remove, (vpath, o), vol),
                ('Resize', self.resize, (vpath, 2 * MiB, o), vol),
                ('Revert', self.revert, (vpath, '', o), vol),
                ('SetRw', self.set_rw, (vpath, False, o), vol),
                ('SetRevisionsToKeep', self.set_revisions_to_keep, (vpath, 0, o), vol),
                ('CreateVolume', self.create_volume, (self.pool, vconf(name='x', vm='work', size=MiB), o), pool),
                ('Pool.SetRevisionsToKeep', self.pool_set_revisions_to_keep, (self.pool, 0, o), pool),
                ('RefreshUsage', self.refresh_usage, (self.pool, o), pool),
                ('RemovePool', self.remove_pool, (self.pool, o), pool),
                # a batch's options are about no single volume
                ('StartVolumes', self.batch, ('StartVolumes', [vpath], o), None),
                ('StopVolumes', self.batch, ('StopVolumes', [vpath], o), None),
                ('VerifyVolumes', self.batch, ('VerifyVolumes', [vpath], o), None),
            ]
            for name, fn, args, about in calls:
                with self.subTest(method=name, option=contains):
                    self.assertRejected('InvalidArgument', fn, *args,
                                        contains=(contains, about) if about else contains)
        self.assertProps(vpath, self.expect_origin('appvms/work/private', 'private', 'work', MiB))


if __name__ == '__main__':
    unittest.main(verbosity=2)

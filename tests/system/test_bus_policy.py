#!/usr/bin/python3
"""The bus policy (org.qubes.Storage1.conf), D-Bus activation from the
activation file (data/org.qubes.Storage1.service.in) and --exit-idle.

Each test starts a dbus-daemon with a system-like config of its own: type
system, a socket in a temporary directory, the default-context policy of
Debian's /usr/share/dbus-1/system.conf (everyone may connect; nobody may own
a name or send method calls unless a service's policy file says so), an
<include> of the repository's org.qubes.Storage1.conf and a <servicedir>
holding an activation file generated from the shipped template.

How the generated activation file differs from what the build installs, and
why (test only; the shipped file is not changed):
- Exec names the built binary instead of @libexecdir@/qubes-storaged, and adds
  --state-dir/--base-dir on temporary directories; --exit-idle 120 becomes
  --exit-idle 2 so that exiting on idle can be watched.
- User=root and SystemdService= are kept. dbus-daemon only uses User= when a
  <servicehelper> (dbus-daemon-launch-helper) launches the service; the
  helper is setuid, reads only the machine's own service directories and
  configuration, so it cannot run a private test bus. Without it dbus-daemon
  forks Exec itself as its own user: it runs as root here, so the service runs
  as root, which is what User=root asks for. SystemdService= is used only by
  a bus started with --systemd-activation (systemd is not PID 1 here).
- The bus is started with DBUS_SYSTEM_BUS_ADDRESS pointing at its own socket:
  dbus-daemon passes its environment to activated services and the service's
  --bus system (sd_bus_open_system) reads that variable (on a real system it
  is unset and the default socket is used).
"""

import os
import re
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from systemtest import (  # noqa: E402
    Bus, CallError, NonRoot, BUS_NAME, MANAGER, ROOT, NOT_AUTHORIZED, SRCDIR, SERVICE, SYSTEM_POLICY, MiB,
    call, call_request, check_environment, make_world, pool_path, proc_argv, proc_uid, remove_world, service_pids,
    tree_snapshot, v, wait_until)

IDLE_SECONDS = 2
SHIPPED_TEMPLATE = os.path.join(SRCDIR, 'data', 'org.qubes.Storage1.service.in')
SHIPPED_CONF = os.path.join(SRCDIR, 'org.qubes.Storage1.conf')


def parse_service_file(text):
    section, keys = None, {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        if line.startswith('['):
            section = line
            continue
        k, _, val = line.partition('=')
        keys[(section, k.strip())] = val.strip()
    return keys


def generate_activation_file(template_text, state_dir, base_dir):
    """The shipped template with the test's binary, directories and idle."""
    out = []
    for line in template_text.splitlines():
        if line.startswith('Exec='):
            m = re.fullmatch(r'Exec=@libexecdir@/qubes-storaged (.*)', line)
            assert m, f'unexpected Exec line in the template: {line}'
            args = m.group(1).split()
            i = args.index('--exit-idle')
            args[i + 1] = str(IDLE_SECONDS)
            line = 'Exec=' + ' '.join([SERVICE, *args, '--state-dir', state_dir, '--base-dir', base_dir])
        out.append(line)
    return '\n'.join(out) + '\n'


class TestBusPolicy(unittest.TestCase):

    def setUp(self):
        check_environment(self)
        self.assertTrue(os.path.exists(SHIPPED_TEMPLATE), SHIPPED_TEMPLATE)
        self.assertTrue(os.path.exists(SHIPPED_CONF), SHIPPED_CONF)
        self.world = make_world('qsd-buspolicy-')
        self.state_dir = os.path.join(self.world, 'state')
        self.base_dir = os.path.join(self.world, 'base')
        services = os.path.join(self.world, 'services')
        os.mkdir(services)
        with open(SHIPPED_TEMPLATE) as f:
            self.template = f.read()
        self.activation = generate_activation_file(self.template, self.state_dir, self.base_dir)
        with open(os.path.join(services, 'org.qubes.Storage1.service'), 'w') as f:
            f.write(self.activation)
        env = {k: val for k, val in os.environ.items() if not k.startswith('DBUS_')}
        env['DBUS_SYSTEM_BUS_ADDRESS'] = 'unix:path=' + os.path.join(self.world, 'system_bus_socket')
        env.pop('STATE_DIRECTORY', None)
        self.bus = Bus(self.world, SYSTEM_POLICY, servicedir=services, includes=[SHIPPED_CONF], env=env)
        self.assertEqual(self.bus.address, env['DBUS_SYSTEM_BUS_ADDRESS'])
        self.conn = self.bus.connect()
        self.nonroot = NonRoot(self.world, self.bus.address)

    def tearDown(self):
        self.conn.close_sync(None)
        # Stop the instances this test's bus activated while dbus-daemon, their
        # parent, is there to reap them; then the bus.
        for pid in service_pids(self.world):
            try:
                os.kill(pid, 15)
            except ProcessLookupError:
                pass
        wait_until(lambda: not service_pids(self.world), 'the activated service to stop')
        self.bus.stop()
        remove_world(self.world)

    def not_running(self):
        return not self.bus.has_owner(BUS_NAME) and not service_pids(self.world)

    def running_pid(self):
        """The pid of the activated service: the one owning the name, and
        the only instance started for this test."""
        self.assertTrue(self.bus.has_owner(BUS_NAME))
        pid = self.bus.owner_pid(BUS_NAME)
        self.assertEqual(service_pids(self.world), [pid])
        return pid

    def test_shipped_activation_file(self):
        """What the generated file is made from: the shipped template names
        the service, the system bus, root and the systemd unit."""
        keys = parse_service_file(self.template)
        self.assertEqual(keys[('[D-BUS Service]', 'Name')], BUS_NAME)
        self.assertEqual(keys[('[D-BUS Service]', 'User')], 'root')
        self.assertEqual(keys[('[D-BUS Service]', 'SystemdService')], 'qubes-storaged.service')
        exec_ = keys[('[D-BUS Service]', 'Exec')].split()
        self.assertEqual(exec_[0], '@libexecdir@/qubes-storaged')
        self.assertIn('--bus', exec_)
        self.assertEqual(exec_[exec_.index('--bus') + 1], 'system')
        self.assertIn('--exit-idle', exec_)
        gen = parse_service_file(self.activation)
        self.assertEqual(gen[('[D-BUS Service]', 'User')], 'root')
        self.assertEqual(gen[('[D-BUS Service]', 'Exec')].split()[0], SERVICE)

    def test_nonroot_cannot_own(self):
        self.assertTrue(self.not_running())
        res = self.nonroot.own(BUS_NAME)
        self.assertEqual(res.get('error'), 'org.freedesktop.DBus.Error.AccessDenied', res)
        self.assertIn(BUS_NAME, res['message'])
        # RequestName does not activate anything.
        self.assertTrue(self.not_running())
        # The same request by root is allowed by org.qubes.Storage1.conf
        # (the default context denies owning any name).
        (reply,) = call(self.conn, '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'RequestName', '(su)',
                        (BUS_NAME, 4), dest='org.freedesktop.DBus')
        self.assertEqual(reply, 1)  # DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
        (reply,) = call(self.conn, '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'ReleaseName', '(s)',
                        (BUS_NAME,), dest='org.freedesktop.DBus')
        self.assertEqual(reply, 1)  # DBUS_RELEASE_NAME_REPLY_RELEASED
        # Another name is denied to root too: the hole is only for ours.
        with self.assertRaises(CallError) as cm:
            call(self.conn, '/org/freedesktop/DBus', 'org.freedesktop.DBus', 'RequestName', '(su)',
                 ('org.qubes.Storage2', 4), dest='org.freedesktop.DBus')
        self.assertEqual(cm.exception.name, 'org.freedesktop.DBus.Error.AccessDenied')

    def test_nonroot_cannot_own_while_running(self):
        _, res = self.nonroot.call(ROOT, MANAGER, 'ListPools')
        self.assertIn('ok', res, res)
        pid = self.running_pid()
        res = self.nonroot.own(BUS_NAME)
        self.assertEqual(res.get('error'), 'org.freedesktop.DBus.Error.AccessDenied', res)
        self.assertEqual(self.bus.owner_pid(BUS_NAME), pid)

    def test_first_call_by_nonroot_activates(self):
        self.assertTrue(self.not_running(), 'nothing runs before the first call')
        events = self.nonroot.run({'calls': [call_request(ROOT, MANAGER, 'ListPools')]})
        self.assertEqual(events[0]['uid'], 65534)
        self.assertEqual(events[1], {'ok': [[['linux-kernel', pool_path('linux-kernel')],
                                             ['varlibqubes', pool_path('varlibqubes')]]]}, self.bus.read_log())
        pid = self.running_pid()
        argv = proc_argv(pid)
        self.assertEqual(argv[0], SERVICE)
        self.assertEqual(argv[argv.index('--state-dir') + 1], self.state_dir)
        self.assertEqual(argv[argv.index('--bus') + 1], 'system')
        self.assertEqual(proc_uid(pid)[:2], [0, 0], 'the activated service runs as root')
        # Its state went where the activation file said.
        self.assertTrue(os.listdir(self.state_dir))
        # The policy lets uid 65534 send any method call: the service, not
        # the bus, refuses a change (no polkit on this bus: NotAuthorized).
        _, res = self.nonroot.call(pool_path('varlibqubes'), 'org.qubes.Storage1.Pool', 'RefreshUsage', '(a{sv})',
                                   '(@a{sv} {},)')
        self.assertEqual(res.get('error'), NOT_AUTHORIZED, res)
        _, res = self.nonroot.call(ROOT, MANAGER, 'ListDrivers')
        self.assertIn('ok', res)

    def test_exit_idle_and_reactivation(self):
        self.assertTrue(self.not_running())
        # The first call, by root, activates; root adds a pool and a volume.
        pool_dir = os.path.join(self.world, 'pools', 'p1')
        call(self.conn, ROOT, MANAGER, 'AddPool', '(ssa{ss}a{sv})', ('p1', 'file', {'dir_path': pool_dir}, {}))
        (vol,) = call(self.conn, pool_path('p1'), 'org.qubes.Storage1.Pool', 'CreateVolume', '(a{sv}a{sv})',
                      ({'name': v('s', 'private'), 'vm': v('s', 'work'), 'size': v('t', MiB)}, {}))
        pid1 = self.running_pid()
        (pools1,) = call(self.conn, ROOT, MANAGER, 'ListPools')
        # Idle: it exits on its own and releases the name.
        wait_until(lambda: self.not_running(), 'the service to exit after being idle', timeout=60)
        self.assertIn('Idle for', self.bus.read_log())
        state = tree_snapshot(self.state_dir)
        self.assertTrue(state)
        # The next call (non-root) activates a new instance with the same pools.
        _, res = self.nonroot.call(ROOT, MANAGER, 'ListPools')
        self.assertEqual(res, {'ok': [[list(p) for p in pools1]]})
        pid2 = self.running_pid()
        self.assertNotEqual(pid1, pid2)
        _, res = self.nonroot.call(pool_path('p1'), 'org.qubes.Storage1.Pool', 'ListVolumes')
        self.assertEqual(res, {'ok': [[['appvms/work/private', vol]]]})
        # And it goes idle again.
        wait_until(lambda: self.not_running(), 'the second instance to exit after being idle', timeout=60)


if __name__ == '__main__':
    unittest.main(verbosity=2)

#!/usr/bin/python3
"""The shipped polkit policy with the real polkitd (package polkitd).

polkitd (/usr/lib/polkit-1/polkitd, started as root; it switches to the
polkitd user itself) runs on a private system bus inside a private mount
namespace (unshare -m), where bind mounts put
- /usr/share/polkit-1/actions: a directory holding only the repository's
  policy/org.qubes.Storage1.policy,
- /etc/polkit-1/rules.d and /usr/share/polkit-1/rules.d: empty directories
  (or, for TestShippedRulesExample, the repository's
  policy/org.qubes.Storage1.rules.example in /etc/polkit-1/rules.d, and an
  /etc/group copy where uid 65534's user "nobody" is in a group "qubes").
Nothing of the machine's own polkit configuration is read or changed.

The bus is system-like (Debian's default-context policy) and includes the
repository's org.qubes.Storage1.conf and polkitd's own bus policy file. The
service is started as root with --bus system on temporary directories.

With no login session, only <allow_any> applies: auth_admin, and with no
authentication agent that is a denial (with a challenge) for uid 65534;
uid 0 is always authorized by polkitd, and the service does not even ask.
"""

import os
import shutil
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from systemtest import (  # noqa: E402
    Bus, CallError, NonRoot, Service, MANAGER, POOL, VOLUME, ROOT, NOT_AUTHORIZED, MANAGE_POOLS,
    MANAGE_VOLUMES, START_STOP, NOBODY_UID, SRCDIR, SYSTEM_POLICY, MiB, all_objects, call, check_environment,
    get_property, gv_text, make_world, pool_path, remove_world, snapshot_diff, tree_snapshot, v, volume_path,
    wait_until)
from support import nobody  # noqa: E402

POLKITD = '/usr/lib/polkit-1/polkitd'
POLKIT_BUS_CONF = '/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf'
POLKIT_NAME = 'org.freedesktop.PolicyKit1'
AUTHORITY = '/org/freedesktop/PolicyKit1/Authority'
AUTHORITY_IFACE = 'org.freedesktop.PolicyKit1.Authority'
POLICY = os.path.join(SRCDIR, 'policy', 'org.qubes.Storage1.policy')
RULES_EXAMPLE = os.path.join(SRCDIR, 'policy', 'org.qubes.Storage1.rules.example')

# PolkitImplicitAuthorization
AUTH_ADMIN = 2
AUTH_ADMIN_KEEP = 4

# The table of API.md "Authorization": action -> (any, inactive, active).
EXPECTED_ACTIONS = {
    'org.qubes.storage1.manage-pools': (AUTH_ADMIN, AUTH_ADMIN, AUTH_ADMIN_KEEP),
    'org.qubes.storage1.manage-volumes': (AUTH_ADMIN, AUTH_ADMIN, AUTH_ADMIN_KEEP),
    'org.qubes.storage1.start-stop': (AUTH_ADMIN, AUTH_ADMIN, AUTH_ADMIN_KEEP),
    'org.qubes.storage1.import': (AUTH_ADMIN, AUTH_ADMIN, AUTH_ADMIN),
    'org.qubes.storage1.export': (AUTH_ADMIN, AUTH_ADMIN, AUTH_ADMIN),
    'org.qubes.storage1.cancel-job': (AUTH_ADMIN, AUTH_ADMIN, AUTH_ADMIN_KEEP),
}

VID = 'appvms/work/private'
NO_OPTIONS = '@a{sv} {}'


def proc_start_time(pid):
    with open(f'/proc/{pid}/stat') as f:
        return int(f.read().rsplit(')', 1)[1].split()[19])


class RealPolkitBase(unittest.TestCase):
    """A private bus, polkitd in its own mount namespace, the service."""

    RULES = None        # file to put in /etc/polkit-1/rules.d, or None
    EXTRA_GROUP = None  # (group name, member) added to polkitd's /etc/group

    @classmethod
    def setUpClass(cls):
        for path in (POLKITD, POLKIT_BUS_CONF, POLICY, shutil.which('unshare') or '/nonexistent'):
            if not os.path.exists(path):
                raise AssertionError(f'{path} is missing (packages polkitd, util-linux; the repository policy)')
        cls.world = make_world('qsd-realpolkit-')
        w = cls.world
        actions = os.path.join(w, 'polkit-actions')
        rules = os.path.join(w, 'polkit-rules')
        empty = os.path.join(w, 'polkit-empty')
        for d in (actions, rules, empty):
            os.mkdir(d)
            os.chmod(d, 0o755)
        shutil.copyfile(POLICY, os.path.join(actions, 'org.qubes.Storage1.policy'))
        os.chmod(os.path.join(actions, 'org.qubes.Storage1.policy'), 0o644)
        mounts = [(actions, '/usr/share/polkit-1/actions'), (rules, '/etc/polkit-1/rules.d'),
                  (empty, '/usr/share/polkit-1/rules.d')]
        if cls.RULES:
            dest = os.path.join(rules, '50-' + os.path.basename(cls.RULES).replace('.example', ''))
            shutil.copyfile(cls.RULES, dest)
            os.chmod(dest, 0o644)
        if cls.EXTRA_GROUP:
            group_file = os.path.join(w, 'group')
            with open('/etc/group') as f:
                groups = f.read()
            used = {int(line.split(':')[2]) for line in groups.splitlines() if line.count(':') >= 3}
            gid = next(g for g in range(20000, 30000) if g not in used)
            name, member = cls.EXTRA_GROUP
            assert f'\n{name}:' not in '\n' + groups, f'group {name} exists on this machine'
            with open(group_file, 'w') as f:
                f.write(groups.rstrip('\n') + f'\n{name}:x:{gid}:{member}\n')
            os.chmod(group_file, 0o644)
            mounts.append((group_file, '/etc/group'))

        env = {k: val for k, val in os.environ.items() if not k.startswith('DBUS_')}
        cls.bus = Bus(w, SYSTEM_POLICY, includes=[os.path.join(SRCDIR, 'org.qubes.Storage1.conf'), POLKIT_BUS_CONF],
                      env=env)
        script = ' && '.join(f'mount --bind {src} {dst}' for src, dst in mounts) + f' && exec {POLKITD} --no-debug'
        cls.polkit_log = open(os.path.join(w, 'polkitd.log'), 'w')
        # unshare execs sh, which execs polkitd: the pid is polkitd's.
        cls.polkitd = subprocess.Popen(['unshare', '--mount', '--propagation', 'private', 'sh', '-ec', script],
                                       env=dict(env, DBUS_SYSTEM_BUS_ADDRESS=cls.bus.address),
                                       stdout=cls.polkit_log, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: cls.polkitd.poll() is not None or cls.bus.has_owner(POLKIT_NAME),
                       'polkitd to own its name')
            if cls.polkitd.poll() is not None:
                raise AssertionError(f'polkitd exited with {cls.polkitd.returncode}: {cls.read_polkit_log()}')
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def read_polkit_log(cls):
        with open(os.path.join(cls.world, 'polkitd.log')) as f:
            return f.read()

    @classmethod
    def tearDownClass(cls):
        if cls.polkitd.poll() is None:
            cls.polkitd.terminate()
            try:
                cls.polkitd.wait(30)
            except subprocess.TimeoutExpired:
                cls.polkitd.kill()
                cls.polkitd.wait()
        cls.polkit_log.close()
        cls.bus.stop()
        remove_world(cls.world)

    def setUp(self):
        check_environment(self)
        self.dir = make_world('qsd-realpolkit-svc-')
        self.service = Service(self.bus, self.dir)
        self.conn = self.bus.connect()
        self.nonroot = NonRoot(self.dir, self.bus.address)
        # As root (no polkit): pool p1 with a volume.
        call(self.conn, ROOT, MANAGER, 'AddPool', '(ssa{ss}a{sv})',
             ('p1', 'file', {'dir_path': os.path.join(self.dir, 'pools', 'p1')}, {}))
        self.vol = self.create_volume('p1', 'work')

    def tearDown(self):
        self.conn.close_sync(None)
        self.service.stop()
        remove_world(self.dir)

    def create_volume(self, pool, vm):
        (path,) = call(self.conn, pool_path(pool), POOL, 'CreateVolume', '(a{sv}a{sv})',
                       ({'name': v('s', 'private'), 'vm': v('s', vm), 'size': v('t', MiB), 'rw': v('b', True)}, {}))
        return path

    def state(self):
        trees = {d: tree_snapshot(os.path.join(self.dir, d)) for d in ('state', 'base', 'pools')}
        return trees, all_objects(self.conn)

    def assertUnchanged(self, before, what):
        after = self.state()
        for d in before[0]:
            self.assertEqual(before[0][d], after[0][d], f'{what}:\n{snapshot_diff(before[0][d], after[0][d])}')
        self.assertEqual(before[1], after[1], what)

    def check_subject(self, pid, uid, action):
        """polkitd's own answer for a process: (authorized, challenge)."""
        subject = ('unix-process', {'pid': v('u', pid), 'start-time': v('t', proc_start_time(pid)),
                                    'uid': v('i', uid)})
        (res,) = call(self.conn, AUTHORITY, AUTHORITY_IFACE, 'CheckAuthorization', '((sa{sv})sa{ss}us)',
                      (subject, action, {}, 0, ''), dest=POLKIT_NAME)
        return res[0], res[1]

    def nonroot_process(self):
        p = nobody.popen(['sleep', '600'])
        self.addCleanup(lambda: (p.kill(), p.wait()))
        wait_until(lambda: proc_uid_of(p.pid) == NOBODY_UID, 'the non-root process to switch uid')
        return p.pid


def proc_uid_of(pid):
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            if line.startswith('Uid:'):
                return int(line.split()[2])
    return None


class TestShippedPolicy(RealPolkitBase):

    def test_actions_registered_as_documented(self):
        (actions,) = call(self.conn, AUTHORITY, AUTHORITY_IFACE, 'EnumerateActions', '(s)', ('',), dest=POLKIT_NAME)
        got = {a[0]: (a[6], a[7], a[8]) for a in actions}
        # Only our file is in polkitd's actions directory: the bind mount works.
        self.assertEqual(got, EXPECTED_ACTIONS, f'polkitd log:\n{self.read_polkit_log()}')
        for a in actions:
            self.assertEqual(a[3], 'Qubes OS storage service')
            self.assertTrue(a[1] and a[2], f'{a[0]} has a description and a message')

    def test_nonroot_denied_by_polkitd(self):
        pid = self.nonroot_process()
        for action in EXPECTED_ACTIONS:
            # auth_admin with no agent: not authorized, with a challenge (an
            # administrator could authenticate).
            self.assertEqual(self.check_subject(pid, NOBODY_UID, action), (False, True), action)
        # An action that is not in the policy is an error, not an answer.
        with self.assertRaises(CallError) as cm:
            self.check_subject(pid, NOBODY_UID, 'org.qubes.storage1.no-such-action')
        self.assertIn('not registered', cm.exception.message)

    def test_nonroot_calls_denied(self):
        before = self.state()
        for path, iface, method, sig, args, action in (
                (ROOT, MANAGER, 'AddPool', '(ssa{ss}a{sv})',
                 gv_text('(ssa{ss}a{sv})', ('p2', 'file', {'dir_path': os.path.join(self.dir, 'pools', 'p2')}, {})),
                 MANAGE_POOLS),
                (ROOT, MANAGER, 'RemovePool', '(sa{sv})', f"('p1', {NO_OPTIONS})", MANAGE_POOLS),
                (pool_path('p1'), POOL, 'CreateVolume', '(a{sv}a{sv})',
                 gv_text('(a{sv}a{sv})', ({'name': v('s', 'root'), 'vm': v('s', 'w2'), 'size': v('t', MiB)}, {})),
                 MANAGE_VOLUMES),
                (self.vol, VOLUME, 'SetRw', '(ba{sv})', f'(false, {NO_OPTIONS})', MANAGE_VOLUMES),
                (self.vol, VOLUME, 'Resize', '(ta{sv})', f'(uint64 {2 * MiB}, {NO_OPTIONS})', MANAGE_VOLUMES),
                (self.vol, VOLUME, 'Start', '(a{sv})', f'({NO_OPTIONS},)', START_STOP),
                (ROOT, MANAGER, 'StartVolumes', '(aoa{sv})', f"([objectpath '{self.vol}'], {NO_OPTIONS})", START_STOP)):
            _, res = self.nonroot.call(path, iface, method, sig, args)
            self.assertEqual(res.get('error'), NOT_AUTHORIZED, f'{method} as uid 65534: {res}')
            self.assertIn(action, res['message'])
        # Also when the caller allows interactive authorization: there is no
        # agent to ask, so polkitd still says no.
        _, res = self.nonroot.call(self.vol, VOLUME, 'SetRw', '(ba{sv})', f'(false, {NO_OPTIONS})', interactive=True)
        self.assertEqual(res.get('error'), NOT_AUTHORIZED, res)
        self.assertUnchanged(before, 'calls denied by polkitd changed something')
        # Reads stay open.
        _, res = self.nonroot.call(ROOT, MANAGER, 'ListPools')
        self.assertIn('ok', res)

    def test_root_allowed(self):
        # polkitd itself authorizes uid 0 for every action ...
        for action in EXPECTED_ACTIONS:
            self.assertEqual(self.check_subject(os.getpid(), 0, action), (True, False), action)
        # ... and root's calls work (the service does not need to ask).
        call(self.conn, self.vol, VOLUME, 'SetRw', '(ba{sv})', (False, {}))
        self.assertFalse(get_property(self.conn, self.vol, VOLUME, 'Rw'))
        call(self.conn, self.vol, VOLUME, 'Start', '(a{sv})', ({},))
        call(self.conn, self.vol, VOLUME, 'Stop', '(a{sv})', ({},))
        call(self.conn, ROOT, MANAGER, 'AddPool', '(ssa{ss}a{sv})',
             ('p2', 'file', {'dir_path': os.path.join(self.dir, 'pools', 'p2')}, {}))
        call(self.conn, ROOT, MANAGER, 'RemovePool', '(sa{sv})', ('p2', {}))


class TestShippedRulesExample(RealPolkitBase):
    """policy/org.qubes.Storage1.rules.example in /etc/polkit-1/rules.d, and
    "nobody" (uid 65534) in a group "qubes" (in polkitd's namespace only):
    start-stop anywhere and manage-volumes on the pool varlibqubes are
    allowed, nothing else. This shows the details (pool) reach polkit's rules."""

    RULES = RULES_EXAMPLE
    EXTRA_GROUP = ('qubes', 'nobody')

    def test_rules_use_details(self):
        self.assertTrue(os.path.exists(RULES_EXAMPLE), RULES_EXAMPLE)
        vlq = self.create_volume('varlibqubes', 'work')
        # start-stop: allowed for any pool.
        for vol in (self.vol, vlq):
            _, res = self.nonroot.call(vol, VOLUME, 'Start', '(a{sv})', f'({NO_OPTIONS},)')
            self.assertIn('ok', res, f'Start of {vol}: {res}\npolkitd log:\n{self.read_polkit_log()}')
            _, res = self.nonroot.call(vol, VOLUME, 'Stop', '(a{sv})', f'({NO_OPTIONS},)')
            self.assertIn('ok', res, res)
        # manage-volumes: only where pool == varlibqubes.
        _, res = self.nonroot.call(vlq, VOLUME, 'SetRw', '(ba{sv})', f'(false, {NO_OPTIONS})')
        self.assertIn('ok', res, res)
        self.assertFalse(get_property(self.conn, vlq, VOLUME, 'Rw'))
        _, res = self.nonroot.call(pool_path('varlibqubes'), POOL, 'CreateVolume', '(a{sv}a{sv})',
                                   gv_text('(a{sv}a{sv})', ({'name': v('s', 'root'), 'vm': v('s', 'w2'),
                                                             'size': v('t', MiB)}, {})))
        self.assertEqual(res, {'ok': [volume_path('varlibqubes', 'appvms/w2/root')]})
        before = self.state()
        _, res = self.nonroot.call(self.vol, VOLUME, 'SetRw', '(ba{sv})', f'(false, {NO_OPTIONS})')
        self.assertEqual(res.get('error'), NOT_AUTHORIZED, res)
        _, res = self.nonroot.call(pool_path('p1'), POOL, 'CreateVolume', '(a{sv}a{sv})',
                                   gv_text('(a{sv}a{sv})', ({'name': v('s', 'root'), 'vm': v('s', 'w2'),
                                                             'size': v('t', MiB)}, {})))
        self.assertEqual(res.get('error'), NOT_AUTHORIZED, res)
        # manage-pools: never by this rule.
        _, res = self.nonroot.call(ROOT, MANAGER, 'RemovePool', '(sa{sv})', f"('p1', {NO_OPTIONS})")
        self.assertEqual(res.get('error'), NOT_AUTHORIZED, res)
        self.assertUnchanged(before, 'calls the rule does not allow changed something')


if __name__ == '__main__':
    unittest.main(verbosity=2)

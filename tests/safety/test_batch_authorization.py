#!/usr/bin/python3
"""The batch verbs are authorized volume by volume.

StartVolumes, StopVolumes and VerifyVolumes ask polkit once per volume with
that volume's details (pool, vid), as Start, Stop and Verify do: a polkit rule
that denies one pool holds for the batch verbs too. A batch with one denied
volume is NotAuthorized naming it, and none of its volumes changes.

polkit is a python-dbusmock mock whose CheckAuthorization says no exactly when
the details name the pool 'locked'; the caller is uid 65534 (setpriv), the
service runs as root on a private system bus (tests/system/systemtest.py).
"""

import os
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get('QUBES_STORAGED_SRC') or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, 'tests', 'system'))

import dbus  # noqa: E402
import dbusmock  # noqa: E402

from systemtest import (  # noqa: E402
    ServiceWorld, MANAGER, POOL, VOLUME, ROOT, NOT_AUTHORIZED, START_STOP, MiB, call, get_property, pool_path, v,
    volume_path)
from support.polkit import POLKIT_IFACE, POLKIT_NAME, POLKIT_PATH, PolkitMockTestCase  # noqa: E402

OPEN, LOCKED = 'open', 'locked'
VID = 'appvms/work/private'
V_OPEN = volume_path(OPEN, VID)
V_LOCKED = volume_path(LOCKED, VID)
NO_OPTIONS = '@a{sv} {}'


class BatchAuthorizationTest(PolkitMockTestCase, ServiceWorld):

    BUS_PREFIX = 'qsd-batch-auth-bus-'
    WORLD_PREFIX = 'qsd-batch-auth-'

    @classmethod
    def spawn_polkit(cls):
        cls.mock_proc = cls.spawn_server(POLKIT_NAME, POLKIT_PATH, POLKIT_IFACE, system_bus=True,
                                         stdout=subprocess.DEVNULL)
        cls.mock = dbus.Interface(cls.get_dbus(system_bus=True).get_object(POLKIT_NAME, POLKIT_PATH),
                                  dbusmock.MOCK_IFACE)
        # A rule about one pool: no for 'locked', yes for everything else.
        cls.mock.AddMethod(POLKIT_IFACE, 'CheckAuthorization', '(sa{sv})sa{ss}us', '(bba{ss})',
                           f"ret = (args[2].get('pool') != '{LOCKED}', False, {{}})")

    def setUp(self):
        self.open_world()
        for name in (OPEN, LOCKED):
            call(self.conn, ROOT, MANAGER, 'AddPool', '(ssa{ss}a{sv})',
                 (name, 'file', {'dir_path': os.path.join(self.world, 'pools', name)}, {}))
            call(self.conn, pool_path(name), POOL, 'CreateVolume', '(a{sv}a{sv})',
                 ({'name': v('s', 'private'), 'vm': v('s', 'work'), 'size': v('t', MiB), 'rw': v('b', True),
                   'save_on_stop': v('b', True)}, {}))
        self.mock.ClearCalls()

    def tearDown(self):
        self.close_world()

    def started(self, path):
        return get_property(self.conn, path, VOLUME, 'Started')

    def batch_as_nobody(self, method, paths):
        arg = '[' + ', '.join(f"objectpath '{p}'" for p in paths) + ']'
        _, res = self.nonroot.call(ROOT, MANAGER, method, '(aoa{sv})', f'({arg}, {NO_OPTIONS})')
        return res

    def checks(self):
        out = []
        for _, method, args in self.mock.GetCalls():
            if str(method) == 'CheckAuthorization':
                out.append((str(args[1]), {str(k): str(x) for k, x in args[2].items()}))
        return out

    def assertAskedPerVolume(self, paths):
        expected = [(START_STOP, {'pool': p, 'vid': VID}) for p in paths]
        self.assertEqual(sorted(self.checks(), key=str), sorted(expected, key=str),
                         'polkit is asked once per volume, with its pool and vid')

    def test_start_volumes_denied_for_one_pool(self):
        res = self.batch_as_nobody('StartVolumes', [V_OPEN, V_LOCKED])
        self.assertEqual(res.get('error'), NOT_AUTHORIZED, res)
        self.assertIn(START_STOP, res['message'])
        self.assertIn(LOCKED, res['message'], 'the refusal names the denied volume')
        self.assertFalse(self.started(V_OPEN), 'a denied batch started a volume')
        self.assertFalse(self.started(V_LOCKED), 'a denied batch started a volume')
        self.assertAskedPerVolume([OPEN, LOCKED])
        # the volume the rule allows can be started alone
        self.mock.ClearCalls()
        res = self.batch_as_nobody('StartVolumes', [V_OPEN])
        self.assertIn('ok', res, res)
        self.assertTrue(self.started(V_OPEN))
        self.assertAskedPerVolume([OPEN])
        # and the single verb agrees with the batch verb
        _, res = self.nonroot.call(V_LOCKED, VOLUME, 'Start', '(a{sv})', f'({NO_OPTIONS},)')
        self.assertEqual(res.get('error'), NOT_AUTHORIZED, res)

    def test_stop_volumes_denied_for_one_pool(self):
        for p in (V_OPEN, V_LOCKED):
            call(self.conn, p, VOLUME, 'Start', '(a{sv})', ({},))
        self.mock.ClearCalls()
        res = self.batch_as_nobody('StopVolumes', [V_LOCKED, V_OPEN])
        self.assertEqual(res.get('error'), NOT_AUTHORIZED, res)
        self.assertTrue(self.started(V_OPEN), 'a denied batch stopped a volume')
        self.assertTrue(self.started(V_LOCKED), 'a denied batch stopped a volume')
        self.assertAskedPerVolume([OPEN, LOCKED])

    def test_verify_volumes_denied_for_one_pool(self):
        res = self.batch_as_nobody('VerifyVolumes', [V_OPEN, V_LOCKED])
        self.assertEqual(res.get('error'), NOT_AUTHORIZED, res)
        self.assertAskedPerVolume([OPEN, LOCKED])
        self.mock.ClearCalls()
        res = self.batch_as_nobody('VerifyVolumes', [V_OPEN])
        self.assertIn('ok', res, res)


if __name__ == '__main__':
    unittest.main(verbosity=2)

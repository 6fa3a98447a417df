#!/usr/bin/python3
"""Authorization of qubes-storaged against python-dbusmock's polkitd template.

A private system bus (dbus-daemon, system type, permissive policy with
<allow user="*"/> so that uid 65534 may connect), the polkitd mock on it and
the built service started as root with --bus system on temporary state and
base directories. The non-root caller is tests/system/client.py run as uid
65534 (setpriv --reuid=65534 --regid=65534 --clear-groups).

Shown here:
- every mutating method, called by uid 65534 with nothing allowed, is denied
  with NotAuthorized naming its action, and nothing changes (state, base and
  pool directories and every property identical); allowing the other
  actions does not help; allowing its action makes the same call succeed;
  the service asked polkit with the right action id, the caller's bus name as
  subject and the right details (pool, vid, size);
- reads by uid 65534 with nothing allowed succeed and never ask polkit;
- root succeeds at every mutating method with nothing allowed, never asking;
- while polkit hangs on one caller's check, other callers (reads, root's
  changes, another non-root client) are answered; the waiting call completes
  (or is denied) after polkit answers, and has changed nothing before;
- polkit absent from the bus: non-root mutating calls are NotAuthorized,
  root works; polkit vanishing while a check waits: the call is denied;
- allow-interactive-authorization and auth.no_user_interaction reach polkit
  as the flags of CheckAuthorization;
- a check that is still waiting when its object or name goes away does not
  keep the service from exiting on idle.
"""

import os
import sys
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import dbus  # noqa: E402

from systemtest import (  # noqa: E402
    CallError, Service, ServiceWorld, MANAGER, POOL, VOLUME, PROPERTIES, INTROSPECTABLE, OBJECT_MANAGER, ROOT,
    BUS_NAME, NOT_AUTHORIZED, MANAGE_POOLS, MANAGE_VOLUMES, START_STOP, MiB, all_objects,
    call, call_request, get_property, gv_text, pool_path, snapshot_diff, tree_snapshot, v, volume_path,
    wait_until)
from support.polkit import PolkitMockTestCase  # noqa: E402

ALL_ACTIONS = (MANAGE_POOLS, MANAGE_VOLUMES, START_STOP)

POOL1 = 'p1'          # file pool with the volume
POOL0 = 'p0'          # empty file pool (RemovePool)
VID = 'appvms/work/private'
VOL = volume_path(POOL1, VID)
NO_OPTIONS = '@a{sv} {}'


class PolkitTestBase(PolkitMockTestCase, ServiceWorld):
    """A private system bus per class; the polkitd mock on it unless
    WITH_POLKIT is false; a fresh service and directories per test."""

    WORLD_PREFIX = 'qsd-polkit-'

    def setUp(self):
        if self.mock is not None:
            self.mock_call('SetAllowed', dbus.Array([], signature='s'))
            self.mock_call('AllowUnknown', False)
            self.mock_call('SimulateHang', False)
            self.mock_call('SimulateHangActions', dbus.Array([], signature='s'))
            self.mock_call('ReleaseHangingCalls')
        self.open_world()
        self.make_fixture()
        if self.mock is not None:
            self.mock_call('ClearCalls')

    def tearDown(self):
        self.close_world()

    def restart_service(self, args):
        self.service.stop()
        self.service = Service(self.bus, self.world, args)

    # -- fixtures and helpers

    def make_fixture(self):
        """As root: pool p1 (file, 1 revision) with one save_on_stop rw
        volume of 1 MiB, and an empty pool p0."""
        for name in (POOL1, POOL0):
            call(self.conn, ROOT, MANAGER, 'AddPool', '(ssa{ss}a{sv})',
                 (name, 'file', {'dir_path': self.pool_dir(name), 'revisions_to_keep': '1'}, {}))
        (path,) = call(self.conn, pool_path(POOL1), POOL, 'CreateVolume', '(a{sv}a{sv})',
                       ({'name': v('s', 'private'), 'vm': v('s', 'work'), 'size': v('t', MiB),
                         'rw': v('b', True), 'save_on_stop': v('b', True)}, {}))
        self.assertEqual(path, VOL)

    def pool_dir(self, name):
        return os.path.join(self.world, 'pools', name)

    def allow(self, *actions):
        self.mock_call('SetAllowed', dbus.Array(list(actions), signature='s'))

    def polkit_checks(self):
        """The CheckAuthorization calls the mock has seen since the last
        ClearCalls, as (subject kind, subject details, action, details, flags)."""
        out = []
        for _, method, args in self.mock_call('GetCalls'):
            if str(method) != 'CheckAuthorization':
                continue
            subject, action, details, flags, _cancel = args
            out.append((str(subject[0]), {str(k): str(x) for k, x in subject[1].items()}, str(action),
                        {str(k): str(x) for k, x in details.items()}, int(flags)))
        return out

    def world_state(self):
        """What a change would show: the directories the service writes and
        every property of every object."""
        trees = {d: tree_snapshot(os.path.join(self.world, d)) for d in ('state', 'base', 'pools')}
        return trees, all_objects(self.conn)

    def assertUnchanged(self, before, what):
        after = self.world_state()
        for d in before[0]:
            self.assertEqual(before[0][d], after[0][d],
                             f'{what} changed {d}/ although it was denied:\n{snapshot_diff(before[0][d], after[0][d])}')
        self.assertEqual(before[1], after[1], f'{what} changed properties although it was denied')

    def nonroot_call(self, path, iface, method, sig=None, args=None, interactive=False):
        return self.nonroot.call(path, iface, method, sig, args, interactive)


class TestPolkitMock(PolkitTestBase):

    def check_mutating(self, action, path, iface, method, sig, args, details, allowed_error=None):
        """The pattern every mutating method goes through: denied (nothing
        changed; the right check asked), still denied with every other action
        allowed, then allowed: returns the successful reply's value (or, with
        allowed_error, checks the call got past polkit to the driver, which
        answered that error)."""
        what = f'{iface.rsplit(".", 1)[1]}.{method}'
        before = self.world_state()
        sender, res = self.nonroot_call(path, iface, method, sig, args)
        self.assertEqual(res.get('error'), NOT_AUTHORIZED, f'{what} as uid 65534 with nothing allowed: {res}')
        self.assertIn(action, res['message'], f'{what}: the NotAuthorized message names the action')
        self.assertUnchanged(before, what)
        checks = self.polkit_checks()
        self.assertEqual(len(checks), 1, f'{what}: one CheckAuthorization per call, got {checks}')
        kind, subject, got_action, got_details, flags = checks[0]
        self.assertEqual(kind, 'system-bus-name', what)
        self.assertEqual(subject, {'name': sender}, f'{what}: polkit is asked about the caller')
        self.assertEqual(got_action, action, what)
        if details is not None:
            self.assertEqual(got_details, details, f'{what}: details passed to polkit')
        self.assertEqual(flags, 0, f'{what}: no interaction was allowed by the caller')

        self.mock_call('ClearCalls')
        self.allow(*[a for a in ALL_ACTIONS if a != action])
        _, res = self.nonroot_call(path, iface, method, sig, args)
        self.assertEqual(res.get('error'), NOT_AUTHORIZED,
                         f'{what} with every action but {action} allowed: {res}')
        self.assertUnchanged(before, what)
        self.assertEqual([c[2] for c in self.polkit_checks()], [action])

        self.mock_call('ClearCalls')
        self.allow(action)
        _, res = self.nonroot_call(path, iface, method, sig, args)
        if allowed_error:
            self.assertEqual(res.get('error'), allowed_error, f'{what} as uid 65534 with {action} allowed: {res}')
        else:
            self.assertIn('ok', res, f'{what} as uid 65534 with {action} allowed: {res}')
        checks = self.polkit_checks()
        self.assertEqual(len(checks), 1, checks)
        self.assertEqual(checks[0][2], action)
        if details is not None:
            self.assertEqual(checks[0][3], details)
        return res.get('ok')

    def vol_prop(self, name, path=VOL):
        return get_property(self.conn, path, VOLUME, name)

    def root_vol(self, method, sig='(a{sv})', args=({},)):
        return call(self.conn, VOL, VOLUME, method, sig, args)

    # ---- Manager

    def test_add_pool(self):
        cfg = {'dir_path': self.pool_dir('p2'), 'revisions_to_keep': '1'}
        out = self.check_mutating(MANAGE_POOLS, ROOT, MANAGER, 'AddPool', '(ssa{ss}a{sv})',
                                  gv_text('(ssa{ss}a{sv})', ('p2', 'file', cfg, {})), {'pool': 'p2'})
        self.assertEqual(out, [pool_path('p2')])
        self.assertIn(('p2', pool_path('p2')), call(self.conn, ROOT, MANAGER, 'ListPools')[0])

    def test_remove_pool(self):
        self.check_mutating(MANAGE_POOLS, ROOT, MANAGER, 'RemovePool', '(sa{sv})', f"('{POOL0}', {NO_OPTIONS})",
                            {'pool': POOL0})
        with self.assertRaises(CallError) as cm:
            call(self.conn, ROOT, MANAGER, 'GetPool', '(s)', (POOL0,))
        self.assertEqual(cm.exception.name, 'org.qubes.Storage1.Error.NoSuchPool')

    def test_start_volumes(self):
        self.check_mutating(START_STOP, ROOT, MANAGER, 'StartVolumes', '(aoa{sv})', f"([objectpath '{VOL}'], {NO_OPTIONS})",
                            None)
        self.assertTrue(self.vol_prop('Started'))

    def test_stop_volumes(self):
        self.root_vol('Start')
        self.check_mutating(START_STOP, ROOT, MANAGER, 'StopVolumes', '(aoa{sv})', f"([objectpath '{VOL}'], {NO_OPTIONS})",
                            None)
        self.assertFalse(self.vol_prop('Started'))

    def test_verify_volumes(self):
        self.check_mutating(START_STOP, ROOT, MANAGER, 'VerifyVolumes', '(aoa{sv})',
                            f"([objectpath '{VOL}'], {NO_OPTIONS})", None)

    # ---- Pool

    def test_create_volume(self):
        cfg = {'name': v('s', 'root'), 'vm': v('s', 'work2'), 'size': v('t', MiB)}
        out = self.check_mutating(MANAGE_VOLUMES, pool_path(POOL1), POOL, 'CreateVolume', '(a{sv}a{sv})',
                                  gv_text('(a{sv}a{sv})', (cfg, {})),
                                  {'pool': POOL1, 'vid': 'appvms/work2/root', 'size': str(MiB)})
        self.assertEqual(out, [volume_path(POOL1, 'appvms/work2/root')])
        call(self.conn, pool_path(POOL1), POOL, 'GetVolume', '(s)', ('appvms/work2/root',))

    def test_pool_set_revisions_to_keep(self):
        self.assertEqual(get_property(self.conn, pool_path(POOL1), POOL, 'RevisionsToKeep'), 1)
        self.check_mutating(MANAGE_POOLS, pool_path(POOL1), POOL, 'SetRevisionsToKeep', '(ia{sv})',
                            f'(0, {NO_OPTIONS})', {'pool': POOL1})
        self.assertEqual(get_property(self.conn, pool_path(POOL1), POOL, 'RevisionsToKeep'), 0)

    def test_refresh_usage(self):
        self.check_mutating(MANAGE_VOLUMES, pool_path(POOL1), POOL, 'RefreshUsage', '(a{sv})', f'({NO_OPTIONS},)',
                            {'pool': POOL1})

    # ---- Volume

    def test_volume_start(self):
        self.check_mutating(START_STOP, VOL, VOLUME, 'Start', '(a{sv})', f'({NO_OPTIONS},)', {'pool': POOL1, 'vid': VID})
        self.assertTrue(self.vol_prop('Started'))

    def test_volume_stop(self):
        self.root_vol('Start')
        self.check_mutating(START_STOP, VOL, VOLUME, 'Stop', '(a{sv})', f'({NO_OPTIONS},)', {'pool': POOL1, 'vid': VID})
        self.assertFalse(self.vol_prop('Started'))

    def test_volume_verify(self):
        out = self.check_mutating(START_STOP, VOL, VOLUME, 'Verify', '(a{sv})', f'({NO_OPTIONS},)',
                                  {'pool': POOL1, 'vid': VID})
        self.assertEqual(out, [True])

    def test_volume_remove(self):
        self.check_mutating(MANAGE_VOLUMES, VOL, VOLUME, 'Remove', '(a{sv})', f'({NO_OPTIONS},)',
                            {'pool': POOL1, 'vid': VID})
        with self.assertRaises(CallError) as cm:
            call(self.conn, pool_path(POOL1), POOL, 'GetVolume', '(s)', (VID,))
        self.assertEqual(cm.exception.name, 'org.qubes.Storage1.Error.NoSuchVolume')

    def test_volume_resize(self):
        self.assertEqual(self.vol_prop('Size'), MiB)
        self.check_mutating(MANAGE_VOLUMES, VOL, VOLUME, 'Resize', '(ta{sv})', f'(uint64 {2 * MiB}, {NO_OPTIONS})',
                            {'pool': POOL1, 'vid': VID, 'size': str(2 * MiB)})
        self.assertEqual(self.vol_prop('Size'), 2 * MiB)

    def test_volume_revert(self):
        # A revision to go back to: root starts and stops the volume.
        self.root_vol('Start')
        self.root_vol('Stop')
        revisions = self.vol_prop('Revisions')
        self.assertEqual(len(revisions), 1, revisions)
        # The file driver cannot revert (like Qubes' file pool): once
        # allowed, the call reaches the driver, which says NotSupported.
        self.check_mutating(MANAGE_VOLUMES, VOL, VOLUME, 'Revert', '(sa{sv})', f"('', {NO_OPTIONS})",
                            {'pool': POOL1, 'vid': VID}, allowed_error='org.qubes.Storage1.Error.NotSupported')

    def test_volume_set_rw(self):
        self.assertTrue(self.vol_prop('Rw'))
        self.check_mutating(MANAGE_VOLUMES, VOL, VOLUME, 'SetRw', '(ba{sv})', f'(false, {NO_OPTIONS})',
                            {'pool': POOL1, 'vid': VID})
        self.assertFalse(self.vol_prop('Rw'))

    def test_volume_set_revisions_to_keep(self):
        self.assertEqual(self.vol_prop('RevisionsToKeep'), 1)
        self.check_mutating(MANAGE_VOLUMES, VOL, VOLUME, 'SetRevisionsToKeep', '(ia{sv})', f'(0, {NO_OPTIONS})',
                            {'pool': POOL1, 'vid': VID})
        self.assertEqual(self.vol_prop('RevisionsToKeep'), 0)

    # ---- reads, root, flags

    def test_reads_as_nonroot_never_ask(self):
        reads = [
            call_request(ROOT, MANAGER, 'ListDrivers'),
            call_request(ROOT, MANAGER, 'ListPools'),
            call_request(ROOT, MANAGER, 'GetPool', '(s)', f"('{POOL1}',)"),
            call_request(pool_path(POOL1), POOL, 'ListVolumes'),
            call_request(pool_path(POOL1), POOL, 'GetVolume', '(s)', f"('{VID}',)"),
            call_request(ROOT, PROPERTIES, 'GetAll', '(s)', f"('{MANAGER}',)"),
            call_request(pool_path(POOL1), PROPERTIES, 'GetAll', '(s)', f"('{POOL}',)"),
            call_request(VOL, PROPERTIES, 'GetAll', '(s)', f"('{VOLUME}',)"),
            call_request(VOL, PROPERTIES, 'Get', '(ss)', f"('{VOLUME}', 'Size')"),
            call_request(ROOT, INTROSPECTABLE, 'Introspect'),
            call_request(pool_path(POOL1), INTROSPECTABLE, 'Introspect'),
            call_request(VOL, INTROSPECTABLE, 'Introspect'),
            call_request(ROOT, OBJECT_MANAGER, 'GetManagedObjects'),
        ]
        before = self.world_state()
        events = self.nonroot.run({'calls': reads})
        self.assertEqual(events[0]['uid'], 65534)
        for req, res in zip(reads, events[1:]):
            self.assertIn('ok', res, f'{req["iface"]}.{req["method"]} on {req["path"]} as uid 65534: {res}')
        self.assertEqual(len(events), len(reads) + 1)
        self.assertEqual(events[2]['ok'][0], sorted([[POOL0, pool_path(POOL0)], [POOL1, pool_path(POOL1)],
                                                     ['linux-kernel', pool_path('linux-kernel')],
                                                     ['varlibqubes', pool_path('varlibqubes')]]))
        self.assertEqual(events[5]['ok'], [VOL])
        self.assertEqual(self.polkit_checks(), [], 'reads must not ask polkit')
        self.assertUnchanged(before, 'reads')

    def test_root_needs_no_polkit(self):
        """Every mutating method as root with nothing allowed: all succeed and
        polkit is never asked."""
        c = self.conn
        p1 = pool_path(POOL1)
        call(c, ROOT, MANAGER, 'AddPool', '(ssa{ss}a{sv})', ('p2', 'file', {'dir_path': self.pool_dir('p2')}, {}))
        call(c, ROOT, MANAGER, 'RemovePool', '(sa{sv})', ('p2', {}))
        call(c, p1, POOL, 'SetRevisionsToKeep', '(ia{sv})', (1, {}))
        call(c, p1, POOL, 'RefreshUsage', '(a{sv})', ({},))
        (vol2,) = call(c, p1, POOL, 'CreateVolume', '(a{sv}a{sv})',
                       ({'name': v('s', 'root'), 'vm': v('s', 'work2'), 'size': v('t', MiB)}, {}))
        call(c, ROOT, MANAGER, 'StartVolumes', '(aoa{sv})', ([VOL, vol2], {}))
        call(c, ROOT, MANAGER, 'StopVolumes', '(aoa{sv})', ([VOL, vol2], {}))
        call(c, ROOT, MANAGER, 'VerifyVolumes', '(aoa{sv})', ([VOL, vol2], {}))
        self.root_vol('Start')
        self.assertEqual(self.root_vol('Verify'), (True,))
        self.root_vol('Stop')
        with self.assertRaises(CallError) as cm:  # past polkit: the file driver cannot revert
            self.root_vol('Revert', '(sa{sv})', ('', {}))
        self.assertEqual(cm.exception.name, 'org.qubes.Storage1.Error.NotSupported')
        self.root_vol('Resize', '(ta{sv})', (2 * MiB, {}))
        self.root_vol('SetRw', '(ba{sv})', (False, {}))
        self.root_vol('SetRevisionsToKeep', '(ia{sv})', (0, {}))
        self.root_vol('Remove')
        call(c, vol2, VOLUME, 'Remove', '(a{sv})', ({},))
        call(c, ROOT, MANAGER, 'RemovePool', '(sa{sv})', (POOL0, {}))
        self.assertEqual(self.polkit_checks(), [], 'uid 0 must not ask polkit')

    def test_interactive_flags(self):
        """The caller's allow-interactive-authorization flag reaches polkit
        as AllowUserInteraction (1), unless auth.no_user_interaction is set."""
        self.allow(MANAGE_VOLUMES)
        _, res = self.nonroot_call(VOL, VOLUME, 'SetRw', '(ba{sv})', f'(true, {NO_OPTIONS})', interactive=True)
        self.assertIn('ok', res)
        _, res = self.nonroot_call(VOL, VOLUME, 'SetRw', '(ba{sv})', "(true, {'auth.no_user_interaction': <true>})",
                                   interactive=True)
        self.assertIn('ok', res)
        _, res = self.nonroot_call(VOL, VOLUME, 'SetRw', '(ba{sv})', f'(true, {NO_OPTIONS})', interactive=False)
        self.assertIn('ok', res)
        self.assertEqual([c[4] for c in self.polkit_checks()], [1, 0, 0])

    # ---- a hanging polkit

    def wait_hanging(self):
        wait_until(lambda: bool(self.mock_call('HaveHangingCalls')), 'the check to reach polkit')

    def test_hang_others_answered_then_completes(self):
        self.allow(MANAGE_VOLUMES)
        self.mock_call('SimulateHang', True)
        new_vid = 'appvms/work3/root'
        waiting = self.nonroot.start({'calls': [call_request(
            pool_path(POOL1), POOL, 'CreateVolume', '(a{sv}a{sv})',
            gv_text('(a{sv}a{sv})', ({'name': v('s', 'root'), 'vm': v('s', 'work3'), 'size': v('t', MiB)}, {})))]})
        try:
            self.assertIn('sender', waiting.next_event())
            self.wait_hanging()
            # Other callers are answered while that check hangs: a read by
            # root, a change by root (no polkit), reads by another uid 65534
            # client on its own connection.
            self.assertIn(POOL1, [n for n, _ in call(self.conn, ROOT, MANAGER, 'ListPools')[0]])
            call(self.conn, VOL, VOLUME, 'SetRevisionsToKeep', '(ia{sv})', (1, {}))
            before = self.world_state()
            events = self.nonroot.run({'calls': [
                call_request(VOL, PROPERTIES, 'GetAll', '(s)', f"('{VOLUME}',)"),
                call_request(pool_path(POOL1), POOL, 'ListVolumes')]})
            self.assertIn('ok', events[1], events)
            self.assertIn('ok', events[2], events)
            # ... and all that while the hanging call has no answer and has
            # changed nothing.
            self.assertTrue(waiting.running(), 'the call waiting for polkit was answered before polkit answered')
            self.assertTrue(self.mock_call('HaveHangingCalls'))
            with self.assertRaises(CallError):
                call(self.conn, pool_path(POOL1), POOL, 'GetVolume', '(s)', (new_vid,))
            self.assertFalse(os.path.exists(os.path.join(self.pool_dir(POOL1), 'appvms', 'work3')))
            self.assertUnchanged(before, 'a CreateVolume waiting for polkit')
            self.mock_call('ReleaseHangingCalls')
            events = waiting.finish()
        finally:
            waiting.kill()
        self.assertEqual(events[-1], {'ok': [volume_path(POOL1, new_vid)]})
        call(self.conn, pool_path(POOL1), POOL, 'GetVolume', '(s)', (new_vid,))

    def test_hang_then_denied(self):
        self.mock_call('SimulateHang', True)
        waiting = self.nonroot.start({'calls': [call_request(VOL, VOLUME, 'Resize', '(ta{sv})',
                                                             f'(uint64 {4 * MiB}, {NO_OPTIONS})')]})
        try:
            self.assertIn('sender', waiting.next_event())
            self.wait_hanging()
            before = self.world_state()
            self.assertEqual(self.vol_prop('Size'), MiB)
            self.assertTrue(waiting.running())
            self.mock_call('ReleaseHangingCalls')
            events = waiting.finish()
        finally:
            waiting.kill()
        self.assertEqual(events[-1].get('error'), NOT_AUTHORIZED, events)
        self.assertUnchanged(before, 'a denied Resize')
        self.assertEqual(self.vol_prop('Size'), MiB)

    def test_hang_many_waiting_calls_independent(self):
        """Two non-root calls hang on polkit at once; a third caller is
        answered; both complete once polkit answers."""
        self.allow(START_STOP, MANAGE_VOLUMES)
        self.mock_call('SimulateHangActions', dbus.Array([START_STOP], signature='s'))
        a = self.nonroot.start({'calls': [call_request(VOL, VOLUME, 'Verify', '(a{sv})', f'({NO_OPTIONS},)')]})
        b = self.nonroot.start({'calls': [call_request(ROOT, MANAGER, 'VerifyVolumes', '(aoa{sv})',
                                                       f"([objectpath '{VOL}'], {NO_OPTIONS})")]})
        try:
            a.next_event()
            b.next_event()
            wait_until(lambda: len(self.polkit_checks()) == 2, 'both checks to reach polkit')
            # Not hanging: manage-volumes is answered at once for a third caller.
            _, res = self.nonroot_call(VOL, VOLUME, 'SetRw', '(ba{sv})', f'(true, {NO_OPTIONS})')
            self.assertIn('ok', res)
            self.assertTrue(a.running() and b.running())
            self.mock_call('ReleaseHangingCalls')
            ea, eb = a.finish(), b.finish()
        finally:
            a.kill()
            b.kill()
        self.assertEqual(ea[-1], {'ok': [True]})
        self.assertEqual(eb[-1], {'ok': []})

    def test_waiting_caller_disconnects(self):
        """A caller that goes away while its check waits: the check's answer
        changes nothing and the service goes on answering."""
        self.allow(MANAGE_VOLUMES)
        self.mock_call('SimulateHang', True)
        waiting = self.nonroot.start({'calls': [call_request(VOL, VOLUME, 'SetRw', '(ba{sv})',
                                                             f'(false, {NO_OPTIONS})')]})
        waiting.next_event()
        self.wait_hanging()
        waiting.kill()
        self.mock_call('ReleaseHangingCalls')
        # The service is alive and answers; the answer to a caller that left
        # is of no importance, but the call (allowed) may have run: either way
        # the object is consistent and readable.
        self.assertIn(self.vol_prop('Rw'), (True, False))
        _, res = self.nonroot_call(ROOT, MANAGER, 'ListPools')
        self.assertIn('ok', res)


class TestPolkitIdle(PolkitTestBase):
    """--exit-idle with polkit checks: the service exits when nothing waits,
    also after a waiting check's object went away meanwhile."""

    SERVICE_ARGS = ('--exit-idle', '2')

    def wait_exit(self, what):
        wait_until(lambda: self.service.proc.poll() is not None, f'the service to exit on idle ({what})', timeout=60)
        self.assertEqual(self.service.proc.returncode, 0, self.service.read_log())
        self.assertFalse(self.bus.has_owner(BUS_NAME))

    def test_idle_exit_after_denied_call(self):
        _, res = self.nonroot_call(VOL, VOLUME, 'SetRw', '(ba{sv})', f'(false, {NO_OPTIONS})')
        self.assertEqual(res.get('error'), NOT_AUTHORIZED)
        self.wait_exit('after a denied call')

    def test_idle_exit_when_volume_removed_while_check_waits(self):
        self.allow(MANAGE_VOLUMES)
        self.mock_call('SimulateHang', True)
        waiting = self.nonroot.start({'calls': [call_request(VOL, VOLUME, 'Resize', '(ta{sv})',
                                                             f'(uint64 {2 * MiB}, {NO_OPTIONS})')]})
        try:
            waiting.next_event()
            wait_until(lambda: bool(self.mock_call('HaveHangingCalls')), 'the check to reach polkit')
            call(self.conn, VOL, VOLUME, 'Remove', '(a{sv})', ({},))
            self.mock_call('ReleaseHangingCalls')
            events = waiting.finish()
        finally:
            waiting.kill()
        self.assertIn('error', events[-1], f'a Resize of a removed volume cannot succeed: {events}')
        self.wait_exit('after a waiting check whose volume was removed')

    def test_idle_exit_when_pool_added_while_check_waits(self):
        self.allow(MANAGE_POOLS)
        self.mock_call('SimulateHang', True)
        cfg = {'dir_path': self.pool_dir('p2')}
        waiting = self.nonroot.start({'calls': [call_request(ROOT, MANAGER, 'AddPool', '(ssa{ss}a{sv})',
                                                             gv_text('(ssa{ss}a{sv})', ('p2', 'file', cfg, {})))]})
        try:
            waiting.next_event()
            wait_until(lambda: bool(self.mock_call('HaveHangingCalls')), 'the check to reach polkit')
            call(self.conn, ROOT, MANAGER, 'AddPool', '(ssa{ss}a{sv})', ('p2', 'file', cfg, {}))
            self.mock_call('ReleaseHangingCalls')
            events = waiting.finish()
        finally:
            waiting.kill()
        self.assertEqual(events[-1].get('error'), 'org.qubes.Storage1.Error.AlreadyExists', events)
        self.wait_exit('after a waiting AddPool whose pool was added by another caller')


class TestPolkitVanishes(PolkitTestBase):
    """polkitd goes away while a check waits: the call is denied."""

    def test_polkit_vanishes_while_waiting(self):
        self.allow(MANAGE_VOLUMES)
        self.mock_call('SimulateHang', True)
        waiting = self.nonroot.start({'calls': [call_request(VOL, VOLUME, 'SetRw', '(ba{sv})',
                                                             f'(false, {NO_OPTIONS})')]})
        try:
            waiting.next_event()
            wait_until(lambda: bool(self.mock_call('HaveHangingCalls')), 'the check to reach polkit')
            before = self.world_state()
            self.kill_polkit()
            events = waiting.finish()
        finally:
            waiting.kill()
            if self.mock is None:
                self.spawn_polkit()
        self.assertEqual(events[-1].get('error'), NOT_AUTHORIZED, events)
        self.assertUnchanged(before, 'a call whose polkit check never came back')
        self.assertTrue(get_property(self.conn, VOL, VOLUME, 'Rw'))


class TestPolkitAbsent(PolkitTestBase):
    """No polkitd on the bus at all."""

    WITH_POLKIT = False

    def test_nonroot_denied_root_works(self):
        self.assertFalse(self.bus.has_owner('org.freedesktop.PolicyKit1'))
        before = self.world_state()
        for path, iface, method, sig, args, action in (
                (VOL, VOLUME, 'SetRw', '(ba{sv})', f'(false, {NO_OPTIONS})', MANAGE_VOLUMES),
                (VOL, VOLUME, 'Start', '(a{sv})', f'({NO_OPTIONS},)', START_STOP),
                (ROOT, MANAGER, 'RemovePool', '(sa{sv})', f"('{POOL0}', {NO_OPTIONS})", MANAGE_POOLS)):
            _, res = self.nonroot_call(path, iface, method, sig, args)
            self.assertEqual(res.get('error'), NOT_AUTHORIZED, f'{method} without polkit: {res}')
            self.assertIn(action, res['message'])
        self.assertUnchanged(before, 'denied calls without polkit')
        # Reads work for everyone, changes for root.
        _, res = self.nonroot_call(ROOT, MANAGER, 'ListPools')
        self.assertIn('ok', res)
        call(self.conn, VOL, VOLUME, 'SetRw', '(ba{sv})', (False, {}))
        self.assertFalse(get_property(self.conn, VOL, VOLUME, 'Rw'))
        call(self.conn, VOL, VOLUME, 'Start', '(a{sv})', ({},))
        call(self.conn, ROOT, MANAGER, 'RemovePool', '(sa{sv})', (POOL0, {}))


if __name__ == '__main__':
    unittest.main(verbosity=2)

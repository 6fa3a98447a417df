"""The event loop never blocks; per-volume order, cross-volume parallelism.

The service's test seam QUBES_STORAGED_TEST_SLOW_VID / _SLOW_MS makes every
storage operation on one vid sleep on its worker before it starts. The
assertions are about the order in which replies arrive, never about time.
"""

import os
import unittest

from storaged import (MANAGER, OBJECT_MANAGER, POOL, PROPERTIES, ROOT, VOLUME, MiB, StoragedTestCase, vconf,
                      volume_path)

SLOW_VID = 'appvms/slow/private'
SLOW_MS = 3000


class ConcurrencyTest(StoragedTestCase):
    service_env = {'QUBES_STORAGED_TEST_SLOW_VID': SLOW_VID, 'QUBES_STORAGED_TEST_SLOW_MS': str(SLOW_MS)}
    pool = 'fp'

    def setUp(self):
        super().setUp()
        self.D = os.path.join(self.pools_dir, self.pool)
        self.add_pool(self.pool, 'file', {'dir_path': self.D, 'revisions_to_keep': '1'})
        self.fast = self.create_volume(self.pool, dict(name='private', vm='fast', size=MiB, rw=True,
                                                       save_on_stop=True))
        self.slow = self.create_volume(self.pool, dict(name='private', vm='slow', size=MiB, rw=True,
                                                       save_on_stop=True))
        self.assertEqual(self.slow, volume_path(self.pool, SLOW_VID))
        self.events = []

    def async_op(self, label, path, method, sig='a{sv}', args=({},), reply=''):
        return self.call_async(path, VOLUME, method, sig, args, reply,
                               on_done=lambda st: self.events.append(label))

    def assertDone(self, state, label):
        self.wait_until(lambda: state['done'], f'reply to {label}')
        self.assertNotIn('error', state, f'{label} failed: {state.get("error")}')

    def test_reads_answered_while_start_pending(self):
        start = self.async_op('slow Start', self.slow, 'Start')
        # everything below is answered while the slow Start is still running
        reads = [
            ('Get Size of another volume', lambda: self.vprop(self.fast, 'Size')),
            ('GetAll of another volume', lambda: self.vprops(self.fast)),
            ('ListPools', lambda: self.call(ROOT, MANAGER, 'ListPools', reply='a(so)')),
            ('ListVolumes', lambda: self.list_volumes(self.pool)),
            ('GetVolume', lambda: self.get_volume(self.pool, SLOW_VID)),
            ('pool GetAll', lambda: self.get_all(self.volume_pool_path(), POOL)),
            ('GetManagedObjects', lambda: self.call(ROOT, OBJECT_MANAGER, 'GetManagedObjects',
                                                    reply='a{oa{sa{sv}}}')),
            ('Get Started of the busy volume', lambda: self.vprop(self.slow, 'Started')),
            ('Version', lambda: self.call(ROOT, PROPERTIES, 'Get', 'ss', (MANAGER, 'Version'), 'v')),
        ]
        for label, fn in reads:
            fn()
            self.drain()   # dispatches the Start reply if it had arrived before this one
            self.events.append(label)
        self.assertFalse(start['done'], f'slow Start replied before the reads were answered: {self.events}')
        self.assertDone(start, 'slow Start')
        self.assertEqual(self.events, [label for label, _ in reads] + ['slow Start'])
        self.assertTrue(self.vprop(self.slow, 'Started'))

    def volume_pool_path(self):
        return self.vprop(self.slow, 'Pool')

    def test_other_volume_runs_in_parallel(self):
        slow = self.async_op('slow Start', self.slow, 'Start')
        fast = self.async_op('fast Start', self.fast, 'Start')
        self.assertDone(fast, 'fast Start')
        self.assertFalse(slow['done'], f'the fast volume waited for the slow one: {self.events}')
        self.assertDone(slow, 'slow Start')
        self.assertEqual(self.events, ['fast Start', 'slow Start'])
        self.assertTrue(self.vprop(self.fast, 'Started'))
        self.assertTrue(self.vprop(self.slow, 'Started'))

    def test_other_volume_create_and_batch_in_parallel(self):
        slow = self.async_op('slow Start', self.slow, 'Start')
        created = self.call_async(self.vprop(self.slow, 'Pool'), POOL, 'CreateVolume', 'a{sv}a{sv}',
                                  (self.vconf_volatile(), {}), 'o',
                                  on_done=lambda st: self.events.append('CreateVolume'))
        batch = self.call_async(ROOT, MANAGER, 'StartVolumes', 'aoa{sv}', ([self.fast], {}), '',
                                on_done=lambda st: self.events.append('StartVolumes'))
        self.assertDone(created, 'CreateVolume')
        self.assertDone(batch, 'StartVolumes')
        self.assertFalse(slow['done'], f'other volumes waited for the slow one: {self.events}')
        self.assertDone(slow, 'slow Start')
        self.assertEqual(self.events[-1], 'slow Start')
        self.assertTrue(self.vprop(self.fast, 'Started'))

    def vconf_volatile(self):
        return vconf(name='volatile', vm='fast', size=MiB, rw=True)

    def test_same_volume_in_arrival_order(self):
        m = self.mark()
        start = self.async_op('Start', self.slow, 'Start')
        resize = self.async_op('Resize', self.slow, 'Resize', 'ta{sv}', (2 * MiB, {}))
        stop = self.async_op('Stop', self.slow, 'Stop')
        verify = self.async_op('Verify', self.slow, 'Verify', reply='b')
        for st, label in ((start, 'Start'), (resize, 'Resize'), (stop, 'Stop'), (verify, 'Verify')):
            self.assertDone(st, label)
        self.assertEqual(self.events, ['Start', 'Resize', 'Stop', 'Verify'])
        # the state is that of Start, then Resize, then Stop
        self.assertFalse(self.vprop(self.slow, 'Started'))
        self.assertEqual(self.vprop(self.slow, 'Size'), 2 * MiB)
        self.assertTrue(os.path.isfile(os.path.join(self.D, SLOW_VID + '-cow.img.old')))
        started = [a[1]['Started'] for (_, _, _, a) in self.service_signals(m, 'PropertiesChanged', self.slow)
                   if a[0] == VOLUME and 'Started' in a[1]]
        self.assertEqual(started, [True, False])

    def test_busy_checks_follow_the_queue(self):
        # Remove and SetRw arrive while Start is still running: they are
        # checked when their turn comes, after Start, so the volume is busy
        start = self.async_op('Start', self.slow, 'Start')
        remove = self.async_op('Remove', self.slow, 'Remove')
        set_rw = self.async_op('SetRw', self.slow, 'SetRw', 'ba{sv}', (False, {}))
        for st, label in ((start, 'Start'), (remove, 'Remove'), (set_rw, 'SetRw')):
            self.wait_until(lambda: st['done'], f'reply to {label}')
        self.assertNotIn('error', start)
        self.assertEqual(self.events, ['Start', 'Remove', 'SetRw'])
        for st, label in ((remove, 'Remove'), (set_rw, 'SetRw')):
            self.assertIn('error', st, f'{label} queued after Start succeeded on a started volume')
            self.assertEqual(st['error'].name, 'org.qubes.Storage1.Error.VolumeBusy', str(st['error']))
        self.assertEqual(self.get_volume(self.pool, SLOW_VID), self.slow)
        self.assertTrue(os.path.isfile(os.path.join(self.D, SLOW_VID + '.img')))
        self.assertTrue(self.vprop(self.slow, 'Started'))
        self.assertTrue(self.vprop(self.slow, 'Rw'))

if __name__ == '__main__':
    unittest.main(verbosity=2)

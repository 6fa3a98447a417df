"""Rule 24 on btrfs: reflink operations run off the event loop and the
volumes of one VM start and stop concurrently. With one volume held back by
the slow-operation seam (QUBES_STORAGED_TEST_SLOW_VID/_MS), StartVolumes and
StopVolumes finish the other volumes' files first while the service keeps
answering property reads; the call replies only when all are done. (These
are the pool's first batches of each verb, which run concurrently: later
ones run in the mode the pool measured cheaper, service/batch-mode.c.)"""

import os

from reflinktest import GiB, MANAGER, ROOT, ReflinkTestCase, content_digest, main, random_chunks, write_chunks

SLOW_MS = 8000


class ParallelTest(ReflinkTestCase):

    def setUp(self):
        super().setUp()
        self.mnt = self.mount('btrfs')
        self.D = os.path.join(self.mnt, 'pool')
        self.add_reflink_pool('r', self.D, revisions_to_keep=1)

    def test_volumes_of_a_vm_in_parallel(self):
        tpl = self.origin('r', 'tpl', 'root', size=GiB, template=True)
        tf = self.files(self.D, 'vm-templates/tpl/root')
        self.start(tpl)
        write_chunks(tf.dirty, random_chunks('tpl', (0,)))
        self.stop(tpl)
        private = self.origin('r', 'w', 'private', size=GiB)
        root = self.snapshot('r', 'w', 'root', 'vm-templates/tpl/root')
        volatile = self.volatile('r', 'w')
        pf, rf, vf = (self.files(self.D, f'appvms/w/{n}') for n in ('private', 'root', 'volatile'))
        self.restart_with_env(QUBES_STORAGED_TEST_SLOW_VID='appvms/w/private', QUBES_STORAGED_TEST_SLOW_MS=SLOW_MS)
        vols = [private, root, volatile]

        call = self.call_async(ROOT, MANAGER, 'StartVolumes', 'aoa{sv}', (vols, {}), '')
        # the fast volumes are done while the slow one has not begun
        self.wait_until(lambda: os.path.exists(rf.dirty) and os.path.exists(vf.dirty) or call['done'],
                        'root and volatile to start')
        self.assertFalse(call['done'], f'StartVolumes replied before the slow volume was done: {call}')
        self.assertFalse(os.path.exists(pf.dirty), 'the slow volume started before the others')
        self.assertEqual(content_digest(rf.dirty), content_digest(tf.clean))
        # the loop answers while a worker is busy
        self.assertFalse(self.vprop(private, 'Started'))
        self.assertTrue(self.vprop(root, 'Started'))
        self.assertFalse(call['done'], 'the slow start finished during the property reads (seam too short)')
        self.wait_until(lambda: call['done'], 'StartVolumes to reply', timeout=SLOW_MS / 1000 + 60)
        self.assertNotIn('error', call)
        self.assertTrue(all(self.vprop(v, 'Started') for v in vols))
        self.assertTrue(os.path.exists(pf.dirty))

        call = self.call_async(ROOT, MANAGER, 'StopVolumes', 'aoa{sv}', (vols, {}), '')
        self.wait_until(lambda: not os.path.exists(rf.dirty) and not os.path.exists(vf.dirty) or call['done'],
                        'root and volatile to stop')
        self.assertFalse(call['done'], f'StopVolumes replied before the slow volume was done: {call}')
        self.assertTrue(os.path.exists(pf.dirty), 'the slow volume stopped before the others')
        self.assertTrue(self.vprop(private, 'IsDirty'))
        self.wait_until(lambda: call['done'], 'StopVolumes to reply', timeout=SLOW_MS / 1000 + 60)
        self.assertNotIn('error', call)
        self.assertFalse(any(self.vprop(v, 'Started') for v in vols))
        self.assertFalse(os.path.exists(pf.dirty))


if __name__ == '__main__':
    main()

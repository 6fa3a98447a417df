#!/usr/bin/python3
"""Calls waiting when SIGTERM comes are answered before the service exits.

A RefreshUsage that arrives less than a second after the pool's last read
waits for its delay (the reads of one pool are spaced). When SIGTERM comes
meanwhile, the service must still answer it (run the read now) rather than
exit and leave the caller with NoReply. The call is known to be received
before the signal: a later call on the same connection has been answered.
"""
import os
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'dbus'))
import storaged  # noqa: E402
from storaged import PROPERTIES, ROOT, pool_path  # noqa: E402


class AnsweredAtStopTest(storaged.StoragedTestCase):

    def test_refresh_usage_waiting_for_its_delay_is_answered_at_sigterm(self):
        self.add_file_pool('f')
        pool = pool_path('f')
        self.refresh_usage('f')  # the pool was just read: the next refresh waits
        waiting = [self.call_async(pool, storaged.POOL, 'RefreshUsage', 'a{sv}', ({},), '') for _ in range(3)]
        # calls are dispatched in order: once this one is answered, the
        # refreshes have been received
        self.call(ROOT, PROPERTIES, 'Get', 'ss', (storaged.MANAGER, 'Version'), 'v')
        proc = self.service.proc
        proc.send_signal(signal.SIGTERM)
        self.wait_until(lambda: all(w['done'] for w in waiting) or proc.poll() is not None,
                        'the waiting RefreshUsage calls to be answered, or the service to exit')
        self.drain()
        self.wait_until(lambda: all(w['done'] for w in waiting), 'a reply or an error for every RefreshUsage')
        for w in waiting:
            err = w.get('error')
            self.assertIsNone(err, f'RefreshUsage waiting at SIGTERM was not answered: {err}')
        rc = proc.wait(storaged.STOP_TIMEOUT_S)
        self.assertEqual(rc, 0, f'the service exited with status {rc} after SIGTERM:\n{self.service.output()}')
        out = self.service.output()
        for marker in storaged.SANITIZER_MARKERS:
            self.assertNotIn(marker, out)
        self.stop_service()


if __name__ == '__main__':
    storaged.main()

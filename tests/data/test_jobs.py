"""org.qubes.Storage1.Job for Volume.Import: the object announced through the
ObjectManager, its properties, Progress at most 4 times a second, Completed
before the method reply, Cancel in the middle of a 1 GiB import, and the
caller leaving the bus (SIGKILL) cancelling its job. After a cancelled import
the volume is unchanged and no staging file is left.

Each test runs on a file pool, a file-reflink pool on btrfs and one on XFS.
"""

import os
import subprocess
import sys
import time

from datatest import (BUS_NAME, JOB, JOB_PATH_RE, PROPERTIES, Gio, GiB, GLib, MiB, backend_classes, chunked,
                      endless, holey, main, random_bytes)

JOB_PROPERTIES = {'Operation', 'Objects', 'Progress', 'Bytes', 'Rate', 'StartTime', 'StartedByUid', 'Cancelable'}
HERE = os.path.dirname(os.path.abspath(__file__))


class JobMixin:

    def setUp(self):
        super().setUp()
        self.vpath, self.v = self.origin('work', size=4 * MiB)
        self.seed(self.v, holey(4 * MiB, seed=1, every=3))

    def slow_import(self, size, data=None, chunk=256 * 1024, delay=0.05):
        """Starts an Import of `size` bytes fed slowly through a pipe; returns
        (call state, feeder, mark before the call, wall-clock µs before)."""
        data = data if data is not None else random_bytes(size, 2)
        r, feeder = self.pipe_source(chunked(data, chunk), delay=delay)
        since = self.mark()
        t0 = int(time.time() * 1e6)
        call = self.import_async(self.vpath, r, size)
        os.close(r)
        return call, feeder, since, t0

    def endless_import(self, size):
        """An Import of `size` bytes from a writer that never stops (slowly)."""
        r, feeder = self.pipe_source(endless(random_bytes(256 * 1024, 3)), delay=0.02)
        since = self.mark()
        call = self.import_async(self.vpath, r, size)
        os.close(r)
        return call, feeder, since

    def reply_index(self, method, path):
        """Index in self.msglog of the reply to our call of `method` on path."""
        serials = [m[4] for m in self.msglog if m[1] == 'out' and m[3] == method and m[2] == path]
        self.assertEqual(len(serials), 1, f'one {method} call on {path} in the message log')
        for i, m in enumerate(self.msglog):
            if m[1] in (Gio.DBusMessageType.METHOD_RETURN, Gio.DBusMessageType.ERROR) and m[4] == serials[0]:
                return i
        self.fail(f'no reply to {method} in the message log')

    def signal_index(self, member, path):
        for i, m in enumerate(self.msglog):
            if m[1] != 'out' and m[3] == member and m[2] == path:
                return i
        return None

    # ---- announcement and properties ------------------------------------------

    def test_job_announced_with_properties(self):
        size = 6 * MiB
        call, feeder, since, t0 = self.slow_import(size)
        job, props = self.wait_job(since, self.vpath)
        t1 = int(time.time() * 1e6)
        self.assertRegex(job, JOB_PATH_RE)
        self.assertEqual(set(props), JOB_PROPERTIES, 'InterfacesAdded carries every Job property')
        self.assertEqual(props['Operation'], 'volume-import')
        self.assertEqual(list(props['Objects']), [self.vpath])
        self.assertEqual(props['Bytes'], size)
        self.assertEqual(props['StartedByUid'], os.getuid())
        self.assertTrue(props['Cancelable'])
        self.assertTrue(0.0 <= props['Progress'] <= 1.0, props['Progress'])
        self.assertTrue(t0 - 1_000_000 <= props['StartTime'] <= t1 + 1_000_000,
                        f'StartTime {props["StartTime"]} is not the wall-clock µs of the call ({t0}..{t1})')
        # the ObjectManager lists it while it runs, with the same values
        objs = self.managed_objects()
        self.assertIn(job, objs, 'GetManagedObjects must list a running job')
        listed = objs[job][JOB]
        for k in ('Operation', 'Objects', 'Bytes', 'StartTime', 'StartedByUid', 'Cancelable'):
            self.assertEqual(listed[k], props[k], f'{k}: GetManagedObjects vs InterfacesAdded')
        got = self.get_all(job, JOB)
        self.assertEqual(set(got), JOB_PROPERTIES)
        # the running job introspects as introspection/org.qubes.Storage1.Job.xml says
        from test_introspection import describe_differences, parse_interfaces, read_xml
        diff = describe_differences(parse_interfaces(read_xml(JOB)), parse_interfaces(self.introspect(job)))
        self.assertEqual(diff, [], 'introspection of a job differs from the XML file')
        self.wait_until(lambda: call['done'], 'the Import reply')
        self.assertNotIn('error', call, f'Import failed: {call.get("error")}')
        self.assertJobGone(job)

    def test_object_manager_answers_during_import(self):
        """GetManagedObjects (every client's view of the service) works while
        a job exists, and lists the job."""
        call, feeder, since = self.endless_import(GiB)
        self.wait_staged(self.v, MiB)
        objs = self.managed_objects()
        jobs = [p for p, ifaces in objs.items() if JOB in ifaces]
        self.assertEqual(len(jobs), 1, f'GetManagedObjects must list the running job: {sorted(objs)}')
        self.assertEqual(list(objs[jobs[0]][JOB]['Objects']), [self.vpath])
        self.assertIn(self.vpath, objs, 'GetManagedObjects lists the volume')

    def test_completed_before_reply_and_progress(self):
        size = 8 * MiB
        data = random_bytes(size, 4)
        call, feeder, since, t0 = self.slow_import(size, data, chunk=128 * 1024, delay=0.04)
        self.wait_until(lambda: call['done'], 'the Import reply')
        self.assertNotIn('error', call, f'Import failed: {call.get("error")}')
        self.sync()
        jobs = [p for (p, i, m, a) in self.service_signals(since, 'Completed', iface=JOB)]
        self.assertEqual(len(jobs), 1, f'one Completed signal for one Import: {jobs}')
        job = jobs[0]
        self.assertEqual(tuple(self.job_completed(since, job)), (True, ''), 'Completed(true, "")')
        completed = self.signal_index('Completed', job)
        reply = self.reply_index('Import', self.vpath)
        self.assertLess(completed, reply, 'the Import reply must come after Completed')
        self.assertTrue(self.job_removed(since, job), 'InterfacesRemoved of the finished job')
        self.assertJobGone(job)
        # Progress: within 0..1, never decreasing, at most 4 changes a second
        # over the job's life (from sending the call to receiving Completed:
        # receipt times may bunch up on a busy machine, the total may not)
        values = []
        for (p, i, m, args) in self.service_signals(since, 'PropertiesChanged', path=job, iface=PROPERTIES):
            if args[0] == JOB and 'Progress' in args[1]:
                values.append(args[1]['Progress'])
        sent = [m[0] for m in self.msglog if m[1] == 'out' and m[3] == 'Import' and m[2] == self.vpath][0]
        done = self.msglog[completed][0]
        changes = sum(1 for m in self.msglog if m[1] != 'out' and m[2] == job and m[3] == 'PropertiesChanged')
        self.assertGreaterEqual(len(values), 2, 'Progress must change while an import of ~2.5 s runs')
        self.assertEqual(values, sorted(values), f'Progress must not go back: {values}')
        self.assertTrue(all(0.0 <= v <= 1.0 for v in values), values)
        self.assertLessEqual(changes, 4 * (done - sent) + 1,
                             f'{changes} PropertiesChanged of the job in {done - sent:.2f} s: more than 4 a second')
        self.assertImage(self.vpath, self.v, data, 'the slow import')

    # ---- Cancel ---------------------------------------------------------------

    def test_cancel_middle_of_1gib_import(self):
        before = self.state(self.vpath, self.v)
        call, feeder, since = self.endless_import(GiB)
        job, props = self.wait_job(since, self.vpath)
        self.assertIn(job, self.managed_objects())
        self.assertEqual(props['Bytes'], GiB)
        self.wait_progress(job, at_least=2 * MiB)
        self.assertFalse(call['done'], 'the import must still be running')
        self.call(job, JOB, 'Cancel', 'a{sv}', ({},), '')
        self.wait_until(lambda: call['done'], 'the reply to the cancelled Import')
        self.assertIn('error', call, 'a cancelled Import must fail')
        e = call['error']
        self.assertEqual(e.name, 'org.qubes.Storage1.Error.Cancelled', f'{e.name}: {e.message}')
        self.assertTrue(self.v in e.message or self.pool in e.message, e.message)
        completed = self.job_completed(since, job)
        self.assertIsNotNone(completed, 'Completed must be emitted before the reply')
        self.assertFalse(completed[0], f'Completed of a cancelled job: {completed}')
        self.wait_until(lambda: self.job_removed(since, job), f'InterfacesRemoved of {job}')
        self.assertJobGone(job)
        self.assertState(before, self.vpath, self.v, 'cancelled Import')
        self.assertNoStaging(what='after a cancelled Import')
        # the service let go of the pipe: the writer gets EPIPE
        self.wait_until(lambda: feeder.broken or not feeder.is_alive(), 'the writer to see the pipe closed')
        self.assertTrue(feeder.broken, 'the service must close the pipe of a cancelled import')
        # the volume works
        new = random_bytes(4 * MiB, 5)
        self.import_from('pipe', self.vpath, new, 4 * MiB)
        self.assertImage(self.vpath, self.v, new, 'Import after a cancelled one')

    def test_cancel_from_another_connection(self):
        """Cancel is a method of the job, callable by anyone allowed (root)."""
        before = self.state(self.vpath, self.v)
        call, feeder, since = self.endless_import(GiB)
        job, props = self.wait_job(since, self.vpath)
        other = Gio.DBusConnection.new_for_address_sync(
            self.bus_address,
            Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
        self.addCleanup(other.close_sync, None)
        other.call_sync(BUS_NAME, job, JOB, 'Cancel', GLib.Variant('(a{sv})', ({},)), None, Gio.DBusCallFlags.NONE,
                        60000, None)
        self.wait_until(lambda: call['done'], 'the reply to the cancelled Import')
        self.assertEqual(call.get('error') and call['error'].name, 'org.qubes.Storage1.Error.Cancelled')
        self.assertState(before, self.vpath, self.v, 'cancelled Import')
        self.assertNoStaging()

    # ---- the caller leaves -----------------------------------------------------

    def test_client_killed_cancels_job(self):
        before = self.state(self.vpath, self.v)
        r, feeder = self.pipe_source(endless(random_bytes(256 * 1024, 6)), delay=0.02)
        since = self.mark()
        client = subprocess.Popen([sys.executable, os.path.join(HERE, 'import_client.py'), self.bus_address,
                                   self.vpath, str(GiB), str(r)], pass_fds=(r,), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT)
        os.close(r)
        self.addCleanup(self._reap, client)
        self.assertEqual(client.stdout.readline().strip(), b'calling')
        st = self.wait_staged(self.v, 2 * MiB)
        self.assertIsNone(client.poll(), 'the client must still wait for its Import')
        client.kill()
        client.wait()
        # the job of the dead client ends as cancelled
        def completed():
            return [(p, a) for (p, i, m, a) in self.service_signals(since, 'Completed', iface=JOB)]
        self.wait_until(lambda: completed(), 'Completed of the job of the killed client')
        (job, args), = completed()
        self.assertFalse(args[0], f'Completed of the job of a killed client: {args}')
        self.assertIn('ancel', args[1], f'the job must be cancelled, not fail otherwise: {args}')
        self.wait_until(lambda: self.job_removed(since, job), f'InterfacesRemoved of {job}')
        self.assertJobGone(job)
        self.assertFalse(os.path.exists(st), f'{st} left after the client was killed')
        self.assertState(before, self.vpath, self.v, 'Import of a killed client')
        self.assertNoStaging()
        self.wait_until(lambda: feeder.broken or not feeder.is_alive(), 'the writer to see the pipe closed')
        self.assertTrue(feeder.broken, 'the service must close the pipe of a cancelled import')
        new = random_bytes(4 * MiB, 7)
        self.import_from('pipe', self.vpath, new, 4 * MiB)
        self.assertImage(self.vpath, self.v, new, 'Import after the one of a killed client')

    @staticmethod
    def _reap(p):
        if p.poll() is None:
            p.kill()
        p.wait()
        p.stdout.close()


backend_classes(JobMixin, globals())

if __name__ == '__main__':
    main()

#!/usr/bin/python3
"""No caller can exhaust the service.

- Streams nobody writes do not starve short operations: with 16 Imports
  waiting on silent pipes (as many as there are workers), an unrelated Start
  is answered while they still wait.
- An Import whose pipe stays silent for the idle timeout (the service runs
  with --import-idle-timeout 2 here) fails with ImportFailed naming the volume,
  and leaves the volume as it was; one can also be cancelled (Job.Cancel).
- An unprivileged caller (uid 65534, setpriv) running more Imports, or
  staging more imports (ImportBegin), than it may is refused with
  LimitsExceeded beyond LIMIT_JOBS_PER_NAME / LIMIT_IMPORTS_PER_NAME.
- An unprivileged caller (uid 65534, setpriv) flooding the service with calls
  that wait for polkit, each carrying 16 fds, is refused with LimitsExceeded
  beyond its limit; the service keeps its bus name and answers everyone; once
  polkit answers, every waiting call is answered.
"""

import json
import os
import subprocess
import sys
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get('QUBES_STORAGED_SRC') or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, 'tests', 'dbus'))
sys.path.insert(0, os.path.join(SRC, 'tests', 'system'))

import dbus  # noqa: E402

import storaged  # noqa: E402
from storaged import BUS_NAME, VOLUME, Gio, GLib, MiB, StoragedTestCase, vconf  # noqa: E402
import systemtest  # noqa: E402
from support import nobody  # noqa: E402
from support.polkit import PolkitMockTestCase  # noqa: E402

LIMITS_EXCEEDED = 'org.qubes.Storage1.Error.LimitsExceeded'
IDLE_TIMEOUT_S = 2
WORKERS = 16
JOB_IFACE = 'org.qubes.Storage1.Job'


class StreamTestBase(StoragedTestCase):
    extra_args = ()

    def setUp(self):
        super().setUp()
        if self.extra_args:
            self.stop_service()
            self.service.extra_args = list(self.extra_args)
            self.start_service()
        self.add_file_pool('p', dir_path=os.path.join(self.pools_dir, 'p'))

    def make_volume(self, name):
        return self.create_volume('p', vconf(name=name, vm='work', size=MiB, rw=True, save_on_stop=True))

    def silent_pipe(self):
        r, w = os.pipe()
        self.addCleanup(os.close, w)
        self.addCleanup(os.close, r)
        return r

    def import_async(self, vpath, fd, size=MiB):
        fdl = Gio.UnixFDList.new()
        fdl.append(fd)
        state = {'done': False}

        def cb(conn, res, _):
            try:
                conn.call_with_unix_fd_list_finish(res)
                state['result'] = True
            except GLib.Error as e:
                state['error'] = storaged._split_gerror(e)
            state['done'] = True
        self.bus.call_with_unix_fd_list(BUS_NAME, vpath, VOLUME, 'Import', GLib.Variant('(hta{sv})', (0, size, {})),
                                        None, Gio.DBusCallFlags.NONE, storaged.CALL_TIMEOUT_MS, fdl, None, cb, None)
        return state

    def image(self, vpath):
        vid = self.vprop(vpath, 'Vid')
        with open(os.path.join(self.pools_dir, 'p', vid + '.img'), 'rb') as f:
            return f.read()


class StreamsDoNotStarveTest(StreamTestBase):

    def test_start_answered_while_every_data_worker_waits(self):
        vols = [self.make_volume(f'v{i}') for i in range(WORKERS)]
        other = self.make_volume('other')
        imports = [self.import_async(v, self.silent_pipe()) for v in vols]
        # every import is running: its job is published
        self.wait_until(lambda: len([o for o, i in self.managed_objects().items() if JOB_IFACE in i]) == WORKERS,
                        f'{WORKERS} import jobs to run')
        # a short operation on another volume is answered meanwhile (the
        # timeout is a deadlock guard: today it waits for the imports forever)
        self.call(other, VOLUME, 'Start', 'a{sv}', ({},), '', timeout=60 * 1000)
        self.assertTrue(self.vprop(other, 'Started'))
        self.drain()
        self.assertFalse(any(s['done'] for s in imports), 'the imports ended: they did not hold the workers')


class IdleImportTest(StreamTestBase):
    extra_args = ('--import-idle-timeout', str(IDLE_TIMEOUT_S))

    def test_silent_pipe_times_out(self):
        vpath = self.make_volume('private')
        before = self.image(vpath)
        state = self.import_async(vpath, self.silent_pipe())
        self.wait_until(lambda: state['done'], 'the silent import to give up')
        self.assertNotIn('result', state, 'an import from a silent pipe succeeded')
        name, message = state['error']
        self.assertEqual(name, 'org.qubes.Storage1.Error.ImportFailed', message)
        self.assertIn('appvms/work/private', message)
        self.assertIn('no data', message)
        self.assertEqual(self.image(vpath), before, 'a failed import changed the volume')
        leftovers = [f for f in os.listdir(os.path.join(self.pools_dir, 'p', 'appvms', 'work')) if 'import' in f]
        self.assertEqual(leftovers, [])
        # the volume is usable afterwards
        self.start(vpath)
        self.stop(vpath)

    def test_silent_pipe_cancelled(self):
        vpath = self.make_volume('private')
        state = self.import_async(vpath, self.silent_pipe())
        jobs = []

        def job():
            jobs[:] = [o for o, i in self.managed_objects().items() if JOB_IFACE in i]
            return jobs
        self.wait_until(job, 'the import job')
        self.call(jobs[0], JOB_IFACE, 'Cancel', 'a{sv}', ({},), '')
        self.wait_until(lambda: state['done'], 'the cancelled import to end')
        self.assertEqual(state['error'][0], 'org.qubes.Storage1.Error.Cancelled', state)


# ---- an unprivileged caller's flood -------------------------------------------

FLOOD_CLIENT = r'''
import json, os, sys
import gi
gi.require_version('Gio', '2.0')
from gi.repository import Gio, GLib
req = json.loads(sys.argv[1])
r, w = os.pipe()
fdl = Gio.UnixFDList.new()
for _ in range(req['fds']):
    fdl.append(r)
loop = GLib.MainLoop()
conns = [Gio.DBusConnection.new_for_address_sync(req['address'],
         Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
         for _ in range(req['connections'])]
print(json.dumps({'senders': [c.get_unique_name() for c in conns]}), flush=True)
left = [req['connections'] * req['calls']]
def cb(conn, res, _):
    try:
        conn.call_with_unix_fd_list_finish(res)
        out = {'ok': True}
    except GLib.Error as e:
        out = {'error': Gio.DBusError.get_remote_error(e) or e.message}
    print(json.dumps(out), flush=True)
    left[0] -= 1
    if left[0] == 0:
        loop.quit()
for c in conns:
    for _ in range(req['calls']):
        c.call_with_unix_fd_list('org.qubes.Storage1', req['path'], 'org.qubes.Storage1.Volume', 'Start',
                                 GLib.Variant('(a{sv})', ({},)), None, Gio.DBusCallFlags.NONE, 300 * 1000, fdl,
                                 None, cb, None)
loop.run()
'''


class UnprivilegedBase(PolkitMockTestCase, systemtest.ServiceWorld):
    """A private system bus with the polkitd mock (hanging), the service as
    root with a file pool and a volume; clients run as uid 65534."""

    BUS_PREFIX = 'qsd-flood-bus-'
    WORLD_PREFIX = 'qsd-flood-'

    def setUp(self):
        self.mock_call('SetAllowed', dbus.Array([], signature='s'))
        self.mock_call('SimulateHang', True)
        self.mock_call('ClearCalls')
        self.open_world()
        self.vpath = None
        systemtest.call(self.conn, systemtest.ROOT, systemtest.MANAGER, 'AddPool', '(ssa{ss}a{sv})',
                        ('p', 'file', {'dir_path': os.path.join(self.world, 'pools', 'p')}, {}))
        (self.vpath,) = systemtest.call(
            self.conn, systemtest.pool_path('p'), systemtest.POOL, 'CreateVolume', '(a{sv}a{sv})',
            ({'name': systemtest.v('s', 'private'), 'vm': systemtest.v('s', 'work'),
              'size': systemtest.v('t', MiB), 'rw': systemtest.v('b', True),
              'save_on_stop': systemtest.v('b', True)}, {}))
        script = os.path.join(self.world, 'flood.py')
        with open(script, 'w') as f:
            f.write(FLOOD_CLIENT)
        os.chmod(script, 0o644)
        self.script = script

    def tearDown(self):
        self.mock_call('SimulateHang', False)
        self.mock_call('ReleaseHangingCalls')
        self.close_world()

    def service_answers(self):
        names = [n for n, _ in systemtest.call(self.conn, systemtest.ROOT, systemtest.MANAGER, 'ListPools')[0]]
        return 'p' in names

    def waiting_now(self):
        """Calls the polkit mock holds now (asked, not answered)."""
        return sum(1 for _, m, _ in self.mock_call('GetCalls') if str(m) == 'CheckAuthorization')


class FloodTest(UnprivilegedBase):
    CONNECTIONS = 4
    CALLS = 40          # 160 calls ...
    FDS = 16            # ... of 16 fds each

    def test_flood_of_waiting_calls_with_fds(self):
        req = {'address': self.bus.address, 'path': self.vpath, 'connections': self.CONNECTIONS,
               'calls': self.CALLS, 'fds': self.FDS}
        client = subprocess.Popen(nobody.python_argv(self.script, json.dumps(req)), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd='/', env=nobody.ENV)
        self.addCleanup(client.stderr.close)
        self.addCleanup(client.stdout.close)
        self.addCleanup(lambda: client.poll() is None and client.kill())
        first = client.stdout.readline()
        self.assertTrue(first, f'the flood client did not start: {client.stderr.read() if client.poll() else ""}')
        total = self.CONNECTIONS * self.CALLS
        answers = []
        reader = threading.Thread(target=lambda: answers.extend(json.loads(line) for line in client.stdout
                                                                if line.strip()), daemon=True)
        reader.start()
        # the calls beyond the caller's limit are refused at once; the others
        # wait for polkit (which hangs), or every call is answered otherwise
        # (the service lost the bus: dbus-daemon answers for it)
        systemtest.wait_until(lambda: len(answers) + self.waiting_now() >= total,
                              'every call of the flood to be answered or waiting for polkit')
        refused = sum(a.get('error') == LIMITS_EXCEEDED for a in list(answers))
        self.assertGreater(refused, 0, f'no call of the flood was refused with LimitsExceeded: {answers[:5]}')
        # ... the service is still on the bus and answers everyone
        self.assertTrue(self.bus.has_owner(BUS_NAME), 'the service lost its bus name')
        self.assertTrue(self.service_answers())
        self.assertIsNone(self.service.proc.poll(), 'the service exited')
        self.assertFalse(systemtest.get_property(self.conn, self.vpath, systemtest.VOLUME, 'Started'))
        # polkit answers (no): every waiting call gets its answer
        self.mock_call('SimulateHang', False)
        self.mock_call('ReleaseHangingCalls')
        client.wait(120)
        reader.join(60)
        err = client.stderr.read()
        self.assertEqual(len(answers), total, f'calls left unanswered; client stderr: {err}')
        for a in answers:
            self.assertIn(a.get('error'), (LIMITS_EXCEEDED, systemtest.NOT_AUTHORIZED), a)
        self.assertTrue(self.service_answers())
        self.assertFalse(systemtest.get_property(self.conn, self.vpath, systemtest.VOLUME, 'Started'))


IMPORT_CLIENT = r'''
import json, os, sys
import gi
gi.require_version('Gio', '2.0')
from gi.repository import Gio, GLib
req = json.loads(sys.argv[1])
conn = Gio.DBusConnection.new_for_address_sync(req['address'],
       Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
loop = GLib.MainLoop()
keep = []
def cb(conn, res, _):
    try:
        conn.call_with_unix_fd_list_finish(res)
        out = {'ok': True}
    except GLib.Error as e:
        out = {'error': Gio.DBusError.get_remote_error(e) or e.message}
    print(json.dumps(out), flush=True)
for path in req['paths']:
    r, w = os.pipe()          # nobody ever writes w
    keep.append(w)
    fdl = Gio.UnixFDList.new()
    fdl.append(r)
    os.close(r)
    conn.call_with_unix_fd_list('org.qubes.Storage1', path, 'org.qubes.Storage1.Volume', 'Import',
                                GLib.Variant('(hta{sv})', (0, 1 << 20, {})), None, Gio.DBusCallFlags.NONE,
                                300 * 1000, fdl, None, cb, None)
print(json.dumps({'sent': len(req['paths'])}), flush=True)
loop.run()
'''


class ImportingBase(UnprivilegedBase):
    """uid 65534 may import (polkit says yes to it); VOLUMES volumes."""

    VOLUMES = 1
    CLIENT = None

    def setUp(self):
        super().setUp()
        self.mock_call('SimulateHang', False)
        self.mock_call('SetAllowed', dbus.Array(['org.qubes.storage1.import'], signature='s'))
        self.paths = []
        for i in range(self.VOLUMES):
            (p,) = systemtest.call(
                self.conn, systemtest.pool_path('p'), systemtest.POOL, 'CreateVolume', '(a{sv}a{sv})',
                ({'name': systemtest.v('s', f'v{i}'), 'vm': systemtest.v('s', 'work'),
                  'size': systemtest.v('t', MiB), 'rw': systemtest.v('b', True),
                  'save_on_stop': systemtest.v('b', True)}, {}))
            self.paths.append(p)
        with open(self.script, 'w') as f:
            f.write(self.CLIENT)


class JobLimitTest(ImportingBase):
    """uid 65534, allowed to import, starts more Imports from silent pipes
    than one caller may run: the ones beyond are LimitsExceeded at once, the
    others run (their jobs are published)."""

    VOLUMES = 6
    PER_NAME = 4   # service/caller-limits.h LIMIT_JOBS_PER_NAME
    CLIENT = IMPORT_CLIENT

    def jobs(self):
        (objs,) = systemtest.call(self.conn, systemtest.ROOT, systemtest.OBJECT_MANAGER, 'GetManagedObjects')
        return [o for o, i in objs.items() if JOB_IFACE in i]

    def test_jobs_per_caller(self):
        req = {'address': self.bus.address, 'paths': self.paths}
        client = subprocess.Popen(nobody.python_argv(self.script, json.dumps(req)), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd='/', env=nobody.ENV)
        self.addCleanup(client.stderr.close)
        self.addCleanup(client.stdout.close)
        self.addCleanup(lambda: client.poll() is None and client.kill())
        answers = []
        reader = threading.Thread(target=lambda: answers.extend(json.loads(line) for line in client.stdout
                                                                if line.strip()), daemon=True)
        reader.start()
        systemtest.wait_until(lambda: len([a for a in answers if 'sent' not in a]) + len(self.jobs()) >= self.VOLUMES,
                              'every Import to run or be answered')
        refused = [a for a in answers if a.get('error') == LIMITS_EXCEEDED]
        self.assertEqual(len(refused), self.VOLUMES - self.PER_NAME, answers)
        self.assertEqual(len(self.jobs()), self.PER_NAME)
        # root is not limited, and is answered meanwhile
        self.assertTrue(self.service_answers())
        client.kill()
        client.wait(30)
        systemtest.wait_until(lambda: not self.jobs(), 'the jobs of the departed caller to end')



BEGIN_CLIENT = r'''
import json, sys
import gi
gi.require_version('Gio', '2.0')
from gi.repository import Gio, GLib
req = json.loads(sys.argv[1])
conn = Gio.DBusConnection.new_for_address_sync(req['address'],
       Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
for path in req['paths']:
    try:
        v, fds = conn.call_with_unix_fd_list_sync('org.qubes.Storage1', path, 'org.qubes.Storage1.Volume',
                                                  'ImportBegin', GLib.Variant('(ta{sv})', (0, {})), None,
                                                  Gio.DBusCallFlags.NONE, 120 * 1000, None, None)
        out = {'ok': True}
    except GLib.Error as e:
        out = {'error': Gio.DBusError.get_remote_error(e) or e.message}
    print(json.dumps(out), flush=True)
sys.stdin.readline()   # holds its staged imports until told to go
'''


class StagedImportLimitTest(ImportingBase):
    """uid 65534 stages more imports (ImportBegin) than one caller may hold:
    the ones beyond are LimitsExceeded, nothing is staged for them, and the
    caller's staged imports are released when it leaves."""

    VOLUMES = 10
    PER_NAME = 8   # service/caller-limits.h LIMIT_IMPORTS_PER_NAME
    CLIENT = BEGIN_CLIENT

    def staged(self):
        pools = os.path.join(self.world, 'pools', 'p', 'appvms', 'work')
        return sorted(f for f in os.listdir(pools) if f.endswith('-import.img'))

    def test_staged_imports_per_caller(self):
        req = {'address': self.bus.address, 'paths': self.paths}
        client = subprocess.Popen(nobody.python_argv(self.script, json.dumps(req)), stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd='/', env=nobody.ENV)
        self.addCleanup(client.stderr.close)
        self.addCleanup(client.stdout.close)
        self.addCleanup(client.stdin.close)
        self.addCleanup(lambda: client.poll() is None and client.kill())
        answers = [json.loads(client.stdout.readline()) for _ in self.paths]
        self.assertEqual([a.get('ok') for a in answers[:self.PER_NAME]], [True] * self.PER_NAME, answers)
        self.assertEqual([a.get('error') for a in answers[self.PER_NAME:]],
                         [LIMITS_EXCEEDED] * (self.VOLUMES - self.PER_NAME), answers)
        self.assertEqual(len(self.staged()), self.PER_NAME)
        client.stdin.write('\n')
        client.stdin.flush()
        client.wait(60)
        systemtest.wait_until(lambda: not self.staged(), 'the departed caller\'s staged imports to be released')



if __name__ == '__main__':
    unittest.main(verbosity=2)

"""One run after another of the built service on a private bus, for a test,
a suite or a bench:

    qubes-storaged --bus system|ADDRESS --state-dir STATE --base-dir BASE [ARGS]

Each run writes its output to a log file of its own (log_name with the run's
number); start() spawns it, wait_owned() waits until it owns its bus name
(and that the owner is this process), stop() ends it with SIGTERM, kill()
as a crash (SIGKILL), reap() collects a run that something else ended.
A failure raises ServiceError (an AssertionError: in a test it is a
failure, never a skip)."""

import os
import signal
import subprocess
import time

from support.bus import name_has_owner, name_owner, owner_pid

BUS_NAME = 'org.qubes.Storage1'

# Deadlock guards for start-up and stop, never assertions about speed.
STARTUP_TIMEOUT_S = 60
STOP_TIMEOUT_S = 60
POLL_S = 0.02

SANITIZER_MARKERS = ('AddressSanitizer', 'LeakSanitizer', 'UndefinedBehaviorSanitizer', 'runtime error:')

SRCDIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def default_binary(name='qubes-storaged-test'):
    """$QUBES_STORAGED, or the build's NAME in the source tree (every suite
    drives the test build: tests/meson.build)."""
    return os.path.abspath(os.environ.get('QUBES_STORAGED') or os.path.join(SRCDIR, 'build', name))


class ServiceError(AssertionError):
    pass


def sanitizer_report(text):
    """The first sanitizer marker in a service's output, or None."""
    for marker in SANITIZER_MARKERS:
        if marker in text:
            return marker
    return None


def wait_released(conn, name=BUS_NAME, timeout=STOP_TIMEOUT_S):
    """Waits until the bus has seen name go (its owner ended): the next
    run can take it."""
    deadline = time.monotonic() + timeout
    while name_has_owner(conn, name):
        if time.monotonic() > deadline:
            raise ServiceError(f'{name} still owned {timeout}s after the service exited')
        time.sleep(POLL_S)


class Service:
    """The service binary with one state and base directory; env is the
    whole environment of the next run (os.environ updated with `env`),
    extra_args the arguments after the directories."""

    def __init__(self, state_dir, base_dir, log_dir, env=None, extra_args=(), binary=None, bus='system',
                 log_name='service-{run}.log'):
        self.binary = binary or default_binary()
        self.state_dir = state_dir
        self.base_dir = base_dir
        self.log_dir = log_dir
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.extra_args = list(extra_args)
        self.bus = bus
        self.log_name = log_name
        self.proc = None
        self.runs = 0
        self.log_path = None
        self._log = None

    def argv(self):
        return [self.binary, '--bus', self.bus, '--state-dir', self.state_dir, '--base-dir', self.base_dir] + \
            self.extra_args

    def start(self):
        """Spawns one run (it does not wait for the bus name: wait_owned)."""
        if not os.access(self.binary, os.X_OK):
            raise ServiceError(f'service binary {self.binary} is missing or not executable '
                               f'(build it, or set QUBES_STORAGED)')
        self.runs += 1
        self.log_path = os.path.join(self.log_dir, self.log_name.format(run=self.runs))
        self._log = open(self.log_path, 'ab')
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=self.env)
        return self.proc

    def wait_owned(self, conn, timeout=STARTUP_TIMEOUT_S, check_pid=True):
        """Waits until this run owns BUS_NAME on conn's bus and returns the
        owner's unique name. With check_pid the owner must be this process.
        When the run exits first or the wait times out, the run is killed
        and ServiceError names what happened, with its output."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                rc = self.proc.returncode if self.proc else None
                out = self.output()
                self.kill()
                raise ServiceError(f'service exited (status {rc}) before owning {BUS_NAME}; '
                                   f'argv {self.argv()}; output:\n{out}')
            owner = name_owner(conn, BUS_NAME)
            if owner is not None:
                pid = owner_pid(conn, owner) if check_pid else self.proc.pid
                if pid == self.proc.pid:
                    return owner
                if time.monotonic() > deadline:
                    self.kill()
                    raise ServiceError(f'{BUS_NAME} is owned by pid {pid}, not by the service we started '
                                       f'(pid {self.proc.pid})')
            elif time.monotonic() > deadline:
                out = self.output()
                self.kill()
                raise ServiceError(f'{BUS_NAME} did not appear on the bus within {timeout}s; '
                                   f'service output:\n{out}')
            time.sleep(POLL_S)

    def launch(self, conn, timeout=STARTUP_TIMEOUT_S, check_pid=True):
        """start() and wait_owned(): the owner's unique name."""
        self.start()
        return self.wait_owned(conn, timeout, check_pid)

    def output(self):
        """The output of the last run."""
        if not self.log_path:
            return ''
        with open(self.log_path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')

    def all_output(self):
        parts = []
        for i in range(1, self.runs + 1):
            with open(os.path.join(self.log_dir, self.log_name.format(run=i)), 'rb') as f:
                parts.append(f'--- service run {i} ---\n' + f.read().decode('utf-8', 'replace'))
        return '\n'.join(parts)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _ended(self):
        proc, self.proc = self.proc, None
        if self._log is not None:
            self._log.close()
            self._log = None
        return proc.returncode

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM and wait: the exit status (None when nothing runs).
        Raises (after SIGKILL) when the run does not exit in time."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._ended()
                raise ServiceError(f'service did not exit within {timeout}s of SIGTERM; output:\n'
                                   + self.output()) from None
        return self._ended()

    def stop_checked(self, timeout=STOP_TIMEOUT_S):
        """stop(), and the run must have exited with 0 and without a
        sanitizer report in its output."""
        if self.proc is None:
            return
        rc = self.stop(timeout)
        out = self.output()
        marker = sanitizer_report(out)
        if marker:
            raise ServiceError(f'sanitizer report ({marker!r}) in the service output:\n{out}')
        if rc != 0:
            raise ServiceError(f'service exited with status {rc} after SIGTERM (expected 0); output:\n{out}')

    def kill(self, sig=signal.SIGKILL, timeout=STOP_TIMEOUT_S):
        """Ends the run with sig (a crash: SIGKILL) and waits: the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.reap(timeout)

    def reap(self, timeout=STOP_TIMEOUT_S):
        """Waits for a run that something else ends (a signal injected by
        strace, exit on idle): the exit status."""
        if self.proc is None:
            return None
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._ended()
            raise ServiceError(f'service did not exit within {timeout}s; output:\n' + self.output()) from None
        return self._ended()

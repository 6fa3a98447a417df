"""strace attached to a running process (the service): attach() returns
once the kernel shows a tracer on it, so that nothing the test does next
goes unseen. A missing strace or a failed attach raises AssertionError (in
a test a failure, never a skip)."""

import shutil
import subprocess
import time

# A deadlock guard, never an assertion about speed.
ATTACH_TIMEOUT_S = 30


def traced(pid):
    """Whether a tracer is attached to pid (its TracerPid in /proc)."""
    with open(f'/proc/{pid}/status') as f:
        return any(line.startswith('TracerPid:') and line.split()[1] != '0' for line in f)


def attach(pid, args, timeout=ATTACH_TIMEOUT_S):
    """strace ARGS -p PID, its stdout discarded and its stderr a pipe; waits
    until it is attached."""
    if not shutil.which('strace'):
        raise AssertionError('strace is missing: apt-get install strace')
    proc = subprocess.Popen(['strace', *args, '-p', str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while not traced(pid):
        if proc.poll() is not None:
            raise AssertionError(f'strace could not attach: {proc.stderr.read().decode(errors="replace")}')
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise AssertionError(f'strace did not attach within {timeout} s')
        time.sleep(0.02)
    return proc

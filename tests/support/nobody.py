"""Callers as uid/gid 65534 with no supplementary groups (setpriv), with a
small environment of their own and / as their working directory."""

import subprocess

NOBODY_UID = 65534
NOBODY_GID = 65534

# Debian's interpreter: it has python3-gi (a python3 earlier on PATH may not).
PYTHON = '/usr/bin/python3'

ENV = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin', 'HOME': '/nonexistent', 'LC_ALL': 'C.UTF-8'}


def argv(cmd):
    """cmd run as uid/gid 65534 without supplementary groups."""
    return ['setpriv', f'--reuid={NOBODY_UID}', f'--regid={NOBODY_GID}', '--clear-groups', *cmd]


def python_argv(script, *args):
    """A Python script as uid 65534, isolated (-I: no environment, no user
    site, not its own folder on sys.path) and writing no bytecode."""
    return argv([PYTHON, '-I', '-B', script, *args])


def popen(cmd, **kw):
    """subprocess.Popen of argv(cmd) in ENV and /."""
    kw.setdefault('env', ENV)
    kw.setdefault('cwd', '/')
    return subprocess.Popen(argv(cmd), **kw)


def run(cmd, **kw):
    """subprocess.run of argv(cmd) in ENV and /."""
    kw.setdefault('env', ENV)
    kw.setdefault('cwd', '/')
    return subprocess.run(argv(cmd), **kw)

"""Support package shared by the Python test suites, the benches (bench/)
and the in-guest LVM suite of qubes-storaged.

Import it with tests/ on sys.path:

    sys.path.insert(0, os.path.join(SRCDIR, 'tests'))
    from support.names import path_encode, pool_path, volume_path

Modules (one concern each):
  names   D-Bus object path encoding of pool and volume names
  loopfs  loop-mounted btrfs/XFS/ext4 filesystems and tmpfs made for one run
  bus     a private dbus-daemon (system type) and a connection to it
  calls   D-Bus error replies split into name and message
  service one run after another of the built service: start, wait for its name, stop, kill
  polkit  a private system bus per test class with python-dbusmock's polkitd on it
  nobody  callers as uid/gid 65534 (setpriv)
  strace  strace attached to the running service
  tree    what a directory tree holds, and what changed in it
"""

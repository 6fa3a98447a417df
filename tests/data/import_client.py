"""A client for test_jobs.py that is killed in the middle of an import.

usage: import_client.py BUS_ADDRESS VOLUME_PATH SIZE FD

Connects to the bus, calls Volume.Import(FD, SIZE, {}) and waits for the reply
(which it never gets when the test SIGKILLs it first). Prints 'calling' before
the call and the outcome after it.
"""

import sys

import gi

gi.require_version('Gio', '2.0')
from gi.repository import Gio, GLib  # noqa: E402


def main():
    address, vpath, size, fd = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    bus = Gio.DBusConnection.new_for_address_sync(
        address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION,
        None, None)
    fdl = Gio.UnixFDList.new()
    fdl.append(fd)
    print('calling', flush=True)
    try:
        bus.call_with_unix_fd_list_sync('org.qubes.Storage1', vpath, 'org.qubes.Storage1.Volume', 'Import',
                                        GLib.Variant('(hta{sv})', (0, size, {})), GLib.VariantType('()'),
                                        Gio.DBusCallFlags.NONE, 600 * 1000, fdl, None)
        print('replied', flush=True)
    except GLib.Error as e:
        print('error', e.message, flush=True)


if __name__ == '__main__':
    main()

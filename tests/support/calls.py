"""D-Bus error replies as the tests see them: the error name and the message
without GDBus' 'GDBus.Error:NAME: ' prefix."""

import gi

gi.require_version('Gio', '2.0')
from gi.repository import Gio  # noqa: E402


class DBusCallError(Exception):
    """A D-Bus error reply, split into name and message (and the GLib.Error
    it came as, when there was one)."""

    def __init__(self, name, message, gerror=None):
        super().__init__(f'{name}: {message}')
        self.name = name
        self.message = message
        self.gerror = gerror


def split_gerror(e):
    """(error name, message) of a GLib.Error from a call; the name is None
    when it is not a D-Bus error reply (a local error such as a timeout)."""
    name = Gio.DBusError.get_remote_error(e)
    msg = e.message or ''
    if name and msg.startswith(f'GDBus.Error:{name}: '):
        msg = msg[len(f'GDBus.Error:{name}: '):]
    return name, msg

"""The non-root caller of the system tests (run by systemtest.NonRoot as
uid 65534 through setpriv, with Debian's /usr/bin/python3 and python3-gi).

Argument: one JSON object
  {"address": bus address,
   "calls": [{"dest", "path", "iface", "method", "sig", "args", "interactive"}, ...]}
   or {"address": ..., "own": "a.bus.Name"}
where "args" is GVariant text of the whole argument tuple (or null).

Output, one JSON line per event, flushed at once (a test reads them while the
client waits for a reply):
  {"sender": ":1.N", "uid": 65534}         once connected
  {"ok": value} | {"error": name, "message": text}   for each call / the RequestName
"""

import json
import os
import sys

import gi

gi.require_version('Gio', '2.0')
gi.require_version('GLib', '2.0')
from gi.repository import Gio, GLib  # noqa: E402

# python3 -I leaves the script's folder off sys.path: systemtest.NonRoot
# puts a copy of the support package beside this script.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from support.calls import split_gerror  # noqa: E402

TIMEOUT_MS = 120 * 1000


def emit(obj):
    sys.stdout.write(json.dumps(obj) + '\n')
    sys.stdout.flush()


def plain(value):
    if isinstance(value, (list, tuple)):
        return [plain(x) for x in value]
    if isinstance(value, dict):
        return {str(k): plain(x) for k, x in value.items()}
    return value


def do_call(conn, c):
    params = None
    if c.get('sig'):
        params = GLib.Variant.parse(GLib.VariantType.new(c['sig']), c['args'], None, None)
    flags = Gio.DBusCallFlags.NONE
    if c.get('interactive'):
        flags |= Gio.DBusCallFlags.ALLOW_INTERACTIVE_AUTHORIZATION
    try:
        r = conn.call_sync(c['dest'], c['path'], c['iface'], c['method'], params, None, flags, TIMEOUT_MS, None)
    except GLib.Error as e:
        name, msg = split_gerror(e)
        return {'error': name or f'{e.domain}:{e.code}', 'message': msg}
    return {'ok': plain(r.unpack())}


def main():
    req = json.loads(sys.argv[1])
    conn = Gio.DBusConnection.new_for_address_sync(
        req['address'], Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT |
        Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)
    emit({'sender': conn.get_unique_name(), 'uid': os.geteuid()})
    if 'own' in req:
        # DBUS_NAME_FLAG_DO_NOT_QUEUE: an answer at once, never a queue.
        emit(do_call(conn, {'dest': 'org.freedesktop.DBus', 'path': '/org/freedesktop/DBus',
                            'iface': 'org.freedesktop.DBus', 'method': 'RequestName', 'sig': '(su)',
                            'args': GLib.Variant('(su)', (req['own'], 4)).print_(True)}))
    for c in req.get('calls', []):
        emit(do_call(conn, c))
    conn.close_sync(None)
    return 0


if __name__ == '__main__':
    sys.exit(main())

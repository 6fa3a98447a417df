"""A private system bus for one test class with python-dbusmock's polkitd
on it: the bus (permissive, see support.bus) in a directory every uid can
traverse (the non-root caller reaches its socket), DBUS_SYSTEM_BUS_ADDRESS
pointing at it while the class runs (dbusmock's spawn helpers find the bus
there), and the mock from spawn_polkit(): the polkitd template unless a
class spawns its own; none when WITH_POLKIT is false."""

import os
import shutil
import subprocess
import tempfile

import dbusmock

from support.bus import PERMISSIVE_POLICY, Bus

POLKIT_NAME = 'org.freedesktop.PolicyKit1'
POLKIT_PATH = '/org/freedesktop/PolicyKit1/Authority'
POLKIT_IFACE = 'org.freedesktop.PolicyKit1.Authority'


class PolkitMockTestCase(dbusmock.DBusTestCase):
    BUS_PREFIX = 'qsd-polkit-bus-'
    WITH_POLKIT = True

    @classmethod
    def setUpClass(cls):
        cls.bus_dir = tempfile.mkdtemp(prefix=cls.BUS_PREFIX)
        os.chmod(cls.bus_dir, 0o755)
        cls.bus = Bus(cls.bus_dir, PERMISSIVE_POLICY)
        cls.saved_address = os.environ.get('DBUS_SYSTEM_BUS_ADDRESS')
        os.environ['DBUS_SYSTEM_BUS_ADDRESS'] = cls.bus.address
        cls.mock_proc = None
        cls.mock = None
        if cls.WITH_POLKIT:
            cls.spawn_polkit()

    @classmethod
    def spawn_polkit(cls):
        """The polkitd template: every action denied until SetAllowed."""
        cls.mock_proc, cls.mock = cls.spawn_server_template('polkitd', {}, stdout=subprocess.DEVNULL)

    @classmethod
    def kill_polkit(cls):
        if cls.mock_proc is not None:
            cls.mock_proc.terminate()
            cls.mock_proc.wait(30)
        cls.mock_proc = None
        cls.mock = None

    @classmethod
    def tearDownClass(cls):
        cls.kill_polkit()
        cls.bus.stop()
        if cls.saved_address is None:
            os.environ.pop('DBUS_SYSTEM_BUS_ADDRESS', None)
        else:
            os.environ['DBUS_SYSTEM_BUS_ADDRESS'] = cls.saved_address
        shutil.rmtree(cls.bus_dir, ignore_errors=True)

    def mock_call(self, method, *args):
        """A call to the mock's control interface (SetAllowed, ClearCalls, ...)."""
        return getattr(self.mock, method)(*args, dbus_interface=dbusmock.MOCK_IFACE)

#!/usr/bin/python3
"""Small holes that let one thing break others.

- A linux-kernel directory whose name is not valid UTF-8, or not a valid vid,
  is skipped with a warning; ListVolumes and GetManagedObjects keep working
  for everyone and list the good kernels, at start and after a rescan.
- RemovePool of a linux-kernel pool announces the end of each of its volumes
  (InterfacesRemoved) and the objects are gone.
- ephemeral=true (volatile data under a throw-away key) is refused with
  NotSupported naming the driver, since no driver does it; nothing is made.
- The installed binary holds no QUBES_STORAGED_TEST_* seam: only the test
  build (the one these suites run) does.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get('QUBES_STORAGED_SRC') or os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SRC, 'tests', 'dbus'))

import storaged  # noqa: E402
from storaged import MiB, OBJECT_MANAGER, POOL, VOLUME, StoragedTestCase, pool_path, vconf, volume_path  # noqa: E402

KERNEL_POOL = 'linux-kernel'
GOOD = ('6.1.0-1-amd64', '5.15.94')
BAD = (b'6.1-\xff\xfe', b'with space', b'semi;colon')


def make_kernel(kdir, name):
    d = os.path.join(os.fsencode(kdir), name if isinstance(name, bytes) else os.fsencode(name))
    os.makedirs(d)
    for f in (b'vmlinuz', b'initramfs', b'modules.img'):
        with open(os.path.join(d, f), 'wb') as fh:
            fh.write(b'\x7fELF' + f * 100)


class KernelNamesTest(StoragedTestCase):

    def prepare(self):
        self.kdir = os.path.join(self.base_dir, 'vm-kernels')
        for name in GOOD + BAD:
            make_kernel(self.kdir, name)

    def assertOnlyGoodKernels(self, good):
        listed = self.list_volumes(KERNEL_POOL)
        self.assertEqual(listed, [(v, volume_path(KERNEL_POOL, v)) for v in sorted(good)])
        objs = self.managed_objects()
        vols = sorted(o for o, ifaces in objs.items() if VOLUME in ifaces
                      and ifaces[VOLUME]['Pool'] == pool_path(KERNEL_POOL))
        self.assertEqual(vols, sorted(volume_path(KERNEL_POOL, v) for v in good))

    def test_bad_names_skipped_at_start(self):
        self.assertOnlyGoodKernels(GOOD)
        out = self.service.output()
        self.assertIn('with space', out, 'no warning names the skipped kernel directory')

    def test_bad_name_appearing_later_skipped(self):
        make_kernel(self.kdir, b'late-\xc3\x28')
        make_kernel(self.kdir, '7.0')
        self.refresh_usage(KERNEL_POOL)
        self.assertOnlyGoodKernels(GOOD + ('7.0',))


class RemoveKernelPoolTest(StoragedTestCase):

    def prepare(self):
        self.kdir = os.path.join(self.pools_dir, 'kernels')
        for name in GOOD:
            make_kernel(self.kdir, name)

    def test_volumes_announced_gone(self):
        self.add_pool('k', 'linux-kernel', {'dir_path': self.kdir})
        paths = [volume_path('k', v) for v in GOOD]
        self.wait_until(lambda: sorted(p for _, p in self.list_volumes('k')) == sorted(paths),
                        'the kernels of pool k to be listed')
        since = self.mark()
        self.remove_pool('k')
        self.sync()
        removed = {args[0] for (_, i, m, args) in self.service_signals(since, 'InterfacesRemoved')
                   if VOLUME in args[1]}
        self.assertEqual(removed, set(paths), 'InterfacesRemoved of the pool\'s volumes')
        objs = self.managed_objects()
        for p in paths + [pool_path('k')]:
            self.assertNotIn(p, objs)
        # the kernels themselves are untouched
        for v in GOOD:
            self.assertTrue(os.path.isfile(os.path.join(self.kdir, v, 'modules.img')))
        # and the pool can come back with them
        self.add_pool('k', 'linux-kernel', {'dir_path': self.kdir})
        self.wait_until(lambda: sorted(p for _, p in self.list_volumes('k')) == sorted(paths),
                        'the kernels of pool k to be listed again')


class EphemeralTest(StoragedTestCase):

    def test_ephemeral_refused(self):
        for driver in ('file', 'file-reflink'):
            with self.subTest(driver=driver):
                name = driver.replace('-', '')
                config = {'dir_path': os.path.join(self.pools_dir, name)}
                if driver == 'file-reflink':
                    config['setup_check'] = 'False'  # the test dir need not reflink: the refusal comes first
                self.add_pool(name, driver, config)
                self.assertRejected('NotSupported', self.create_volume, name,
                                    vconf(name='volatile', vm='work', size=MiB, rw=True, ephemeral=True),
                                    contains=(driver, 'ephemeral'))
                self.assertDBusError('NoSuchVolume', self.get_volume, name, 'appvms/work/volatile')
                # without it, the same volume is made
                self.create_volume(name, vconf(name='volatile', vm='work', size=MiB, rw=True, ephemeral=False))


SEAM = b'QUBES_STORAGED_TEST_'


class InstalledBinaryTest(StoragedTestCase):

    def test_no_test_seams_installed(self):
        installed = os.environ.get('QUBES_STORAGED_INSTALLED') or \
            os.path.join(os.path.dirname(storaged.SERVICE), 'qubes-storaged')
        self.assertTrue(os.access(installed, os.X_OK), f'no installed binary at {installed}')
        with open(installed, 'rb') as f:
            data = f.read()
        self.assertFalse(SEAM in data, f'{installed} holds QUBES_STORAGED_TEST_* seams')
        # the installed binary is a working service too
        out = __import__('subprocess').run([installed, '--version'], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0)


if __name__ == '__main__':
    storaged.main()

"""Nothing is committed before it is on disk: Stop of a `file` volume flushes
the image the VM wrote (and the CoW file that becomes the revision) before the
CoW file is renamed to the revision -cow.img.old, so a power loss right after
the rename never pairs a revision with data that was not yet written.

Watched with strace attached to the running service (fails without strace).
"""

import os
import re
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'dbus'))

from storaged import MiB, StoragedTestCase  # noqa: E402
from support import strace  # noqa: E402

SYSCALLS = 'fsync,fdatasync,rename,renameat,renameat2'


class StopFlushesImageTest(StoragedTestCase):

    def trace(self, fn):
        """Runs fn() with strace attached to the service; returns the traced
        lines in the order they happened."""
        out = os.path.join(self.tmp, 'strace.out')
        st = strace.attach(self.service.proc.pid, ['-f', '-qq', '-y', '-s', '4096', '-e', 'trace=' + SYSCALLS,
                                                   '-o', out])
        try:
            fn()
        finally:
            st.send_signal(signal.SIGINT)
            st.wait(30)
            st.stderr.close()
        with open(out) as fh:
            return fh.read().splitlines()

    def test_stop_flushes_image_before_the_revision(self):
        d = os.path.join(self.pools_dir, 'fp')
        self.add_file_pool('fp', revisions_to_keep=1, dir_path=d)
        vpath = self.create_volume('fp', dict(name='private', vm='work', size=4 * MiB, rw=True, save_on_stop=True))
        self.start(vpath)
        img = os.path.join(d, 'appvms/work/private.img')
        with open(img, 'r+b') as f:
            f.write(b'written by the VM' * 1000)
        lines = self.trace(lambda: self.stop(vpath))
        rename = next((i for i, line in enumerate(lines)
                       if re.search(r'rename\w*\(.*"[^"]*private-cow\.img".*"[^"]*private-cow\.img\.old"', line)), None)
        self.assertIsNotNone(rename, 'Stop did not rename private-cow.img to private-cow.img.old:\n'
                             + '\n'.join(lines))
        flushed = [line for line in lines[:rename] if re.search(r'f(data)?sync\(\d+<' + re.escape(img) + '>', line)]
        self.assertTrue(flushed, 'the image was not flushed before the CoW file became the revision:\n'
                        + '\n'.join(lines[:rename + 1]))
        self.assertEqual(self.vprop(vpath, 'Revisions')[0][0], 'old')


if __name__ == '__main__':
    import unittest
    unittest.main(verbosity=2)

"""Revisions of file-reflink origins on btrfs (docs/drivers.md, "file-reflink": commit, revert).

Every Stop of an origin turns the previous clean image into revision N+1
(<name>.img.<N>@<ctime of clean>Z) and keeps the newest revisions_to_keep; the
Revisions property always says what the files say. Revert('') restores the
newest revision, Revert(id) an older one, and the replaced clean image becomes
a new revision so a revert can be undone; unknown ids → NoSuchRevision,
a dirty volume → VolumeBusy. VMs `a` and `a-root` (and other names with '-')
never see each other's revisions or lose files to each other."""

import datetime
import os
import time

from reflinktest import (REV_FILE_RE, GiB, MiB, ReflinkTestCase, content_digest, list_files, main, random_chunks,
                         temp_files, write_chunks)


def ts_of(epoch):
    return datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


class RevisionsTest(ReflinkTestCase):

    def setUp(self):
        super().setUp()
        self.mnt = self.mount('btrfs')
        self.D = os.path.join(self.mnt, 'pool')
        self.add_reflink_pool('r', self.D, revisions_to_keep=2)

    def cycle(self, v, vid, tag):
        """Start, write a generation marker, Stop. Returns (content digest of
        the clean image before the Stop, its ctime as a timestamp)."""
        f = self.files(self.D, vid)
        before = content_digest(f.clean)
        ctime = os.stat(f.clean).st_ctime
        self.start(v)
        write_chunks(f.dirty, random_chunks(f'{vid}:{tag}', (0, 8 * MiB)))
        written = content_digest(f.dirty)
        self.stop(v)
        self.assertFalse(os.path.exists(f.dirty))
        self.assertEqual(content_digest(f.clean), written, f'{vid}: Stop did not commit the running image')
        return before, ts_of(ctime)

    def check_sequence(self, keep):
        vid = f'appvms/k{keep}/private'
        v = self.origin('r', f'k{keep}', 'private', size=GiB // 4, revisions_to_keep=keep)
        self.assertEqual(self.vprop(v, 'RevisionsToKeep'), keep)
        self.assertEqual(self.vprop(v, 'Revisions'), [])
        history = []  # (id, digest, timestamp) of every revision ever made
        for i in range(1, 5):
            digest, ts = self.cycle(v, vid, i)
            history.append((str(i), digest, ts))
            expect = history[-keep:] if keep else []
            revs = self.assertRevisionsMatchFiles(v, self.D, vid)
            self.assertEqual(revs, [(n, t) for n, _, t in expect],
                             f'revisions_to_keep={keep}, after stop {i}: ids and timestamps (ctime of the '
                             f'replaced clean image)')
            files = self.revision_files(self.D, vid)
            for n, d, _ in expect:
                self.assertEqual(content_digest(files[n][0]), d, f'revision {n} holds the clean image of before '
                                 f'stop {n}')
            self.assertEqual(temp_files(self.D), [])
        return v

    def test_keep_0(self):
        self.check_sequence(0)

    def test_keep_1(self):
        self.check_sequence(1)

    def test_keep_2(self):
        self.check_sequence(2)

    def test_lowering_revisions_to_keep_prunes_on_next_stop(self):
        v = self.check_sequence(2)
        vid = 'appvms/k2/private'
        self.set_revisions_to_keep(v, 1)
        self.cycle(v, vid, 'after')
        revs = self.assertRevisionsMatchFiles(v, self.D, vid)
        self.assertEqual([n for n, _ in revs], ['5'])

    def test_revert(self):
        vid = 'appvms/work/private'
        v = self.origin('r', 'work', 'private', size=GiB // 4)
        f = self.files(self.D, vid)
        c = [content_digest(f.clean)]       # c[0]: empty
        for i in range(1, 4):
            self.cycle(v, vid, i)
            c.append(content_digest(f.clean))  # c[i]: after stop i
        # revisions: 2 = c[1], 3 = c[2]; clean = c[3]
        files = self.revision_files(self.D, vid)
        self.assertEqual(sorted(files), ['2', '3'])
        self.assertEqual(content_digest(files['3'][0]), c[2])

        # Revert('') → the newest revision; the replaced clean becomes revision 4
        time.sleep(1.1)  # a new second: the new revision's stamp is the ctime of the replaced clean
        replaced_ctime = os.stat(f.clean).st_ctime
        self.revert(v, '')
        self.assertEqual(content_digest(f.clean), c[2])
        revs = self.assertRevisionsMatchFiles(v, self.D, vid)
        self.assertEqual([n for n, _ in revs], ['2', '4'], 'Revert: revision 3 became clean, old clean became 4')
        self.assertEqual(revs[-1][1], ts_of(replaced_ctime))
        self.assertEqual(content_digest(self.revision_files(self.D, vid)['4'][0]), c[3])

        # Revert to an older id
        self.revert(v, '2')
        self.assertEqual(content_digest(f.clean), c[1])
        self.assertEqual([n for n, _ in self.assertRevisionsMatchFiles(v, self.D, vid)], ['4', '5'])
        self.assertEqual(content_digest(self.revision_files(self.D, vid)['5'][0]), c[2])

        # ... and undo it: the revision made by the revert
        self.revert(v, '5')
        self.assertEqual(content_digest(f.clean), c[2])
        self.assertEqual([n for n, _ in self.assertRevisionsMatchFiles(v, self.D, vid)], ['4', '6'])
        # and back to the data of the last stop
        self.revert(v, '4')
        self.assertEqual(content_digest(f.clean), c[3])
        self.assertEqual(temp_files(self.D), [])

        # the reverted data is what the next Start hands out
        self.start(v)
        self.assertEqual(content_digest(f.dirty), c[3])
        self.assertShares(f.dirty, f.clean)
        self.stop(v)

    def test_revert_errors(self):
        vid = 'appvms/work/private'
        v = self.origin('r', 'work', 'private', size=GiB // 4)
        none = self.origin('r', 'work', 'norevs', size=GiB // 4, revisions_to_keep=0)
        self.cycle(none, 'appvms/work/norevs', 1)
        self.assertRejected('NoSuchRevision', self.revert, none, '', contains=('appvms/work/norevs',))
        self.assertRejected('NoSuchRevision', self.revert, v, '', contains=(vid,))
        self.cycle(v, vid, 1)
        self.cycle(v, vid, 2)
        for bad in ('99', '0', '-1', 'abc', '1@x', '2 ', ' 2', '02', 'old'):
            with self.subTest(revision=bad):
                self.assertRejected('NoSuchRevision', self.revert, v, bad, contains=(vid,))
        # dirty (started) → VolumeBusy, for the newest and for an id
        self.start(v)
        self.assertRejected('VolumeBusy', self.revert, v, '', contains=(vid,))
        self.assertRejected('VolumeBusy', self.revert, v, '1', contains=(vid,))
        self.stop(v)
        oldest = self.vprop(v, 'Revisions')[0][0]
        self.revert(v, oldest)

    def test_revert_to_other_size(self):
        """Reverting to a revision of another size changes Size and
        emits SizeChanged."""
        vid = 'appvms/work/private'
        v = self.origin('r', 'work', 'private', size=GiB // 4)
        self.cycle(v, vid, 1)
        self.resize(v, GiB // 2)
        self.assertEqual(self.vprop(v, 'Size'), GiB // 2)
        self.cycle(v, vid, 2)  # revision 2 = the clean image of 1/2 GiB before this stop
        self.resize(v, GiB)
        self.assertEqual(self.vprop(v, 'Size'), GiB)
        since = self.mark()
        self.revert(v, '')
        self.assertEqual(os.stat(self.files(self.D, vid).clean).st_size, GiB // 2)
        self.assertEqual(self.vprop(v, 'Size'), GiB // 2)
        args = self.wait_signal(since, 'SizeChanged', path=v)
        self.assertEqual(tuple(args), (GiB, GiB // 2))

    def test_dash_vm_names_never_mix(self):
        """VMs `a`, `a-root` and `a-root-private` with volumes `root`,
        `private` and `root-private`: each sees only its own revisions;
        create and remove never touch another's files."""
        vols = {}
        specs = [('a', 'root', False), ('a', 'private', False), ('a', 'root-private', False),
                 ('a-root', 'private', False), ('a-root', 'root', False), ('a-root-private', 'root', False),
                 ('a', 'root', True), ('a-root', 'root', True)]
        for i, (vm, name, template) in enumerate(specs):
            v = self.origin('r', vm, name, size=16 * MiB, template=template, revisions_to_keep=1 + i % 3)
            vols[self.vprop(v, 'Vid')] = v
        for rounds in range(3):
            for vid, v in vols.items():
                self.cycle(v, vid, rounds)
        for vid, v in vols.items():
            keep = self.vprop(v, 'RevisionsToKeep')
            revs = self.assertRevisionsMatchFiles(v, self.D, vid)
            self.assertEqual([n for n, _ in revs], [str(n) for n in range(4 - keep, 4)], f'revisions of {vid}')
        before = {vid: content_digest(self.files(self.D, vid).clean) for vid in vols}
        snap = {vid: sorted(self.revision_files(self.D, vid)) for vid in vols}
        # remove a's root, recreate it: nobody else loses anything
        self.remove(vols['appvms/a/root'])
        self.assertFalse(os.path.exists(self.files(self.D, 'appvms/a/root').clean))
        self.assertEqual(self.revision_files(self.D, 'appvms/a/root'), {})
        v = self.origin('r', 'a', 'root', size=16 * MiB)
        for vid in vols:
            if vid == 'appvms/a/root':
                continue
            self.assertEqual(content_digest(self.files(self.D, vid).clean), before[vid], f'{vid} changed')
            self.assertEqual(sorted(self.revision_files(self.D, vid)), snap[vid], f'revisions of {vid} changed')
            self.assertRevisionsMatchFiles(vols[vid], self.D, vid)
        self.assertEqual(self.vprop(v, 'Revisions'), [])

    def test_dash_volume_names_are_separate(self):
        """Volume names that extend another's name with '-', '.' or '_' (root-1,
        root.img, root_x, root-export-aa, root-import-x): create, start,
        stop and remove of `root` never touch their files, and their
        revisions never show up in root's Revisions."""
        names = ['root', 'root-1', 'root.img', 'root.img.5', 'root_x', 'root-export-aa', 'root-import-x',
                 'root-dirty-x']
        vols = {}
        for name in names:
            vols[name] = self.origin('r', 'b', name, size=16 * MiB, revisions_to_keep=2)
        for rounds in range(3):
            for name, v in vols.items():
                self.cycle(v, f'appvms/b/{name}', rounds)
        for name, v in vols.items():
            revs = self.assertRevisionsMatchFiles(v, self.D, f'appvms/b/{name}')
            self.assertEqual([n for n, _ in revs], ['2', '3'], f'revisions of {name}')
        d = os.path.join(self.D, 'appvms', 'b')

        def own(f):
            m = REV_FILE_RE.match(f)
            return f == 'root.img' or bool(m and m.group('name') == 'root')
        theirs = [f for f in list_files(d) if not own(f)]
        theirs_before = {f: content_digest(os.path.join(d, f)) for f in theirs}
        self.remove(vols['root'])
        self.origin('r', 'b', 'root', size=16 * MiB)
        theirs_after = {f: content_digest(os.path.join(d, f)) for f in theirs if os.path.exists(os.path.join(d, f))}
        lost = sorted(set(theirs_before) - set(theirs_after))
        self.assertEqual(lost, [], 'Remove and CreateVolume of b:root deleted files of other volumes of VM b')
        self.assertEqual(theirs_after, theirs_before)
        for name, v in vols.items():
            if name != 'root':
                self.assertTrue(self.vprop(v, 'Size') == 16 * MiB and self.call(v, 'org.qubes.Storage1.Volume',
                                'Verify', 'a{sv}', ({},), 'b'), f'volume b:{name} is damaged')


if __name__ == '__main__':
    main()

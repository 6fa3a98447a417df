"""Pool usage limits (API.md, Pool: Provisioned, UsageLimits, UsageState,
SetUsageLimits, the usage_warning/usage_critical config keys): a file pool on
its own 64 MiB tmpfs, filled from outside the service, moves between ok,
warning and critical as its limits and its usage say, each change pushed by
PropertiesChanged; bad limits change nothing; limits survive a restart;
Provisioned is the sum of the volumes' sizes. Needs root (the tmpfs)."""

import os

from storaged import POOL, MiB, StoragedTestCase, main, opts, pool_path
from support.loopfs import LoopFs  # noqa: E402  (storaged put tests/ on sys.path)

FS_SIZE = 64 * MiB


class UsageLimitsTest(StoragedTestCase):

    def prepare(self):
        self.fs = LoopFs('tmpfs', self.tmp, size=FS_SIZE).setup()
        self.addCleanup(self.fs.cleanup)
        self.dir = os.path.join(self.fs.mnt, 'pool')

    def fill(self, mib):
        """mib MiB written into the pool's filesystem, not through the service."""
        with open(os.path.join(self.fs.mnt, 'filler'), 'wb') as f:
            f.write(b'\xa5' * (mib * MiB))

    def percent(self, name):
        p = self.pprops(name)
        return 100 * p['Usage'] / p['Size']

    def set_limits(self, name, warning, critical, options=None):
        return self.call(pool_path(name), POOL, 'SetUsageLimits', 'uua{sv}', (warning, critical, options or {}), '')

    def test_state_follows_limits_and_usage(self):
        self.add_pool('t', 'file', {'dir_path': self.dir})
        p = self.pprops('t')
        self.assertEqual(p['UsageLimits'], (90, 95))
        self.assertEqual(p['UsageState'], 'ok')
        self.assertNotIn('usage_warning', p['Config'])
        self.fill(40)   # about 62 %
        self.refresh_usage('t')
        pct = self.percent('t')
        self.assertTrue(55 < pct < 70, f'tmpfs at {pct:.1f} % after 40 of 64 MiB')
        self.assertEqual(self.pprops('t')['UsageState'], 'ok')

        since = self.mark()
        self.set_limits('t', 50, 60)
        p = self.pprops('t')
        self.assertEqual((p['UsageLimits'], p['UsageState']), ((50, 60), 'critical'))
        self.assertEqual((p['Config']['usage_warning'], p['Config']['usage_critical']), ('50', '60'))
        self.wait_property_changed(since, pool_path('t'), POOL, 'UsageState', 'critical')
        self.wait_property_changed(since, pool_path('t'), POOL, 'UsageLimits', (50, 60))

        since = self.mark()
        self.set_limits('t', 60, 80)
        self.assertEqual(self.pprops('t')['UsageState'], 'warning')
        self.wait_property_changed(since, pool_path('t'), POOL, 'UsageState', 'warning')

        # the storage moves: the state follows at the next read of the usage
        since = self.mark()
        os.unlink(os.path.join(self.fs.mnt, 'filler'))
        self.refresh_usage('t')
        self.assertEqual(self.pprops('t')['UsageState'], 'ok')
        self.wait_property_changed(since, pool_path('t'), POOL, 'UsageState', 'ok')

        # limits of 100 %: critical only when full
        self.set_limits('t', 100, 100)
        self.assertEqual(self.pprops('t')['UsageLimits'], (100, 100))

    def test_bad_limits_change_nothing(self):
        self.add_pool('t', 'file', {'dir_path': self.dir})
        self.set_limits('t', 70, 80)
        for w, c in ((0, 10), (50, 40), (50, 101), (101, 101), (0, 0)):
            self.assertRejected('org.qubes.Storage1.Error.InvalidArgument', self.set_limits, 't', w, c,
                                contains=('t', str(w), str(c)))
            self.assertEqual(self.pprops('t')['UsageLimits'], (70, 80))
        for cfg in ({'usage_warning': '0'}, {'usage_warning': 'x'}, {'usage_critical': '101'},
                    {'usage_warning': '90', 'usage_critical': '80'}, {'usage_critical': '-5'}):
            self.assertRejected('org.qubes.Storage1.Error.InvalidArgument', self.add_pool, 'u', 'file',
                                dict(dir_path=os.path.join(self.fs.mnt, 'u'), **cfg), contains=('u',))
        self.assertNotIn('u', [n for n, _ in self.list_pools()])

    def test_limits_from_add_pool_survive_restart(self):
        self.add_pool('t', 'file', {'dir_path': self.dir, 'usage_warning': '70', 'usage_critical': '85'})
        self.assertEqual(self.pprops('t')['UsageLimits'], (70, 85))
        self.restart_service()
        self.assertEqual(self.pprops('t')['UsageLimits'], (70, 85))
        self.set_limits('t', 20, 30)
        self.restart_service()
        p = self.pprops('t')
        self.assertEqual(p['UsageLimits'], (20, 30))
        self.assertEqual((p['Config']['usage_warning'], p['Config']['usage_critical']), ('20', '30'))

    def test_provisioned_is_the_sum_of_sizes(self):
        self.add_pool('t', 'file', {'dir_path': self.dir})
        self.assertEqual(self.pprops('t')['Provisioned'], 0)
        since = self.mark()
        a = self.create_volume('t', dict(name='private', vm='a', size=8 * MiB, save_on_stop=True, rw=True))
        self.create_volume('t', dict(name='private', vm='b', size=200 * MiB, save_on_stop=True, rw=True))
        p = self.pprops('t')
        self.assertEqual(p['Provisioned'], 208 * MiB)   # more than the pool holds: over-provisioned
        self.assertEqual(p['UsageDetails']['provisioned'], 208 * MiB)
        self.wait_property_changed(since, pool_path('t'), POOL, 'Provisioned', 208 * MiB)
        self.resize(a, 16 * MiB)
        self.wait_prop(pool_path('t'), POOL, 'Provisioned', 216 * MiB)
        self.remove(a)
        self.wait_prop(pool_path('t'), POOL, 'Provisioned', 200 * MiB)
        self.restart_service()
        self.assertEqual(self.pprops('t')['Provisioned'], 200 * MiB)


if __name__ == '__main__':
    main()

"""introspection/*.xml say what API.md says, and the running service
introspects exactly what the XML files say."""

import os
import unittest
import xml.etree.ElementTree as ET

from storaged import MANAGER, POOL, ROOT, SRCDIR, VOLUME, MiB, StoragedTestCase, pool_path

XML_DIR = os.path.join(SRCDIR, 'introspection')
EMITS = 'org.freedesktop.DBus.Property.EmitsChangedSignal'

# API.md, member by member: methods (in signature, out signature, in arg
# names), properties (type, 'const' or 'emits' or None where API.md gives no
# change behaviour), signals (signature, arg names). The Job interface has
# no XML file yet.
API = {
    MANAGER: {
        'methods': {
            'ListDrivers': ('', 'a(sas)', []),
            'ListPools': ('', 'a(so)', []),
            'GetPool': ('s', 'o', ['name']),
            'AddPool': ('ssa{ss}a{sv}', 'o', ['name', 'driver', 'config', 'options']),
            'RemovePool': ('sa{sv}', '', ['name', 'options']),
            'StartVolumes': ('aoa{sv}', '', ['volumes', 'options']),
            'StopVolumes': ('aoa{sv}', '', ['volumes', 'options']),
            'VerifyVolumes': ('aoa{sv}', '', ['volumes', 'options']),
        },
        'properties': {'Version': ('s', 'const')},
        'signals': {},
    },
    POOL: {
        'methods': {
            'ListVolumes': ('', 'a(so)', []),
            'GetVolume': ('s', 'o', ['vid']),
            'CreateVolume': ('a{sv}a{sv}', 'o', ['config', 'options']),
            'SetRevisionsToKeep': ('ia{sv}', '', ['n', 'options']),
            'RefreshUsage': ('a{sv}', '', ['options']),
            'SetUsageLimits': ('uua{sv}', '', ['warning', 'critical', 'options']),
        },
        'properties': {
            'Name': ('s', 'const'), 'Driver': ('s', 'const'), 'Config': ('a{ss}', None),
            'Size': ('t', 'emits'), 'Usage': ('t', 'emits'), 'UsageDetails': ('a{st}', 'emits'),
            'RevisionsToKeep': ('i', 'emits'), 'Provisioned': ('t', 'emits'), 'UsageLimits': ('(uu)', 'emits'),
            'UsageState': ('s', 'emits'),
        },
        'signals': {},
    },
    VOLUME: {
        'methods': {
            'Start': ('a{sv}', '', ['options']),
            'Stop': ('a{sv}', '', ['options']),
            'Verify': ('a{sv}', 'b', ['options']),
            'Remove': ('a{sv}', '', ['options']),
            'Resize': ('ta{sv}', '', ['size', 'options']),
            'Revert': ('sa{sv}', '', ['revision', 'options']),
            'SetRw': ('ba{sv}', '', ['rw', 'options']),
            'SetRevisionsToKeep': ('ia{sv}', '', ['n', 'options']),
            'ImportBegin': ('ta{sv}', 'hs', ['size', 'options']),
            'ImportEnd': ('bsa{sv}', '', ['success', 'message', 'options']),
            'Import': ('hta{sv}', '', ['fd', 'size', 'options']),
            'ImportVolume': ('oa{sv}', '', ['source', 'options']),
            'Export': ('a{sv}', 'hs', ['options']),
            'ExportEnd': ('sa{sv}', '', ['path', 'options']),
        },
        'properties': {
            'Vid': ('s', 'const'), 'Name': ('s', 'const'), 'Vm': ('s', 'const'), 'Pool': ('o', 'const'),
            'Source': ('s', 'const'), 'SnapOnStart': ('b', 'const'), 'SaveOnStop': ('b', 'const'),
            'Rw': ('b', 'emits'), 'RevisionsToKeep': ('i', 'emits'), 'Size': ('t', 'emits'),
            'Usage': ('t', 'emits'), 'Revisions': ('a(ss)', 'emits'), 'IsDirty': ('b', 'emits'),
            'IsOutdated': ('b', 'emits'), 'Started': ('b', 'emits'), 'Path': ('s', None),
            'BlockDevice': ('(sssb)', None), 'KernelsDir': ('s', None),
        },
        'signals': {'SizeChanged': ('tt', ['old_size', 'new_size']), 'Exported': ('s', ['path']),
                    'ExportEnded': ('s', ['path'])},
    },
}


def annotations(el):
    return {a.get('name'): a.get('value') for a in el.findall('annotation')}


def parse_interfaces(xml_text, ignore_standard=True):
    """interface name → {'annotations', 'methods', 'properties', 'signals'},
    each member with its args (name, type, direction) and annotations."""
    root = ET.fromstring(xml_text)
    out = {}
    for iface in root.findall('interface'):
        name = iface.get('name')
        if ignore_standard and name.startswith('org.freedesktop.DBus.'):
            continue
        d = {'annotations': annotations(iface), 'methods': {}, 'properties': {}, 'signals': {}}
        for m in iface.findall('method'):
            d['methods'][m.get('name')] = {
                'args': [(a.get('name'), a.get('type'), a.get('direction') or 'in') for a in m.findall('arg')],
                'annotations': annotations(m),
            }
        for p in iface.findall('property'):
            d['properties'][p.get('name')] = {
                'type': p.get('type'), 'access': p.get('access'), 'annotations': annotations(p),
            }
        for s in iface.findall('signal'):
            d['signals'][s.get('name')] = {
                'args': [(a.get('name'), a.get('type')) for a in s.findall('arg')],
                'annotations': annotations(s),
            }
        out[name] = d
    return out


def describe_differences(expected, actual, where='', label_e='XML file', label_a='service'):
    """Lines naming exactly what differs between two parsed structures."""
    lines = []
    if isinstance(expected, dict) and isinstance(actual, dict):
        for k in sorted(set(expected) | set(actual), key=str):
            w = f'{where}/{k}' if where else str(k)
            if k not in actual:
                lines.append(f'{w}: only in the {label_e}: {expected[k]!r}')
            elif k not in expected:
                lines.append(f'{w}: only in the {label_a}: {actual[k]!r}')
            else:
                lines += describe_differences(expected[k], actual[k], w, label_e, label_a)
    elif expected != actual:
        lines.append(f'{where}: {label_e} has {expected!r}, {label_a} has {actual!r}')
    return lines


def read_xml(iface):
    path = os.path.join(XML_DIR, f'{iface}.xml')
    with open(path) as f:
        return f.read()


class XmlMatchesApiTest(unittest.TestCase):
    """No service needed: the XML files against API.md's tables."""

    def test_one_file_per_interface(self):
        for iface in API:
            parsed = parse_interfaces(read_xml(iface), ignore_standard=False)
            self.assertEqual(list(parsed), [iface], f'{iface}.xml must describe exactly that interface')

    def test_xml_matches_api(self):
        problems = []
        for iface, api in API.items():
            x = parse_interfaces(read_xml(iface))[iface]
            for kind in ('methods', 'properties', 'signals'):
                extra = set(x[kind]) - set(api[kind])
                missing = set(api[kind]) - set(x[kind])
                for n in sorted(extra):
                    problems.append(f'{iface}: {kind[:-1]} {n} is in the XML but not in API.md')
                for n in sorted(missing):
                    problems.append(f'{iface}: {kind[:-1]} {n} is in API.md but not in the XML')
            for n, (sig_in, sig_out, names) in api['methods'].items():
                if n not in x['methods']:
                    continue
                args = x['methods'][n]['args']
                got_in = ''.join(t for _, t, d in args if d == 'in')
                got_out = ''.join(t for _, t, d in args if d == 'out')
                got_names = [a for a, _, d in args if d == 'in']
                if (got_in, got_out, got_names) != (sig_in, sig_out, names):
                    problems.append(f'{iface}.{n}: XML ({got_in}) → ({got_out}) {got_names}, '
                                    f'API.md ({sig_in}) → ({sig_out}) {names}')
                if any(not a for a, _, _ in args):
                    problems.append(f'{iface}.{n}: every argument must have a name')
            for n, (ptype, change) in api['properties'].items():
                if n not in x['properties']:
                    continue
                p = x['properties'][n]
                emits = p['annotations'].get(EMITS)
                want_emits = {'const': 'const', 'emits': None, None: None}[change]
                if p['type'] != ptype or p['access'] != 'read' or emits != want_emits:
                    problems.append(f'{iface}.{n}: XML type {p["type"]} access {p["access"]} EmitsChangedSignal '
                                    f'{emits}; API.md type {ptype}, read-only, '
                                    f'EmitsChangedSignal {want_emits}')
            for n, (sig, names) in api['signals'].items():
                if n not in x['signals']:
                    continue
                args = x['signals'][n]['args']
                if (''.join(t for _, t in args), [a for a, _ in args]) != (sig, names):
                    problems.append(f'{iface}.{n}: XML signal args {args}, API.md ({sig}) {names}')
        if problems:
            self.fail('introspection XML and API.md disagree:\n  ' + '\n  '.join(problems))


class IntrospectionTest(StoragedTestCase):
    """The running service against the XML files."""

    def setUp(self):
        super().setUp()
        self.add_file_pool('p1')
        self.vpath = self.create_volume('p1', dict(name='private', vm='work', size=MiB, rw=True, save_on_stop=True))

    def compare(self, path, iface, extra_standard=()):
        text = self.introspect(path)
        service_all = parse_interfaces(text, ignore_standard=False)
        service = parse_interfaces(text)
        self.assertEqual(sorted(service), [iface],
                         f'{path} should implement exactly {iface} (besides org.freedesktop.DBus.*), '
                         f'it introspects {sorted(service)}')
        for std in ('org.freedesktop.DBus.Properties', 'org.freedesktop.DBus.Introspectable',
                    'org.freedesktop.DBus.Peer') + tuple(extra_standard):
            self.assertIn(std, service_all, f'{path} lacks {std}')
        expected = parse_interfaces(read_xml(iface))
        diff = describe_differences(expected, service)
        if diff:
            self.fail(f'introspection of {path} differs from introspection/{iface}.xml:\n  ' + '\n  '.join(diff)
                      + f'\n\nservice returned:\n{text}')

    def test_manager(self):
        self.compare(ROOT, MANAGER, extra_standard=('org.freedesktop.DBus.ObjectManager',))

    def test_pool(self):
        self.compare(pool_path('p1'), POOL)
        self.compare(pool_path('linux-kernel'), POOL)

    def test_volume(self):
        self.compare(self.vpath, VOLUME)

    def test_tree_walk(self):
        """Walking Introspect's child nodes from the root reaches exactly the
        pools and volumes that ListPools/ListVolumes name, each with its
        interface."""
        found = {}
        todo = [ROOT]
        seen = set()
        while todo:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            root = ET.fromstring(self.introspect(path))
            ifaces = sorted(parse_interfaces(ET.tostring(root, encoding='unicode')))
            if ifaces:
                found[path] = ifaces
            for n in root.findall('node'):
                name = n.get('name')
                self.assertFalse(name.startswith('/'), f'child node of {path} with an absolute name: {name}')
                todo.append(path.rstrip('/') + '/' + name)
        expected = {ROOT: [MANAGER]}
        for pool, ppath in self.list_pools():
            expected[ppath] = [POOL]
            for _, vpath in self.list_volumes(pool):
                expected[vpath] = [VOLUME]
        self.assertIn(self.vpath, expected)
        self.assertEqual(found, expected)

if __name__ == '__main__':
    unittest.main(verbosity=2)

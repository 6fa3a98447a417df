"""docs/api.md describes every member of introspection/ with its signature.

The XML files are the machine-readable contract; docs/api.md is what a client
writer reads. This test parses both: every method, property and signal of
every interface must have a table row in the section of its interface, with the
same D-Bus signature (methods: `in → out`, properties: the type, signals: the
arguments), and the page must describe no member the XML lacks.
"""

import os
import re
import sys
import unittest
import xml.etree.ElementTree as ET

SRCDIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INTERFACES = ('Manager', 'Pool', 'Volume', 'Job')
ROW = re.compile(r'^\| (signal )?`([A-Za-z]+)` \| `([^`]*)` \|')


def xml_members(short):
    """{(kind, name): signature} of org.qubes.Storage1.<short>."""
    root = ET.parse(os.path.join(SRCDIR, 'introspection', f'org.qubes.Storage1.{short}.xml')).getroot()
    members = {}
    for iface in root.iter('interface'):
        for m in iface:
            args = [a for a in m if a.tag == 'arg']
            if m.tag == 'method':
                ins = ''.join(a.get('type') for a in args if a.get('direction', 'in') == 'in')
                outs = ''.join(a.get('type') for a in args if a.get('direction') == 'out')
                members[('method', m.get('name'))] = f'{ins} → {outs}' if outs else ins
            elif m.tag == 'property':
                members[('property', m.get('name'))] = m.get('type')
            elif m.tag == 'signal':
                members[('signal', m.get('name'))] = ''.join(a.get('type') for a in args)
    return members


def doc_rows(short):
    """{name: (is_signal, signature)} of the table rows in the section `## <short> …`."""
    with open(os.path.join(SRCDIR, 'docs', 'api.md'), encoding='utf-8') as f:
        text = f.read()
    m = re.search(rf'^## {short}\b.*?$(.*?)(?=^## |\Z)', text, re.M | re.S)
    if not m:
        raise AssertionError(f'docs/api.md has no section "## {short}"')
    rows = {}
    for line in m.group(1).splitlines():
        r = ROW.match(line)
        if r:
            rows[r.group(2)] = (bool(r.group(1)), r.group(3).strip())
    return rows


class ApiDocs(unittest.TestCase):
    def test_every_member_documented_with_its_signature(self):
        for short in INTERFACES:
            members, rows = xml_members(short), doc_rows(short)
            self.assertTrue(members, f'no members parsed for {short}')
            for (kind, name), sig in members.items():
                with self.subTest(interface=short, member=name):
                    self.assertIn(name, rows, f'docs/api.md does not describe {short}.{name}')
                    is_signal, doc_sig = rows[name]
                    self.assertEqual(is_signal, kind == 'signal', f'{short}.{name}: the row says signal or not wrongly')
                    self.assertEqual(doc_sig.replace(' ', ''), sig.replace(' ', ''),
                                     f'{short}.{name}: docs/api.md says `{doc_sig}`, the XML `{sig}`')
            extra = set(rows) - {name for _, name in members}
            self.assertFalse(extra, f'docs/api.md describes {short} members the XML lacks: {sorted(extra)}')


if __name__ == '__main__':
    unittest.main(testRunner=unittest.TextTestRunner(stream=sys.stdout, verbosity=2))

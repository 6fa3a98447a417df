"""Object paths of the service: sd_bus_path_encode() of one label, and the
paths of pools and volumes built from it (docs/api.md)."""

ROOT = '/org/qubes/Storage1'


def path_encode(s):
    """sd_bus_path_encode() of one label: every byte that is not [A-Za-z0-9]
    (and a digit in the first position) becomes _XX (lowercase hex); the
    empty string becomes '_'."""
    if s == '':
        return '_'
    out = []
    for i, b in enumerate(s.encode('utf-8')):
        c = chr(b)
        if (c.isascii() and c.isalpha()) or (i > 0 and c.isascii() and c.isdigit()):
            out.append(c)
        else:
            out.append('_%02x' % b)
    return ''.join(out)


def pool_path(pool):
    return f'{ROOT}/pool/{path_encode(pool)}'


def volume_path(pool, vid):
    return f'{pool_path(pool)}/volume/{path_encode(vid)}'

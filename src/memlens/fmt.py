"""Shared text formatting for every report: human units and aligned tables."""
import sys

_UNITS = ["B", "KiB", "MiB", "GiB", "TiB"]


def human_bytes(n, signed=False):
    """1536 -> '1.5 KiB'; exact below 1 KiB. signed=True adds '+' to growth."""
    sign = ""
    if n < 0:
        sign, n = "-", -n
    elif signed:
        sign = "+"
    if n < 1024:
        return "%s%d B" % (sign, n)
    value = float(n)
    for unit in _UNITS[1:]:
        value /= 1024.0
        if value < 1024 or unit == _UNITS[-1]:
            return "%s%.1f %s" % (sign, value, unit)
    raise AssertionError("unreachable")


def human_count(n, signed=False):
    return ("%+d" if signed else "%d") % n if abs(n) < 10000 else (
        ("{:+,}" if signed else "{:,}").format(n))


def human_seconds(s):
    if s < 1:
        return "%.0f ms" % (s * 1000)
    if s < 120:
        return "%.2f s" % s
    return "%dm%02ds" % (s // 60, s % 60)


def table(headers, rows, align=None, out=None):
    """Print rows as an aligned table. align: string of 'l'/'r' per column."""
    out = out or sys.stdout
    rows = [["" if c is None else str(c) for c in r] for r in rows]
    align = align or ("l" + "r" * (len(headers) - 1))
    widths = [len(h) for h in headers]
    for r in rows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))

    def line(cells):
        parts = []
        for i, c in enumerate(cells):
            last = i == len(cells) - 1
            if align[i] == "r":
                parts.append(c.rjust(widths[i]))
            else:
                parts.append(c if last else c.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    print(line(headers), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for r in rows:
        print(line(r), file=out)


def dump_json(obj, out=None):
    import json  # here: `memlens run` never needs it, and it costs start-up time
    out = out or sys.stdout
    json.dump(obj, out, indent=2, sort_keys=False)
    out.write("\n")


def short_path(path, width=60):
    """Shorten a long file path from the left for tables."""
    return path if len(path) <= width else "..." + path[-(width - 3):]

"""Shared text formatting for every report: human units, aligned tables,
terminal-safe text.

Every text report prints names, paths, argv and notes that come from a
capture or a program: any of them may hold control characters (ESC, BEL,
CR, C1 controls) or bytes that are not UTF-8. safe() turns them into visible
escapes, and table() applies it to every cell, so no report can move the
cursor, set the terminal title or clear the screen.
"""
import sys

_UNITS = ["B", "KiB", "MiB", "GiB", "TiB"]


def human_bytes(n, signed=False):
    """1536 -> '1.5 KiB'; exact below 1 KiB (an average such as 56.5 keeps
    one decimal). signed=True adds '+' to growth."""
    sign = ""
    if n < 0:
        sign, n = "-", -n
    elif signed:
        sign = "+"
    if n < 1024:
        if isinstance(n, float) and n != int(n):
            return "%s%.1f B" % (sign, n)
        return "%s%d B" % (sign, n)
    value = float(n)
    for unit in _UNITS[1:]:
        value /= 1024.0
        if value < 1024 or unit == _UNITS[-1]:
            return "%s%.1f %s" % (sign, value, unit)
    raise AssertionError("unreachable")


def human_count(n, signed=False):
    """9204 -> '9,204': thousands separators from 1,000 up."""
    return ("{:+,}" if signed else "{:,}").format(n)


# C0 controls, DEL, C1 controls, lone surrogates (bytes that were not UTF-8,
# decoded with surrogateescape), and the bidirectional overrides/isolates
# that reorder what a terminal shows (Trojan Source).
_UNSAFE = None


def _unsafe():
    global _UNSAFE
    if _UNSAFE is None:
        import re
        _UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e"
                             "\u2066-\u2069\ud800-\udfff]")
    return _UNSAFE


def _escape_char(m):
    c = ord(m.group())
    if 0xDC80 <= c <= 0xDCFF:  # surrogateescape: the original byte
        return "\\x%02x" % (c - 0xDC00)
    if c < 0x100:
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(m.group(), "\\x%02x" % c)
    return "\\u%04x" % c


def safe(text, keep=""):
    """`text` with every control character (and every undecodable byte) as a
    visible escape: ESC -> \\x1b, BEL -> \\x07, CR -> \\r, a non-UTF-8
    byte 0xff -> \\xff. Characters in `keep` (e.g. "\\n") pass unchanged.
    Non-strings are converted with str() first."""
    if not isinstance(text, str):
        text = str(text)
    if keep:
        return "".join(_unsafe().sub(_escape_char, part) if part not in keep else part
                       for part in _split_keep(text, keep))
    return _unsafe().sub(_escape_char, text)


def _split_keep(text, keep):
    out, start = [], 0
    for i, c in enumerate(text):
        if c in keep:
            out.append(text[start:i])
            out.append(c)
            start = i + 1
    out.append(text[start:])
    return out


class SafeStream:
    """A text stream whose writes go through safe(): the last guard of the
    report commands' stdout and stderr. `raw` is the stream underneath (the
    progress line writes its carriage returns there)."""

    def __init__(self, raw):
        self.raw = raw

    def write(self, text):
        return self.raw.write(safe(text, keep="\n"))

    def flush(self):
        self.raw.flush()

    def isatty(self):
        return self.raw.isatty()

    def fileno(self):
        return self.raw.fileno()

    def __getattr__(self, name):
        return getattr(self.raw, name)


def human_seconds(s):
    if s < 1:
        return "%.0f ms" % (s * 1000)
    if s < 120:
        return "%.2f s" % s
    return "%dm%02ds" % (s // 60, s % 60)


def table(headers, rows, align=None, out=None):
    """Print rows as an aligned table. align: string of 'l'/'r' per column."""
    out = out or sys.stdout
    headers = [safe(h) for h in headers]
    rows = [["" if c is None else safe(str(c).expandtabs(4)) for c in r] for r in rows]
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
    out.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def short_path(path, width=60):
    """Shorten a long file path from the left for tables."""
    return path if len(path) <= width else "..." + path[-(width - 3):]

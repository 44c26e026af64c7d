"""Escaping for every HTML and SVG page memlens writes.

Every string in a page comes from a capture, and a capture holds what the
profiled program chose: function, class, file, module and thread names,
argv, marks, notes. A page must show them as text, whatever they hold
(``<script>``, quotes, ``</svg>``, ``<!--``, control characters, bytes that
are not UTF-8), and never run them. So a writer never puts a string into a
page itself: it escapes it for its context, and fills its template with
fill(), which takes only escaped values.

    escape.text(s)         element content, in HTML and in SVG/XML
    escape.attr(s)         an attribute value between double quotes
    escape.script_json(v)  a JSON value inlined in <script> (any data)
    escape.fill(template, NAME=escaped, ...)   @@NAME@@ markers, one pass

Each returns a Markup (a str that fill() accepts). Before any context
escaping, printable() makes a string showable: C0/C1 control characters
and DEL become \\xNN (XML 1.0 cannot even hold most of them as character
references, so they would make an SVG unreadable), and the bytes of a name
that was not valid UTF-8 (lone surrogates, as os.fsdecode leaves them)
become \\xNN too.
"""
import json
import re

__all__ = ["Markup", "printable", "text", "attr", "script_json", "fill"]


class Markup(str):
    """A string already escaped for the context it was made for."""
    __slots__ = ()


# C0 controls but tab and newline, DEL, C1 controls, lone surrogates, and the
# two XML non-characters
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _show(m):
    c = ord(m.group())
    if 0xDC80 <= c <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
        return "\\x%02x" % (c - 0xDC00)
    return "\\x%02x" % c if c <= 0xFF else "\\u%04x" % c


def printable(s):
    """s with control characters and undecodable bytes shown as \\xNN."""
    return _UNPRINTABLE.sub(_show, str(s))


def text(s):
    """s as element content (HTML or XML): & < > escaped."""
    return Markup(printable(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def attr(s):
    """s as an attribute value written between double (or single) quotes."""
    return Markup(text(s).replace('"', "&quot;").replace("'", "&#39;"))


def _printable_tree(v):
    if isinstance(v, str):
        return printable(v)
    if isinstance(v, dict):
        return {printable(k) if isinstance(k, str) else k: _printable_tree(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_printable_tree(x) for x in v]
    return v


_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                  "\u2028": "\\u2028", "\u2029": "\\u2029"}


def script_json(value):
    """value as a JSON literal that can stand inside <script>...</script>.

    No <, > or & is left (so no </script>, <!-- or <script> can end or
    change the script element), nor U+2028/U+2029 (line terminators in
    older JavaScript); a string can only end at its own closing quote.
    """
    blob = json.dumps(_printable_tree(value), ensure_ascii=False, separators=(",", ":"))
    return Markup(re.sub("[<>&\u2028\u2029]", lambda m: _SCRIPT_UNSAFE[m.group()], blob))


_MARKER = re.compile(r"@@([A-Z_]+)@@")


def fill(template, **values):
    """template with each @@NAME@@ replaced by values[NAME], in one pass.

    Every value must be a Markup (escaped for where its marker stands);
    a replaced value is never scanned again, so data cannot smuggle a
    marker in. A marker without a value, or a value without a marker,
    is a bug: ValueError.
    """
    for name, v in values.items():
        if not isinstance(v, Markup):
            raise TypeError("fill(%s=...): escape the value for its context first" % name)
    used = set()

    def sub(m):
        name = m.group(1)
        if name not in values:
            raise ValueError("template marker @@%s@@ has no value" % name)
        used.add(name)
        return values[name]

    out = _MARKER.sub(sub, template)
    if used != set(values):
        raise ValueError("no marker for %s" % ", ".join(sorted(set(values) - used)))
    return out

"""Brendan Gregg's folded stacks: `outer;...;inner;[type] value`, one line per
(stack, type), the view's bytes as the value (flamegraph.pl, inferno).
A frame's text cannot hold ';' or a line break there: they become ':' and ' '."""
from memlens.exports import frame_label, type_label

VIEWS = None


def _clean(text):
    return "".join(" " if ch in "\r\n" or ord(ch) < 32 else ":" if ch == ";" else ch
                   for ch in text)


def render(tree, view, threads, meta):
    sums = {}
    for path, tname, _th, b, c in tree.stacks(view, threads):
        key = tuple(_clean(frame_label(f)) for f in path) + (_clean(type_label(tname)),)
        sums[key] = sums.get(key, 0) + b
    lines = ["%s %d\n" % (";".join(k), v) for k, v in sorted(sums.items(), key=lambda kv: -kv[1])
             if v]
    return "".join(lines).encode("utf-8", "surrogateescape")

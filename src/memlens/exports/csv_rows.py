"""CSV, one row per (stack, type, thread): view, bytes, count, type, thread,
depth, innermost function/file/line and the whole stack (outermost first,
frames joined by ' <- ' reversed: `outer > ... > inner`). A field that a
spreadsheet would run as a formula (starting with = + - @ or a tab) is
prefixed with a single quote."""
import csv
import io

from memlens.exports import frame_label

VIEWS = None
HEADER = ["view", "bytes", "count", "type", "thread_id", "thread", "depth", "function", "file",
          "line", "stack"]


def _cell(v):
    if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + v
    return v


def render(tree, view, threads, meta):
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(HEADER)
    rows = sorted(tree.stacks(view, threads), key=lambda r: (-r[3], -r[4]))
    for path, tname, th, b, c in rows:
        func, file, line = path[-1] if path else ("", "", 0)
        w.writerow([_cell(x) for x in (
            view, b, c, tname, tree.thread_ids[th], tree.thread_names[th] or "", len(path),
            func, file, line, " > ".join(frame_label(f) for f in path))])
    return out.getvalue().encode("utf-8", "surrogateescape")

"""Reports over a capture file: summary, types, leaks.

All reading and aggregation is done in C (memlens._engine.read_*); this
module turns the results into JSON-shaped data and prints them as text.
docs/REPORTS.md defines every number.

    data = reports.summary("prog.mlens", top=10)   # dict, as `memlens summary --json`
    reports.print_summary(data, "prog.mlens")

A file that cannot be used (missing, not a capture, corrupt, newer format)
raises memlens.errors.UsageError with one line naming the file.
"""
import json
import os
import re
import sys

from memlens import fmt
from memlens import capfile
from memlens.errors import UsageError

TRUNCATED_WARNING = "capture ends early (the process was killed?); reporting what it holds"
NO_STACK = "<no Python stack>"
UNTYPED = "<untyped>"
NOTE_WARNING, NOTE_TRACER_LOST = 1, 2

TYPE_SORTS = {
    "allocs": "allocs",
    "alive": "alive",
    "peak": "peak_alive",
    "bytes": "allocated_bytes",
}


def _engine():
    from memlens import _engine
    return _engine


def _call(fn, path, *args, **kwargs):
    """Run an engine reader; its failures become one-line UsageErrors."""
    path = os.fspath(path)
    raw = capfile.raw_path(path)
    try:
        return fn(raw, *args, **kwargs)
    except OSError as exc:
        raise UsageError(capfile.display(exc.strerror or str(exc), raw, path)) from None
    except (ValueError, TypeError) as exc:
        raise UsageError(capfile.display(str(exc), raw, path)) from None


class _Progress:
    """'reading capture: 42%' on stderr, only when stderr is a terminal."""

    def __init__(self, passes, out=None):
        self.out = out or sys.stderr
        self.passes = passes
        self.shown = False

    def __call__(self, pass_, pos, size):
        if size:
            done = ((pass_ - 1) + pos / size) / self.passes
            self.out.write("\rreading capture: %3d%%" % min(99, int(done * 100)))
            self.out.flush()
            self.shown = True

    def close(self):
        if self.shown:
            self.out.write("\r" + " " * 24 + "\r")
            self.out.flush()


def _read(name, path, progress, passes, *args):
    show = None
    if progress is None:
        stream = sys.stderr
        if hasattr(stream, "isatty") and stream.isatty():
            show = _Progress(passes, stream)
    elif progress:
        show = progress
    try:
        return _call(getattr(_engine(), name), path, *args, progress=show)
    finally:
        if isinstance(show, _Progress):
            show.close()


def meta(path):
    """The header metadata (python, argv, pid, start time, options) as a dict."""
    raw = _call(_engine().read_meta, path)["json"]
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _warnings(totals):
    """One-line warnings from the capture's NOTE records and trailer."""
    out = []
    for kind, text in totals["notes"]:
        if kind == NOTE_TRACER_LOST:
            out.append("the object-creation tracer was replaced during the run; free-list "
                       "reuse was not fully counted" + (" (%s)" % text if text else ""))
        else:
            out.append(text)
    if totals["notes_dropped"]:
        out.append("%d more distinct notes in the capture" % totals["notes_dropped"])
    trailer = totals["trailer"]
    if trailer and trailer["dropped"]:
        out.append("%d events were dropped while recording (out of memory)" % trailer["dropped"])
    return out


def _site(row):
    return {"function": row["function"], "file": row["file"], "line": row["line"],
            "bytes": row["bytes"], "count": row["count"], "stack": row["stack"]}


def summary(path, top=10, progress=None):
    """Peak, totals and the top sites of a capture, as `memlens summary --json`.

    progress: None = on stderr when it is a terminal; False = never; or a
    callable(pass, pos, size).
    """
    raw = _read("read_summary", path, progress, 1, top)
    info = meta(path)
    return {
        "peak_bytes": raw["peak_bytes"],
        "peak_time_s": raw["peak_time_us"] / 1e6,
        "allocated_bytes": raw["allocated_bytes"],
        "allocations": raw["allocations"],
        "frees": raw["frees"],
        "end_bytes": raw["end_bytes"],
        "end_count": raw["end_count"],
        "duration_s": raw["duration_us"] / 1e6,
        "top_peak": [_site(r) for r in raw["top_peak"]],
        "top_allocated": [_site(r) for r in raw["top_allocated"]],
        "top_end": [_site(r) for r in raw["top_end"]],
        "python": info.get("python"),
        "argv": info.get("argv"),
        "truncated": raw["truncated"],
        "warnings": _warnings(raw),
    }


def types(path, sort="allocs", top=0, progress=None):
    """Per-type counts (the COUNT_ALLOCS table): {"types": [...], "truncated", "warnings"}.

    Rows are sorted by `sort` (allocs, alive, peak, bytes), biggest first;
    top = 0 keeps them all.
    """
    if sort not in TYPE_SORTS:
        raise UsageError("unknown sort %r (choose from %s)" % (sort, ", ".join(TYPE_SORTS)))
    raw = _read("read_types", path, progress, 1)
    key = TYPE_SORTS[sort]
    rows = sorted(raw["types"], key=lambda r: (-r[key], -r["allocs"], r["type"]))
    if top:
        rows = rows[:top]
    out = [{"type": r["type"], "allocs": r["allocs"], "frees": r["frees"],
            "peak_alive": r["peak_alive"], "alive": r["alive"], "alive_bytes": r["alive_bytes"],
            "allocated_bytes": r["allocated_bytes"]} for r in rows]
    return {"types": out, "ntypes": len(raw["types"]), "allocations": raw["allocations"],
            "reuses": raw["reuses"], "truncated": raw["truncated"], "warnings": _warnings(raw)}


def leaks(path, top=0, progress=None):
    """Blocks still allocated at the end, grouped by (site, type), biggest first."""
    raw = _read("read_leaks", path, progress, 1, top)
    rows = [{"function": r["function"], "file": r["file"], "line": r["line"], "type": r["type"],
             "bytes": r["bytes"], "count": r["count"], "stack": r["stack"]} for r in raw["leaks"]]
    return {"leaks": rows, "groups": raw["groups"], "end_bytes": raw["end_bytes"],
            "end_count": raw["end_count"], "truncated": raw["truncated"],
            "warnings": _warnings(raw)}


# ---- text output ----

_STDLIB = re.compile(r"^.*/lib/(python3\.\d+)/")
_SITE = re.compile(r"^.*/(site-packages|dist-packages)/")


def display_path(path, width=50):
    """A short form of a source path for tables: relative to the current
    directory, site-packages/... for third-party code, python3.X/... for
    the standard library, ~ for the home directory."""
    if not path:
        return "?"
    if path.startswith("<"):
        return path
    shown = path
    try:
        cwd = os.getcwd()
    except OSError:
        cwd = None
    m = _SITE.match(path)
    if m:
        shown = m.group(1) + "/" + path[m.end():]
    elif _STDLIB.match(path):
        m = _STDLIB.match(path)
        shown = m.group(1) + "/" + path[m.end():]
    elif cwd and os.path.isabs(path) and path.startswith(cwd.rstrip("/") + "/"):
        shown = os.path.relpath(path, cwd)
    else:
        home = os.path.expanduser("~")
        if home not in ("/", "~") and path.startswith(home.rstrip("/") + "/"):
            shown = "~" + path[len(home.rstrip("/")):]
    return fmt.short_path(shown, width)


def location(row, width=50):
    if row["function"] == NO_STACK and not row["file"]:
        return "-"
    where = display_path(row["file"], width)
    return "%s:%d" % (where, row["line"]) if row["line"] else where


def _pct(part, whole):
    return "%.1f%%" % (100.0 * part / whole) if whole else "-"


def _site_table(rows, whole, out):
    fmt.table(["bytes", "blocks", "share", "function", "location"],
              [[fmt.human_bytes(r["bytes"]), fmt.human_count(r["count"]), _pct(r["bytes"], whole),
                r["function"], location(r)] for r in rows],
              align="rrrll", out=out)


def print_warnings(data, file=None):
    out = file or sys.stderr
    if data.get("truncated"):
        out.write("warning: %s\n" % TRUNCATED_WARNING)
    for w in data.get("warnings", ()):
        out.write("warning: %s\n" % w)


def _program(data):
    argv = data.get("argv")
    if isinstance(argv, list) and argv:
        return " ".join(str(a) for a in argv)
    return None


def print_summary(data, path, file=None):
    out = file or sys.stdout
    head = "memlens summary of %s" % path
    extras = [x for x in ("python %s" % data["python"] if data.get("python") else None,
                          _program(data)) if x]
    if extras:
        head += " (%s)" % ", ".join(extras)
    print(head, file=out)
    facts = [
        ("duration", fmt.human_seconds(data["duration_s"])),
        ("peak heap", "%s at %s" % (fmt.human_bytes(data["peak_bytes"]),
                                    fmt.human_seconds(data["peak_time_s"]))),
        ("total allocated", "%s in %s allocations" % (fmt.human_bytes(data["allocated_bytes"]),
                                                     fmt.human_count(data["allocations"]))),
        ("heap at the end", "%s in %s blocks" % (fmt.human_bytes(data["end_bytes"]),
                                                fmt.human_count(data["end_count"]))),
    ]
    width = max(len(k) for k, _ in facts)
    for k, v in facts:
        print("  %s  %s" % (k.ljust(width), v), file=out)
    sections = [
        ("Sites holding the most memory at the peak", data["top_peak"], data["peak_bytes"]),
        ("Sites that allocated the most in total", data["top_allocated"], data["allocated_bytes"]),
        ("Sites still holding memory at the end", data["top_end"], data["end_bytes"]),
    ]
    for title, rows, whole in sections:
        print(file=out)
        print("%s (%s):" % (title, fmt.human_bytes(whole)), file=out)
        if rows:
            _site_table(rows, whole, out)
        else:
            print("  (none)", file=out)


def print_short_summary(data, path, file=None):
    """A few lines for the end of `memlens run`: peak, totals, top sites."""
    out = file or sys.stderr
    out.write("memlens: peak heap %s at %s; allocated %s in %s allocations; %s still allocated "
              "at the end\n" % (fmt.human_bytes(data["peak_bytes"]),
                                fmt.human_seconds(data["peak_time_s"]),
                                fmt.human_bytes(data["allocated_bytes"]),
                                fmt.human_count(data["allocations"]),
                                fmt.human_bytes(data["end_bytes"])))
    if data["top_peak"]:
        out.write("memlens: at the peak:\n")
        for r in data["top_peak"][:3]:
            out.write("  %10s  %s  %s\n" % (fmt.human_bytes(r["bytes"]), location(r, 40),
                                            r["function"]))
    if data.get("truncated"):
        out.write("memlens: warning: %s\n" % TRUNCATED_WARNING)
    out.write("memlens: capture written to %s (see: memlens summary %s)\n" % (path, path))


def print_types(data, sort, file=None):
    out = file or sys.stdout
    rows = data["types"]
    print("Objects by type, sorted by %s (%d of %d types; %s allocations):" % (
        {"allocs": "allocations", "alive": "alive at the end", "peak": "peak alive",
         "bytes": "bytes allocated"}[sort], len(rows), data["ntypes"],
        fmt.human_count(data["allocations"])), file=out)
    fmt.table(["type", "allocs", "frees", "peak alive", "alive", "alive bytes", "allocated"],
              [[r["type"], fmt.human_count(r["allocs"]), fmt.human_count(r["frees"]),
                fmt.human_count(r["peak_alive"]), fmt.human_count(r["alive"]),
                fmt.human_bytes(r["alive_bytes"]), fmt.human_bytes(r["allocated_bytes"])]
               for r in rows], align="lrrrrrr", out=out)
    if data["reuses"]:
        print("(%s objects were created in reused free-list blocks: each counts as one alloc "
              "and one free of its type)" % fmt.human_count(data["reuses"]), file=out)


def print_leaks(data, file=None):
    out = file or sys.stdout
    rows = data["leaks"]
    print("Still allocated when the program ended: %s in %s blocks (%d groups by site and type%s)" % (
        fmt.human_bytes(data["end_bytes"]), fmt.human_count(data["end_count"]), data["groups"],
        "; top %d shown" % len(rows) if len(rows) < data["groups"] else ""), file=out)
    if not rows:
        return
    fmt.table(["bytes", "blocks", "type", "function", "location"],
              [[fmt.human_bytes(r["bytes"]), fmt.human_count(r["count"]), r["type"],
                r["function"], location(r)] for r in rows], align="rrlll", out=out)

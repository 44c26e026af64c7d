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
    show = kwargs.pop("unzip", None) or kwargs.get("progress")
    unzip = show.decompressing if isinstance(show, _Progress) else None
    raw = capfile.raw_path(path, progress=unzip)
    try:
        return fn(raw, *args, **kwargs)
    except OSError as exc:
        raise UsageError(capfile.display(exc.strerror or str(exc), raw, path)) from None
    except (ValueError, TypeError) as exc:
        raise UsageError(capfile.display(str(exc), raw, path)) from None


class _Progress:
    """'decompressing capture: 42%', then 'reading capture: 42%', on stderr,
    only when stderr is a terminal; erased when the report is ready."""

    def __init__(self, passes, out=None):
        self.out = out or sys.stderr
        self.passes = passes
        self.shown = False

    def _show(self, what, done):
        self.out.write("\r%s: %3d%%" % (what, min(99, int(done * 100))))
        self.out.flush()
        self.shown = True

    def decompressing(self, pos, size):
        if size:
            self._show("decompressing capture", pos / size)

    def __call__(self, pass_, pos, size):
        if size:
            self._show("reading capture", ((pass_ - 1) + pos / size) / self.passes)

    def close(self):
        if self.shown:
            self.out.write("\r" + " " * 28 + "\r")
            self.out.flush()


def _terminal_progress(passes):
    """A _Progress on stderr when stderr is a terminal, else None."""
    stream = getattr(sys.stderr, "raw", sys.stderr)  # under fmt.SafeStream
    if hasattr(stream, "isatty") and stream.isatty():
        return _Progress(passes, stream)
    return None


def _read(name, path, progress, passes, *args, **kw):
    """Run the engine's reader `name` (passes: how many times it reads the
    file, for the percentage). progress: None = on stderr when it is a
    terminal; False = never; or a callable(pass, pos, size)."""
    show = None
    if progress is None:
        show = _terminal_progress(passes)
    elif progress:
        show = progress
    try:
        return _call(getattr(_engine(), name), path, *args, progress=show, **kw)
    finally:
        if isinstance(show, _Progress):
            show.close()


def meta(path):
    """The header metadata (python, argv, pid, start time, options) as a dict."""
    show = _terminal_progress(1)  # the first read of a compressed capture decompresses it
    try:
        raw = _call(_engine().read_meta, path, unzip=show)["json"]
    finally:
        if show:
            show.close()
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
        out.append("%s more distinct notes in the capture" % fmt.human_count(totals["notes_dropped"]))
    trailer = totals["trailer"]
    if trailer and trailer["dropped"]:
        out.append("%s events were dropped while recording (out of memory)"
                   % fmt.human_count(trailer["dropped"]))
    return out


def _site(row):
    return {"function": row["function"], "file": row["file"], "line": row["line"],
            "bytes": row["bytes"], "count": row["count"], "stack": row["stack"]}


def summary(path, top=10, progress=None, rss_points=0):
    """Peak, totals and the top sites of a capture, as `memlens summary --json`.

    progress: None = on stderr when it is a terminal; False = never; or a
    callable(pass, pos, size). rss_points > 0: "rss_series" is also
    rssparts.from_capture(path, max_points=rss_points)'s result, read in the
    same pass over the capture.
    """
    raw = _read("read_summary", path, progress, 1, top, rss_points=rss_points)
    info = meta(path)
    out = {
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
        # the collector (docs/GC.md); None when the capture has no GC records
        "gc": None if raw["gc"] is None else {
            "collections": raw["gc"]["collections"], "pause_s": raw["gc"]["pause_us"] / 1e6,
            "freed_bytes": raw["gc"]["freed_bytes"], "freed_blocks": raw["gc"]["freed_blocks"]},
        # gcexit: of the heap at the end, what a full collection would have
        # freed ({bytes, blocks}); None without the record (docs/GC.md)
        "garbage_at_exit": raw.get("garbage_at_exit"),
        "python": info.get("python"),
        "argv": info.get("argv"),
        "truncated": raw["truncated"],
        "warnings": _warnings(raw),
    }
    if rss_points > 0:
        from memlens import rssparts
        out["rss_series"] = rssparts.from_raw(raw["rss"])
    return out


# CPython's free lists: the most dead objects of a type one interpreter parks
# for reuse (Py*_MAXFREELIST and friends in 3.10-3.13's sources; a tuple list
# per length 1-19 or 1-20, 2,000 each; 3.10's frames add one zombie frame per
# code object, no bound). Recorded without `memlens run --exact`, an alive
# count of these types can be off by at most that many: dead objects parked
# on a list still count, and objects made in blocks parked before the
# capture started are not seen. With --exact the lists are off: exact.
_FREE_LIST_BOUNDS = {
    "float": 100, "list": 80, "dict": 80, "<dict keys>": 80, "slice": 1,
    "_contextvars.Context": 255, "async_generator_wrapped_value": 80,
    "async_generator_asend": 80,
}
_FREE_LIST_BOUNDS_BY_VERSION = {
    (3, 10): dict(_FREE_LIST_BOUNDS, tuple=19 * 2000, frame=None),
    (3, 11): dict(_FREE_LIST_BOUNDS, tuple=20 * 2000),
    (3, 12): dict(_FREE_LIST_BOUNDS, tuple=20 * 2000),
    (3, 13): dict(_FREE_LIST_BOUNDS, tuple=20 * 2000),
}


def free_list_bounds(info):
    """{type name: most an alive count can be off by (None: no bound)} for a
    capture with header metadata `info`; {} when it was recorded --exact."""
    options = info.get("options") if isinstance(info.get("options"), dict) else {}
    if options.get("exact"):
        return {}
    try:
        version = tuple(int(x) for x in str(info.get("python", "")).split(".")[:2])
    except ValueError:
        version = ()
    return _FREE_LIST_BOUNDS_BY_VERSION.get(version, {})


# a dict's keys table named by its owner at the heap at exit ("dict (keys)",
# "dict (keys) of Lesson"): a <dict keys> block, parked on the same free list
_OWNED_KEYS = re.compile(r"\S.* \(keys\)(?: of .+)?$")


def _with_bounds(rows, info):
    """Each row gets `alive_max_error`: how far its count can be off (0:
    exact, null: no bound), by free_list_bounds."""
    bounds = free_list_bounds(info)
    for r in rows:
        name = "<dict keys>" if _OWNED_KEYS.match(r["type"]) else r["type"]
        r["alive_max_error"] = bounds.get(name, 0)
    return rows


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
    _with_bounds(out, _meta_of(raw) or meta(path))
    return {"types": out, "ntypes": len(raw["types"]), "allocations": raw["allocations"],
            "reuses": raw["reuses"], "truncated": raw["truncated"], "warnings": _warnings(raw)}


def leaks(path, top=0, progress=None):
    """Blocks still allocated at the end, grouped by (site, type), biggest first."""
    raw = _read("read_leaks", path, progress, 1, top)
    rows = [{"function": r["function"], "file": r["file"], "line": r["line"], "type": r["type"],
             "bytes": r["bytes"], "count": r["count"], "stack": r["stack"]} for r in raw["leaks"]]
    if raw.get("heap_at_exit"):  # rows carry their holder only with a heap at exit
        for row, r in zip(rows, raw["leaks"]):
            row["holder"] = r.get("holder")
            row["holder_retained_bytes"] = row["holder"]["retained"] if row["holder"] else None
    if raw.get("garbage_at_exit") is not None:  # gcexit: each group's garbage at exit
        for row, r in zip(rows, raw["leaks"]):
            row["garbage_bytes"], row["garbage_blocks"] = r["garbage_bytes"], r["garbage_blocks"]
    _with_bounds(rows, _meta_of(raw) or meta(path))
    return {"leaks": rows, "groups": raw["groups"], "end_bytes": raw["end_bytes"],
            "end_count": raw["end_count"], "truncated": raw["truncated"],
            "garbage_at_exit": raw.get("garbage_at_exit"),  # gcexit
            "heap_at_exit": raw.get("heap_at_exit"), "owners_at_exit": raw.get("owners_at_exit"),
            "warnings": _warnings(raw)}


def holder_text(holder):
    """'module __main__ .KEEP (list) [i]': a holder's path as one line."""
    return " ".join(holder["path"]) if holder else ""


_timelines = {}  # (path, size, mtime_ns) -> the last timeline read, for plot --json


def timeline(path, progress=None):
    """The C timeline of a capture (series, marks, exact peak and its top
    site; see memlens._engine.timeline), with the same errors and progress
    as every report. Read once per process and file version."""
    try:
        st = os.stat(path)
        key = (os.path.abspath(os.fsdecode(path)), st.st_size, st.st_mtime_ns)
    except OSError:
        key = None
    if key is not None and key in _timelines:
        return _timelines[key]
    tl = _read("timeline", path, progress, 2)
    if key is not None:
        _timelines.clear()
        _timelines[key] = tl
    return tl


def timeline_json(tl, path):
    """`memlens timeline --json` and `memlens plot --json`: the series with
    the field names of the CSV, the @memlens.profile brackets, the exact peak."""
    from memlens.plot import brackets, gc_marks
    peak = tl["peak"]
    site = None
    if peak["function"]:
        site = {"function": peak["function"], "file": peak["file"], "line": peak["line"],
                "bytes": peak["site_bytes"], "count": peak["site_blocks"]}
    return envelope(
        capture_info(path, tl["truncated"], info=_meta_of(tl)),
        duration_s=tl["end_us"] / 1e6,
        points=[{"time_s": t / 1e6, "rss_bytes": rss, "heap_bytes": heap, "heap_max_bytes": top}
                for (t, rss, heap), top in zip(tl["points"], tl["heap_max"])],
        brackets=[{"label": label, "start_s": a / 1e6, "end_s": b / 1e6}
                  for label, a, b in brackets(tl)],
        peak={"bytes": peak["heap"], "count": peak["blocks"], "time_s": peak["time_us"] / 1e6,
              "site": site},
        # gc: the collections in time order (docs/GC.md; at most 65,536,
        # collections_dropped says how many more)
        collections=[{"time_s": t, "pause_s": p, "generation": g, "collected": c,
                      "uncollectable": u, "complete": done}
                     for t, p, g, c, u, done in gc_marks(tl)],
        collections_dropped=tl.get("gcs_dropped", 0))


def _meta_of(result):
    """The header metadata an engine result carries as JSON text."""
    try:
        data = json.loads(result.get("meta") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


# ---- JSON: one envelope for every report ----


def capture_info(path, truncated=False, warnings=(), info=None):
    """The `capture` object of a report's JSON: where the data come from and
    whether they are complete (docs/REPORTS.md, "JSON")."""
    if info is None:
        try:
            info = meta(path)
        except UsageError:
            info = {}
    argv = info.get("argv")
    return {"path": os.fsdecode(path), "python": info.get("python"),
            "argv": argv if isinstance(argv, list) else None,
            "truncated": bool(truncated), "warnings": list(warnings)}


def envelope(capture=None, program=None, **fields):
    """The one JSON object every report prints: {"memlens": version,
    "capture": {path, python, argv, truncated, warnings} or null, ["program":
    {python, argv} for the reports of a program run in-process,] then the
    report's own keys in order."""
    from memlens import __version__
    doc = {"memlens": __version__, "capture": capture}
    if program is not None:
        doc["program"] = program
    doc.update(fields)
    return doc


def program_info(argv):
    """The `program` object of `memlens heap/profile --json`."""
    return {"python": sys.version.split()[0], "argv": list(argv)}


def profile_json(funcs, argv, source_line):
    """`memlens profile --json` (and @memlens.profile's JSON): the line rows
    with the field names of `memlens lines --json`, plus occurrences."""
    return envelope(
        None, program=program_info(argv),
        functions=[{"function": f["function"], "file": f["file"], "firstlineno": f["firstlineno"],
                    "calls": f["calls"], "net_bytes": f["net"], "allocated_bytes": f["allocated"],
                    "allocations": f["allocations"]} for f in funcs],
        lines=[{"function": f["function"], "file": f["file"], "line": r["line"],
                "heap_bytes": r["heap"], "increment_bytes": r["increment"],
                "allocated_bytes": r["allocated"], "allocations": r["allocations"],
                "occurrences": r["occurrences"], "source": source_line(f["file"], r["line"])}
               for f in funcs for r in f["rows"]])


def report_json(data, path, keys):
    """envelope() for a summary/types/leaks dict: its capture facts move
    into `capture`, the rest (`keys`, in order) stays at the top."""
    return envelope(capture_info(path, data.get("truncated"), data.get("warnings", ()),
                                 info={"python": data.get("python"), "argv": data.get("argv")}
                                 if "python" in data else None),
                    **{k: data[k] for k in keys})


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
    where = fmt.safe(display_path(row["file"], width))
    return "%s:%d" % (where, row["line"]) if row["line"] else where


def _pct(part, whole):
    return "%.1f%%" % (100.0 * part / whole) if whole else "-"


def _site_table(rows, whole, out, stacks=False):
    fmt.table(["#" if stacks else "bytes"] + (["bytes"] if stacks else []) +
              ["blocks", "share", "function", "location"],
              [([str(i)] if stacks else []) +
               [fmt.human_bytes(r["bytes"]), fmt.human_count(r["count"]), _pct(r["bytes"], whole),
                r["function"], location(r)] for i, r in enumerate(rows, 1)],
              align="rrrrll" if stacks else "rrrll", out=out)
    if stacks:
        print_stacks(rows, out)


def print_stacks(rows, out):
    """--stacks: the full stack of each row (its representative stack: the one
    that contributes the most bytes to the site), innermost frame first."""
    for i, r in enumerate(rows, 1):
        print("  #%d stack:" % i, file=out)
        if not r.get("stack"):
            print("      (no Python stack)", file=out)
        for f in r.get("stack") or ():
            print("      %s  %s" % (fmt.safe(f["function"]), location(f, width=70)), file=out)


def print_warnings(data, file=None):
    out = file or sys.stderr
    if data.get("truncated"):
        out.write("warning: %s\n" % TRUNCATED_WARNING)
    for w in data.get("warnings", ()):
        out.write("warning: %s\n" % fmt.safe(w))


def _program(data):
    argv = data.get("argv")
    if isinstance(argv, list) and argv:
        return " ".join(str(a) for a in argv)
    return None


def print_summary(data, path, file=None, stacks=False):
    out = file or sys.stdout
    head = "memlens summary of %s" % path
    extras = [x for x in ("python %s" % data["python"] if data.get("python") else None,
                          _program(data)) if x]
    if extras:
        head += " (%s)" % ", ".join(extras)
    print(fmt.safe(head), file=out)
    facts = [
        ("duration", fmt.human_seconds(data["duration_s"])),
        ("peak heap", "%s at %s" % (fmt.human_bytes(data["peak_bytes"]),
                                    fmt.human_seconds(data["peak_time_s"]))),
        ("total allocated", "%s in %s allocations" % (fmt.human_bytes(data["allocated_bytes"]),
                                                     fmt.human_count(data["allocations"]))),
        ("heap at the end", "%s in %s blocks" % (fmt.human_bytes(data["end_bytes"]),
                                                fmt.human_count(data["end_count"]))
         + _garbage_at_exit_text(data.get("garbage_at_exit"))),
    ]
    gc = data.get("gc")
    if gc:
        facts.append(("garbage collector", "%s collections, %s paused, %s freed by it (memlens gc)"
                      % (fmt.human_count(gc["collections"]), fmt.human_seconds(gc["pause_s"]),
                         fmt.human_bytes(gc["freed_bytes"]))))
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
            _site_table(rows, whole, out, stacks)
        else:
            print("  (none)", file=out)


def _garbage_at_exit_text(g):
    """gcexit: the end of the summary's "heap at the end" line."""
    if not g:
        return ""
    return ", of which %s in %s blocks unreachable garbage at exit (memlens leaks)" % (
        fmt.human_bytes(g["bytes"]), fmt.human_count(g["blocks"]))


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
                                            fmt.safe(r["function"])))
    if data.get("truncated"):
        out.write("memlens: warning: %s\n" % TRUNCATED_WARNING)
    out.write("memlens: capture written to %s (see: memlens summary %s)\n"
              % (fmt.safe(path), fmt.safe(path)))


def print_types(data, sort, file=None):
    out = file or sys.stdout
    rows = data["types"]
    print("Objects by type, sorted by %s (%s of %s types; %s allocations):" % (
        {"allocs": "allocations", "alive": "alive at the end", "peak": "peak alive",
         "bytes": "bytes allocated"}[sort], fmt.human_count(len(rows)),
        fmt.human_count(data["ntypes"]),
        fmt.human_count(data["allocations"])), file=out)
    fmt.table(["type", "allocs", "frees", "peak alive", "alive", "alive bytes", "allocated"],
              [[r["type"], fmt.human_count(r["allocs"]), fmt.human_count(r["frees"]),
                fmt.human_count(r["peak_alive"]), fmt.human_count(r["alive"]),
                fmt.human_bytes(r["alive_bytes"]), fmt.human_bytes(r["allocated_bytes"])]
               for r in rows], align="lrrrrrr", out=out)
    if data["reuses"]:
        print("(%s objects were created in reused free-list blocks: each counts as one alloc "
              "and one free of its type)" % fmt.human_count(data["reuses"]), file=out)
    _print_bounds(rows, "alive counts", out)


def _print_bounds(rows, what, out):
    """The footnote for rows whose count CPython's free lists can blur."""
    blurred = [r for r in rows if r.get("alive_max_error", 0) != 0]
    if not blurred:
        return
    seen = {}
    for r in blurred:
        bound = r["alive_max_error"]
        seen[r["type"]] = "no bound" if bound is None else "at most " + fmt.human_count(bound)
    print("(%s can be off by what CPython's free lists hold: %s; `memlens run --exact` "
          "records them exactly)" % (what, ", ".join("%s %s" % (fmt.safe(t), b)
                                                     for t, b in seen.items())), file=out)


def print_leaks(data, file=None, stacks=False):
    out = file or sys.stdout
    rows = data["leaks"]
    print("Still allocated when the program ended: %s in %s blocks (%s groups by site and type%s)" % (
        fmt.human_bytes(data["end_bytes"]), fmt.human_count(data["end_count"]),
        fmt.human_count(data["groups"]),
        "; top %s shown" % fmt.human_count(len(rows)) if len(rows) < data["groups"] else ""),
        file=out)
    if not rows:
        return
    if data.get("heap_at_exit"):
        fmt.table(["bytes", "blocks", "type", "function", "location", "held by"],
                  [[fmt.human_bytes(r["bytes"]), fmt.human_count(r["count"]), r["type"],
                    r["function"], location(r), _held_by(r)] for r in rows], align="rrllll", out=out)
    else:
        fmt.table(["bytes", "blocks", "type", "function", "location"],
                  [[fmt.human_bytes(r["bytes"]), fmt.human_count(r["count"]), r["type"],
                    r["function"], location(r)] for r in rows], align="rrlll", out=out)
    if stacks:
        print_stacks(rows, out)
    _print_bounds(rows, "block counts", out)


def _held_by(row):
    """The holder column: its path, the share of the group it reaches when
    not all, and its retained size when measured."""
    h = row.get("holder")
    if not h:
        return "-"
    text = holder_text(h)
    if h["count"] < row["count"]:
        text += " (%s of %s blocks)" % (fmt.human_count(h["count"]), fmt.human_count(row["count"]))
    if h.get("retained"):
        text += " (retains %s)" % fmt.human_bytes(h["retained"])
    return text

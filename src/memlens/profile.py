"""@memlens.profile: line-by-line memory of chosen functions, printed at exit.

As memory_profiler's @profile, but the figures are the traced heap, exact to
the byte, and they add up: the increments of a function's lines sum to its
net growth. Only decorated functions pay for line events:

- 3.12+: sys.monitoring LINE events, enabled locally on the decorated code
  objects only (set_local_events); the callback is the C meter itself.
- 3.10/3.11: a C-level trace function (PyEval_SetTrace) installed when a
  decorated function is entered and removed when it returns.

The bookkeeping is C (capture/linemeter.h); it reads the tracker's counters,
which this module starts in counters-only mode when nothing tracks yet.
Enter/exit MARK records bracket each call in a capture, for `memlens plot`.
The same table code prints `memlens lines` (reports from a capture file).
"""
import sys

# `import memlens` imports this module (for the `memlens.profile` decorator):
# it must stay light, so that memlens changes nothing in the programs it
# runs. Everything else is imported when first needed.

_MONITORING = sys.version_info >= (3, 12)
_MARK_ENTER, _MARK_EXIT = 1, 2

_lock = None             # threading.Lock, made on first decoration
_functions = []          # decorated functions, in decoration order: (code, qualname, file)
_codes = set()
_tool_id = None          # sys.monitoring tool id (3.12+)
_started_tracker = False
_atexit_registered = False
_print_at_exit = True    # `memlens profile` prints itself
_output = {"stream": None, "json": False}


def _engine():
    from memlens import _engine
    return _engine


def _ensure_tracker():
    """Start counters-only tracking if nothing is tracking yet."""
    global _started_tracker
    eng = _engine()
    if not eng.active():
        eng.start(None, False, "{}", 1, False, 10)
        _started_tracker = True
    if _MONITORING:
        eng.meter_calibrate()


def _ensure_monitoring():
    global _tool_id
    if _tool_id is not None:
        return
    mon = sys.monitoring
    for tool in (mon.PROFILER_ID, 3, 4, 5, mon.OPTIMIZER_ID):
        if mon.get_tool(tool) is None:
            mon.use_tool_id(tool, "memlens")
            _tool_id = tool
            break
    else:
        raise RuntimeError("memlens.profile: all sys.monitoring tool ids are taken")
    mon.register_callback(_tool_id, mon.events.LINE, _engine().meter_line)


def profile(func=None):
    """Decorator: meter this function line by line; the table is printed when
    the program ends (or by `memlens profile`). Usable as @profile or
    @profile()."""
    if func is None:
        return profile
    code = getattr(func, "__code__", None)
    if code is None:
        raise TypeError("memlens.profile decorates Python functions, not %r" % (func,))
    import functools
    global _lock
    if _lock is None:
        import threading
        _lock = threading.Lock()
    eng = _engine()
    with _lock:
        _ensure_tracker()
        eng.meter_register(code)
        if code not in _codes:
            _codes.add(code)
            _functions.append((code, func.__qualname__, code.co_filename))
        if _MONITORING:
            _ensure_monitoring()
            sys.monitoring.set_local_events(_tool_id, code, sys.monitoring.events.LINE)
        _register_atexit()
    label = "%s (%s:%d)" % (func.__qualname__, code.co_filename, code.co_firstlineno)
    mark = getattr(eng, "mark", None)
    enter, leave = eng.meter_enter, eng.meter_exit

    if _MONITORING:
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if mark:
                mark(_MARK_ENTER, label)
            enter(code)
            try:
                return func(*args, **kwargs)
            finally:
                leave(code)
                if mark:
                    mark(_MARK_EXIT, label)
    else:
        sentinel, trace_on, settrace, gettrace = eng.meter_trace, eng.meter_trace_on, sys.settrace, sys.gettrace

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if mark:
                mark(_MARK_ENTER, label)
            old = gettrace()
            mine = old is not sentinel
            if mine:
                trace_on()
            enter(code)
            try:
                return func(*args, **kwargs)
            finally:
                leave(code)
                if mine:
                    settrace(old)
                if mark:
                    mark(_MARK_EXIT, label)
    wrapper.__memlens_code__ = code
    return wrapper


def _register_atexit():
    global _atexit_registered
    if not _atexit_registered:
        import atexit
        atexit.register(_at_exit)
        _atexit_registered = True


def _at_exit():
    if _print_at_exit:
        report(out=_output["stream"], as_json=_output["json"])


def results():
    """Line tables of the decorated functions that ran: a list of dicts
    {function, file, firstlineno, calls, net, allocated, allocations, rows},
    rows being {line, heap, increment, allocated, allocations, occurrences}."""
    eng = _engine()
    out = []
    for code, qualname, file in list(_functions):
        r = eng.meter_rows(code)
        if not r or not r["calls"]:
            continue
        rows = [dict(line=line, heap=heap, increment=inc, allocated=alloc, allocations=n,
                     occurrences=occ)
                for line, inc, alloc, n, occ, heap in r["rows"]]
        out.append(dict(function=qualname, file=file, firstlineno=code.co_firstlineno,
                        calls=r["calls"], net=r["net"], allocated=r["allocated"],
                        allocations=r["allocations"], rows=rows))
    return out


def reset():
    """Forget the figures gathered so far (for notebooks and tests)."""
    _engine().meter_reset()


def report(out=None, as_json=False):
    """Print the tables of every decorated function that ran."""
    out = out or sys.stdout
    funcs = results()
    if as_json:
        from memlens import fmt, reports
        fmt.dump_json(reports.profile_json(funcs, sys.argv, source_line), out=out)
        out.flush()
        return
    for f in funcs:
        print_table(f, out, occurrences=True)


# ---- tables shared by @profile and `memlens lines` ----

def source_line(path, lineno):
    import linecache
    return linecache.getline(path, lineno).rstrip("\n") if lineno > 0 else ""


def _function_span(path, firstlineno, rows):
    """Lines to show: the whole def block (as memory_profiler), else the rows'."""
    import inspect
    import linecache
    lines = linecache.getlines(path)
    data = [r["line"] for r in rows if r["line"] > 0]
    last = max(data) if data else firstlineno
    if lines and 0 < firstlineno <= len(lines):
        try:
            block = inspect.getblock(lines[firstlineno - 1:])
            last = max(last, firstlineno + len(block) - 1)
        except Exception:  # tokenizer errors on odd sources: show the rows
            pass
    return firstlineno, last


def print_table(f, out, occurrences=False, module_level=False):
    """One function's table, seed-004 columns plus allocated and counts.

    f: {function, file, firstlineno, net, rows: [{line, heap, increment,
    allocated, allocations[, occurrences]}], calls?, adds_up?, code_lines?}.
    code_lines (from a capture): exactly the lines of the code object."""
    from memlens.fmt import human_bytes, human_count, safe, table
    rows = {r["line"]: r for r in f["rows"]}
    if module_level or f["function"] == "<module>":
        shown = sorted(rows)
    elif f.get("code_lines"):
        shown = sorted(set(f["code_lines"]) | set(rows))
    else:
        first, last = _function_span(f["file"], f["firstlineno"], f["rows"])
        shown = sorted(set(range(first, last + 1)) | set(rows))
    headers = ["Line #", "Heap", "Increment", "Allocated", "Allocs"]
    align = "rrrrr"
    if occurrences:
        headers.append("Occurrences")
        align += "r"
    headers.append("Line Contents")
    align += "l"
    body = []
    for line in shown:
        r = rows.get(line)
        src = source_line(f["file"], line) if line > 0 else "(no line)"
        if r is None:
            cells = [str(line), "", "", "", ""] + ([""] if occurrences else [])
        else:
            cells = [str(line), human_bytes(r["heap"]), human_bytes(r["increment"], signed=True),
                     human_bytes(r["allocated"]), human_count(r["allocations"])]
            if occurrences:
                cells.append(human_count(r.get("occurrences", 0)))
        body.append(cells + [src])
    calls = f.get("calls")
    print("Filename: %s" % safe(f["file"]), file=out)
    print("Function: %s%s" % (safe(f["function"]), "" if calls is None else
                             "  (%s call%s)" % (human_count(calls), "" if calls == 1 else "s")),
          file=out)
    print(file=out)
    table(headers, body, align=align, out=out)
    total = sum(r["increment"] for r in f["rows"])
    adds_up = f.get("adds_up", total == f["net"])
    print(file=out)
    if adds_up:
        print("Net growth %s = sum of the line increments (checked). Allocated %s in %s blocks."
              % (human_bytes(f["net"], signed=True), human_bytes(f["allocated"]),
                 human_count(f["allocations"])), file=out)
    else:
        print("WARNING: the line increments sum to %s but the net growth is %s (%d bytes apart)"
              % (human_bytes(total, signed=True), human_bytes(f["net"], signed=True),
                 total - f["net"]), file=out)
    print(file=out)


# ---- `memlens profile SCRIPT`: run a program with `profile` as a builtin ----

def run_program(program, out=None, as_json=False):
    """Run a memlens.runner.Program with `profile` available as a builtin (as
    `python -m memory_profiler`), then print the tables. Returns the exit
    status the program asked for."""
    global _print_at_exit
    import builtins
    from memlens import runner
    _print_at_exit = False
    had = hasattr(builtins, "profile")
    builtins.profile = profile

    def end(outcome):
        try:
            sys.stdout.flush()
        except Exception:
            pass
        report(out=out, as_json=as_json)

    try:
        outcome = runner.run(program, on_end=end)
    finally:
        if not had:
            del builtins.profile
    return runner.finish(outcome)


__all__ = ["profile", "results", "reset", "report", "print_table", "run_program"]

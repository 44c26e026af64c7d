"""IPython/Jupyter magics: `%load_ext memlens`, then (manual: docs/NOTEBOOK.md)

    %memit [-r R] [-n N] [-a] [-o] STMT   peak and increment of the traced heap for
    %%memit [-r R] [-n N] [-a] [-o]       a statement or a cell, as memory_profiler's
                                          %memit (exact heap bytes; R repeats of N runs)
    %mprun -f FUNC [-f FUNC...] STMT      the line table of FUNC while STMT runs, as
                                          memory_profiler's %mprun (exact bytes)
    %%memlens [--top N] [-o FILE] [-f] [--flamegraph]
                                          run the cell the way IPython runs cells,
                                          under a capture; print peak, top sites and
                                          top types at the peak

%memit and %mprun need only the counters (tracking starts in counters-only
mode); %%memlens records the cell into a capture file (a temporary one unless
-o), read back by the C timeline (memlens.plot.load).
"""
import array
import os
import shlex
import tempfile

from memlens.fmt import human_bytes, human_count, safe, table


def _engine():
    from memlens import _engine
    return _engine


class MemitResult:
    """What %memit measured (bytes of traced heap, relative to the start of a
    run): the best run's figures, `all` the figures of every repeat, and
    `heap`, the absolute traced heap at the best run's peak."""

    def __init__(self, peak, increment, allocated, allocations, heap=0, runs=None):
        self.peak, self.increment = peak, increment
        self.allocated, self.allocations = allocated, allocations
        self.heap = heap
        self.all = runs if runs is not None else []

    def __repr__(self):
        return ("<MemitResult peak=+%d increment=%+d allocated=%d allocations=%d>"
                % (self.peak, self.increment, self.allocated, self.allocations))


def _ensure_counters():
    eng = _engine()
    if not eng.active():
        eng.start(None, False, "{}", 1, False, 10)
        _state["started"] = True
    return eng


def memit(statement, user_ns, repeat=1, number=1, shell=None):
    """Run a statement (or cell) `number` times, `repeat` times over; return
    the MemitResult of the repeat with the lowest peak (the first run often
    fills caches), with every repeat's in `.all`. Starts counters-only
    tracking when nothing is tracking. A statement with top-level `await`
    runs as a coroutine (see _await; `shell` is IPython's, for its loop
    runner): each repeat is measured inside that coroutine, so making the
    event loop is not counted."""
    import ast
    import inspect
    eng = _ensure_counters()
    code = compile(statement, "<memit>", "exec", flags=getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0))
    # preallocated buffers: reading the counters allocates nothing, so the
    # measurement does not count itself (a counters() dict would)
    before, after = array.array("q", bytes(32)), array.array("q", bytes(32))
    reset_peak, read = eng.reset_peak, eng.counters_into
    runs = []

    def result():
        heap0 = before[0]
        runs.append(MemitResult(max(after[3] - heap0, 0), after[0] - heap0,
                                after[1] - before[1], after[2] - before[2], after[3]))

    if code.co_flags & inspect.CO_COROUTINE:
        async def measured():
            loops = range(number)
            reset_peak()
            read(before)
            for _ in loops:
                await eval(code, user_ns)
            read(after)

        for _ in range(repeat):
            _await(measured(), shell)
            result()
    else:
        for _ in range(repeat):
            loops = range(number)
            reset_peak()
            read(before)
            for _ in loops:
                exec(code, user_ns)
            read(after)
            result()
    best = min(runs, key=lambda r: r.peak)
    return MemitResult(best.peak, best.increment, best.allocated, best.allocations, best.heap, runs)


def _rss():
    """Resident set size of this process in bytes (Linux), or None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def format_memit(r, show_all=False):
    rss = _rss()
    text = ("peak memory: %s, increment: %s (traced heap; allocated %s in %s blocks); "
            "absolute: traced heap %s at the peak%s"
            % (human_bytes(r.peak, signed=True), human_bytes(r.increment, signed=True),
               human_bytes(r.allocated), human_count(r.allocations), human_bytes(r.heap),
               ", RSS %s" % human_bytes(rss) if rss is not None else ""))
    if len(r.all) > 1:
        text += "\n%s of %d repeats (the lowest peak)" % ("best", len(r.all))
        if show_all:
            text += ":\n" + "\n".join("  repeat %d: peak %s, increment %s" % (
                i + 1, human_bytes(x.peak, signed=True), human_bytes(x.increment, signed=True))
                for i, x in enumerate(r.all))
    return text


# ---- %mprun ----

def mprun(funcs, statement, user_ns):
    """Run `statement` with each function of `funcs` ([(owner, name, func)]:
    where it is bound) metered line by line; return their tables (the dicts
    of memlens.profile.results()). Each function is replaced by its metered
    wrapper in its owner (a module, a class, the notebook's namespace) and in
    its own globals while the statement runs: calls made through other
    references are not metered."""
    import importlib
    import sys
    prof = importlib.import_module("memlens.profile")  # the module, not the decorator
    had = set(prof._codes)
    patched = []
    codes = []
    try:
        for owner, name, func in funcs:
            code = func.__code__
            codes.append(code)
            wrapper = prof.profile(func)
            for target, attr in ((owner, name), (func.__globals__, func.__name__)):
                if target is None:
                    continue
                raw = vars(target).get(attr) if isinstance(target, type) else None
                if isinstance(raw, (staticmethod, classmethod)) and raw.__func__ is func:
                    patched.append((target, attr, raw))
                    setattr(target, attr, type(raw)(wrapper))
                    continue
                current = target.get(attr) if isinstance(target, dict) else getattr(target, attr, None)
                if current is func:
                    patched.append((target, attr, func))
                    if isinstance(target, dict):
                        target[attr] = wrapper
                    else:
                        setattr(target, attr, wrapper)
        eng = _engine()
        eng.meter_reset()
        exec(compile(statement, "<mprun>", "exec"), user_ns)
        return [f for f in prof.results() if any(f["file"] == c.co_filename and
                                                  f["firstlineno"] == c.co_firstlineno
                                                  for c in codes)]
    finally:
        for target, attr, func in reversed(patched):
            if isinstance(target, dict):
                target[attr] = func
            else:
                setattr(target, attr, func)
        # functions metered for this statement only: out of @profile's
        # end-of-program report, and no more line events
        for code in codes:
            if code not in had and code in prof._codes:
                prof._codes.discard(code)
                prof._functions[:] = [f for f in prof._functions if f[0] is not code]
                if prof._MONITORING and prof._tool_id is not None:
                    sys.monitoring.set_local_events(prof._tool_id, code, 0)


def _resolve(expr, user_ns):
    """'f', 'mod.f', 'Class.method' -> (owner, name, function)."""
    import types
    parts = expr.split(".")
    if not all(p.isidentifier() for p in parts):
        raise ValueError("-f takes a name such as f, module.f or Class.method, not %r" % expr)
    if len(parts) == 1:
        owner, obj = user_ns, user_ns.get(parts[0])
        if obj is None:
            import builtins
            obj = getattr(builtins, parts[0], None)
            owner = None
    else:
        owner = eval(".".join(parts[:-1]), user_ns)
        obj = getattr(owner, parts[-1], None)
    func = obj
    if isinstance(func, types.MethodType):
        func = func.__func__
    if not isinstance(func, types.FunctionType):
        raise ValueError("-f %s: not a Python function" % expr)
    return owner, parts[-1], func


# ---- %%memlens ----

def _run_cell(run, arg):
    """The cell runs inside this function: captures stop stacks here, and
    what this thread allocates outside it (IPython's parsing, memlens'
    reading) is not recorded."""
    return run(arg)


def _exec_plain(code_and_ns):
    code, ns = code_and_ns
    exec(code, ns)


class _Cell:
    """A cell compiled the way IPython runs cells: its input transformations
    (%magics, !commands, ?help), top-level await, and the last expression
    shown by the display hook (IPython's run_ast_nodes does the same: the
    body in 'exec' mode, the last expression statement in 'single' mode).
    The code runs inside _run_cell, so that the capture sees only the cell,
    not IPython's own frames (a run_cell from a cell magic would run inside
    the outer cell's run_code)."""

    def __init__(self, shell, cell):
        import ast
        self.shell = shell
        source = shell.transform_cell(cell)
        try:
            name = shell.compile.cache(source, shell.execution_count, raw_code=cell)
        except TypeError:  # IPython 7: cache(code, number)
            name = shell.compile.cache(source, shell.execution_count)
        tree = ast.parse(source, filename=name)
        flags = getattr(ast, "PyCF_ALLOW_TOP_LEVEL_AWAIT", 0)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Interactive([tree.body.pop()])
        self.codes = [compile(ast.Module(tree.body, type_ignores=[]), name, "exec", flags=flags)]
        if last is not None:
            self.codes.append(compile(last, name, "single", flags=flags))

    def __call__(self, _):
        import inspect
        ns_globals, ns_locals = self.shell.user_global_ns, self.shell.user_ns
        for code in self.codes:
            value = eval(code, ns_globals, ns_locals)
            if code.co_flags & inspect.CO_COROUTINE:
                _await(value, self.shell)


def _await(coro, shell):
    """Run the coroutine of a cell with top-level await. In a Jupyter kernel
    this thread already runs the kernel's event loop, where no other loop can
    run: the coroutine then runs to completion in a helper thread with its
    own loop (its allocations are recorded with that thread's stacks)."""
    import asyncio
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return shell.loop_runner(coro) if shell is not None else asyncio.run(coro)
    import threading
    outcome = {}

    def target():
        try:
            outcome["value"] = asyncio.run(coro)
        except BaseException as e:  # re-raised in the cell's thread
            outcome["error"] = e

    t = threading.Thread(target=target, name="memlens-cell-await")
    t.start()
    t.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def cell_summary(cell, user_ns, top=5, output=None, force=False, shell=None):
    """Run a cell under a capture; return the timeline dict (peak, top_sites,
    top_types). With `shell` (an IPython shell) the cell runs as IPython runs
    cells (_Cell); without, as plain Python. `output`: keep the capture there
    (created new; `force` replaces a file). Counters-only tracking started by
    memlens is paused. An exception raised by the cell is in "error"."""
    from memlens import plot
    eng = _engine()
    resume = False
    if eng.active():
        import importlib
        profile = importlib.import_module("memlens.profile")  # the module, not the decorator
        if not (profile._started_tracker or _state["started"]):
            raise RuntimeError("memlens is already recording a capture in this process")
    if shell is not None:
        run, arg = _Cell(shell, cell), None  # a SyntaxError is raised here, before any capture
    else:
        run, arg = _exec_plain, (compile(cell, "<memlens-cell>", "exec"), user_ns)
    if eng.active():
        eng.stop()
        resume = True
    if output is None:
        fd, path = tempfile.mkstemp(suffix=".mlens", prefix="memlens-cell-")
        os.close(fd)
        force_file = True
    else:
        path, force_file = os.path.abspath(output), force
    error = None
    try:
        eng.start(path, force_file, '{"script": null, "argv": ["%%memlens"]}', 64, False, 10,
                  stop_code=_run_cell.__code__)
        try:
            _run_cell(run, arg)
        except Exception as e:
            error = e
        finally:
            eng.stop()
        tl = dict(plot.load(path))
        tl["error"] = error
        tl["path"] = path if output is not None else None
        return tl
    finally:
        if output is None:
            os.unlink(path)
        if resume:
            eng.start(None, False, "{}", 1, False, 10)


_state = {"started": False}


def print_cell_summary(tl, top=5):
    peak = tl["peak"]
    print("Peak of the traced heap during the cell: %s (%s live block%s)"
          % (human_bytes(peak["heap"]), human_count(peak["blocks"]),
             "" if peak["blocks"] == 1 else "s"))
    pts = tl["points"]
    if pts:
        print("RSS at the end: %s" % human_bytes(pts[-1][1]))
    if tl["top_sites"] and top:
        print("\nTop sites at the peak:")
        table(["Bytes", "Blocks", "Site"],
              [[human_bytes(s["bytes"]), human_count(s["blocks"]),
                "%s:%d (%s)" % (s["file"], s["line"], s["function"])] for s in tl["top_sites"][:top]],
              align="rrl")
    if tl["top_types"] and top:
        print("\nTop types at the peak:")
        table(["Bytes", "Blocks", "Type"],
              [[human_bytes(s["bytes"]), human_count(s["blocks"]), s["type"]] for s in tl["top_types"][:top]],
              align="rrl")
    if tl.get("path"):
        print("\nCapture written to %s" % safe(tl["path"]))


def _flamegraph(path):
    """The flame graph page of a capture, wrapped for inline display (a
    sandboxed <iframe srcdoc>: its ids and script stay apart from the
    notebook's)."""
    from memlens import flamegraph
    return flamegraph.iframe(flamegraph.render_html(path))


# ---- argument parsing (one clear line on a bad argument, never a traceback) ----

class UsageError(Exception):
    pass


def _parser(prog, usage):
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise UsageError("usage: %s (%s)" % (usage, message))

        def exit(self, status=0, message=None):
            raise UsageError(message or usage)

    return Parser(prog=prog, usage=usage, add_help=False)


_MEMIT_USAGE = "%memit [-r R] [-n N] [-a] [-o] STATEMENT"
_MEMLENS_USAGE = "%%memlens [--top N] [-o FILE] [-f] [--flamegraph]"
_MPRUN_USAGE = "%mprun -f FUNC [-f FUNC ...] STATEMENT"


def _count(text):
    n = int(text)
    if n < 1:
        raise ValueError(text)
    return n


def _split_memit(line):
    """Options first, then the statement (kept verbatim)."""
    opts = {"r": 1, "n": 1, "a": False, "o": False}
    rest = line.lstrip()
    while rest.startswith("-"):
        word, _, tail = rest.partition(" ")
        flag, value = word[1:2], word[2:]
        if flag in ("a", "o") and not value:
            opts[flag] = True
        elif flag in ("r", "n"):
            if not value:
                value, _, tail = tail.lstrip().partition(" ")
            try:
                opts[flag] = _count(value)
            except ValueError:
                raise UsageError("usage: %s (-%s takes a count >= 1, not %r)"
                                 % (_MEMIT_USAGE, flag, value))
        else:
            break
        rest = tail.lstrip()
    return opts, rest


def load_ipython_extension(ipython):
    from IPython.core.magic import Magics, cell_magic, line_cell_magic, line_magic, magics_class

    @magics_class
    class MemlensMagics(Magics):
        @line_cell_magic
        def memit(self, line, cell=None):
            """%memit [-r R] [-n N] [-a] [-o] STATEMENT, or %%memit [options] with a
            cell: peak and increment of the traced heap (memory_profiler's %memit
            in exact bytes). -r R repeats (the lowest peak is shown; -a: all),
            -n N runs per repeat, -o returns the MemitResult. Top-level
            `await` works (the statement runs as a coroutine)."""
            try:
                opts, stmt = _split_memit(line)
            except UsageError as e:
                print(e)
                return None
            if cell is not None:
                if stmt.strip():
                    print("usage: %%memit [-r R] [-n N] [-a] [-o] (the cell is the statement)")
                    return None
                stmt = cell
            if not stmt.strip():
                print("usage: " + _MEMIT_USAGE)
                return None
            stmt = self.shell.transform_cell(stmt) if cell is not None else stmt
            r = memit(stmt, self.shell.user_ns, repeat=opts["r"], number=opts["n"],
                      shell=self.shell)
            print(format_memit(r, show_all=opts["a"]))
            return r if opts["o"] else None

        @line_magic
        def mprun(self, line):
            """%mprun -f FUNC [-f FUNC ...] STATEMENT: the line-by-line memory
            table of each FUNC while STATEMENT runs (memory_profiler's %mprun,
            exact bytes of the traced heap)."""
            try:
                words = shlex.split(line)
            except ValueError as e:
                print("usage: %s (%s)" % (_MPRUN_USAGE, e))
                return None
            names = []
            while len(words) >= 2 and words[0] == "-f":
                names.append(words[1])
                words = words[2:]
            stmt = " ".join(words)
            if not names or not stmt.strip():
                print("usage: " + _MPRUN_USAGE)
                return None
            try:
                funcs = [_resolve(n, self.shell.user_ns) for n in names]
            except Exception as e:  # a name that does not resolve: one line
                print("memlens: %s" % safe(str(e)))
                return None
            from memlens.profile import print_table
            import sys
            tables = mprun(funcs, stmt, self.shell.user_ns)
            if not tables:
                print("memlens: %s did not run" % ", ".join(safe(n) for n in names))
            for f in tables:
                print_table(f, sys.stdout, occurrences=True)
            return None

        @cell_magic
        def memlens(self, line, cell):
            """%%memlens [--top N] [-o FILE] [-f] [--flamegraph]: run the cell
            (as IPython runs cells) under a capture; print the peak, the top
            sites and types at the peak (N rows each, default 5). -o keeps the
            capture in FILE (a new file; -f replaces one); --flamegraph shows
            the flame graph of the cell."""
            p = _parser("%%memlens", _MEMLENS_USAGE)
            p.add_argument("--top", type=int, default=5)
            p.add_argument("-o", "--output", default=None)
            p.add_argument("-f", "--force", action="store_true")
            p.add_argument("--flamegraph", action="store_true")
            try:
                args = p.parse_args(shlex.split(line))
                if args.top < 0:
                    raise UsageError("usage: %s (--top cannot be negative)" % _MEMLENS_USAGE)
            except (UsageError, ValueError) as e:
                print(e)
                return None
            keep = args.output
            tmp = None
            if args.flamegraph and keep is None:
                tmp = tempfile.mkdtemp(prefix="memlens-cell-")
                keep = os.path.join(tmp, "cell.mlens")
            try:
                try:
                    tl = cell_summary(cell, self.shell.user_ns, top=args.top, output=keep,
                                      force=args.force, shell=self.shell)
                except (OSError, RuntimeError) as e:
                    print("memlens: %s" % safe(str(e)))
                    return None
                if tmp is not None:
                    tl["path"] = None
                print_cell_summary(tl, top=args.top)
                if args.flamegraph:
                    html = _flamegraph(keep)
                    if html is not None:
                        from IPython.display import HTML, display
                        display(HTML(html))
                if tl["error"] is not None:
                    raise tl["error"]  # shown by IPython as the cell's own error
            finally:
                if tmp is not None:
                    import shutil
                    shutil.rmtree(tmp, ignore_errors=True)
            return None

    ipython.register_magics(MemlensMagics)

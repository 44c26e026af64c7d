"""IPython/Jupyter magics: `%load_ext memlens`, then

    %memit EXPR        peak and increment of the traced heap for one statement
                       (as memory_profiler's %memit, but exact heap bytes)
    %%memlens          run the cell with a capture and print a summary: peak,
                       top sites and top types at the peak

%memit needs only the counters (tracking starts in counters-only mode);
%%memlens records the cell into a temporary capture file, read back by the C
timeline (memlens.plot.load) and deleted afterwards.
"""
import array
import os
import tempfile

from memlens.fmt import human_bytes, human_count, table


def _engine():
    from memlens import _engine
    return _engine


class MemitResult:
    """What %memit measured (bytes of traced heap, relative to the start)."""

    def __init__(self, peak, increment, allocated, allocations):
        self.peak, self.increment = peak, increment
        self.allocated, self.allocations = allocated, allocations

    def __repr__(self):
        return ("<MemitResult peak=+%d increment=%+d allocated=%d allocations=%d>"
                % (self.peak, self.increment, self.allocated, self.allocations))


def memit(statement, user_ns):
    """Run one statement; return a MemitResult. Starts counters-only tracking
    when nothing is tracking."""
    eng = _engine()
    if not eng.active():
        eng.start(None, False, "{}", 1, False, 10)
        _state["started"] = True
    code = compile(statement, "<memit>", "exec")
    # preallocated buffers: reading the counters allocates nothing, so the
    # measurement does not count itself (a counters() dict would)
    before, after = array.array("q", bytes(32)), array.array("q", bytes(32))
    reset_peak, read = eng.reset_peak, eng.counters_into
    reset_peak()
    read(before)
    exec(code, user_ns)
    read(after)
    heap0 = before[0]
    return MemitResult(max(after[3] - heap0, 0), after[0] - heap0, after[1] - before[1],
                       after[2] - before[2])


def _run_cell(code, user_ns):
    """The cell runs inside this function: captures stop stacks here."""
    exec(code, user_ns)


def cell_summary(cell, user_ns, top=5):
    """Run a cell under a capture; return the timeline dict (peak, top_sites,
    top_types). Counters-only tracking started by memlens is paused for it."""
    from memlens import plot
    eng = _engine()
    resume = False
    if eng.active():
        import importlib
        profile = importlib.import_module("memlens.profile")  # the module, not the decorator
        if not (profile._started_tracker or _state["started"]):
            raise RuntimeError("memlens is already recording a capture in this process")
        eng.stop()
        resume = True
    fd, path = tempfile.mkstemp(suffix=".mlens", prefix="memlens-cell-")
    os.close(fd)
    try:
        code = compile(cell, "<memlens-cell>", "exec")
        # stacks stop at _run_cell: IPython's frames and ours are not the
        # cell's, and what this thread allocates outside it is not recorded
        eng.start(path, True, '{"script": null, "argv": ["%%memlens"]}', 64, False, 10,
                  stop_code=_run_cell.__code__)
        try:
            _run_cell(code, user_ns)
        finally:
            eng.stop()
        return plot.load(path)
    finally:
        os.unlink(path)
        if resume:
            eng.start(None, False, "{}", 1, False, 10)


_state = {"started": False}


def print_cell_summary(tl, top=5):
    peak = tl["peak"]
    print("Peak of the traced heap during the cell: %s (%s live blocks)"
          % (human_bytes(peak["heap"]), human_count(peak["blocks"])))
    pts = tl["points"]
    if pts:
        print("RSS at the end: %s" % human_bytes(pts[-1][1]))
    if tl["top_sites"]:
        print("\nTop sites at the peak:")
        table(["Bytes", "Blocks", "Site"],
              [[human_bytes(s["bytes"]), human_count(s["blocks"]),
                "%s:%d (%s)" % (s["file"], s["line"], s["function"])] for s in tl["top_sites"][:top]],
              align="rrl")
    if tl["top_types"]:
        print("\nTop types at the peak:")
        table(["Bytes", "Blocks", "Type"],
              [[human_bytes(s["bytes"]), human_count(s["blocks"]), s["type"]] for s in tl["top_types"][:top]],
              align="rrl")


def load_ipython_extension(ipython):
    from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

    @magics_class
    class MemlensMagics(Magics):
        @line_magic
        def memit(self, line):
            """%memit [-o] STATEMENT: peak and increment of the traced heap."""
            ret = line.startswith("-o ")
            stmt = line[3:] if ret else line
            if not stmt.strip():
                print("usage: %memit [-o] STATEMENT")
                return None
            r = memit(stmt, self.shell.user_ns)
            print("peak memory: %s, increment: %s (traced heap; allocated %s in %s blocks)"
                  % (human_bytes(r.peak, signed=True), human_bytes(r.increment, signed=True),
                     human_bytes(r.allocated), human_count(r.allocations)))
            return r if ret else None

        @cell_magic
        def memlens(self, line, cell):
            """%%memlens: run the cell; print peak, top sites and top types."""
            tl = cell_summary(cell, self.shell.user_ns)
            print_cell_summary(tl)

    ipython.register_magics(MemlensMagics)

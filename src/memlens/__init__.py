"""memlens: memory profiler and heap analyser for CPython.

The engine is C (memlens._engine); this package is the shell around it:
the CLI, the API objects, the report formatting.

PYTEST_DONT_REWRITE: pytest loads memlens' plugin from this package (the
pytest11 entry point) and would rewrite its asserts; under `memlens run -m
pytest` the package is imported before pytest starts, and pytest would warn
that it cannot rewrite it: a warning the program does not have without memlens.
"""
# The modules loaded before memlens: those memlens.runner finds loaded
# when the program starts, beyond these, are memlens' own imports, which
# `memlens heap` leaves out of the program's census (docs/HEAP.md, step 5).
_modules_before = frozenset(__import__("sys").modules)
__version__ = "0.1.0"


def __getattr__(name):
    # Lazy exports, so `import memlens` stays cheap and never loads the engine:
    # the IPython extension hook.
    if name == "load_ipython_extension":
        from memlens.magics import load_ipython_extension
        return load_ipython_extension
    raise AttributeError("module 'memlens' has no attribute %r" % name)


# The decorator, as memory_profiler's `from memory_profiler import profile`.
# It shadows the submodule attribute: reach the module with
# `from memlens.profile import results, report` (those go through sys.modules).
from memlens.profile import profile  # noqa: E402
# Bound after the submodule imports, so `memlens.heap` is the function (the
# import of memlens.heap would otherwise leave the module under that name).
from memlens.heap import heap, deep_size, Snapshot  # noqa: E402
# Why is it alive (docs/WHY.md): reference paths, retained sizes, pictures.
from memlens.why import (why, refs, backrefs, retained_size, count, by_type,  # noqa: E402
                         get_leaking_objects, find_backref_chain)
from memlens.rssparts import rss  # noqa: E402
# The garbage collector (docs/GC.md).
from memlens.gc import cycles, gc_stats, start_gc_recording, stop_gc_recording  # noqa: E402


def snapshot_now():
    """Inside a program run by `memlens run`: write the live heap's buffer
    owners and holders into the capture now (as at exit; `memlens leaks`
    and `memlens why` use the last one). Returns the pass's counts
    (objects, owners, holders, held, duration_us), or None when no capture
    is being written."""
    import os
    from memlens import _engine
    return _engine.exit_snapshot(2, os.path.dirname(os.path.abspath(__file__)) + os.sep)

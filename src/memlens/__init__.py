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


# The engine loads with the package, as it always did (~0.4 ms): loaded
# later, by the first API call, it made memlens.rss()'s parts overshoot the
# RSS by 0.6-1.1% after a program had fragmented its heap (test_rss.py's
# fragmented heap; -0.02% with the engine loaded first).
from memlens import _engine  # noqa: E402,F401

# The public names and the submodule each comes from. They are imported on
# first use (PEP 562), so that `import memlens` (every `memlens run`, the
# pytest plugin) loads none of them, nor what they import (json, re, ...).
_EXPORTS = {
    # the decorator, as memory_profiler's `from memory_profiler import profile`
    "profile": "memlens.profile",
    "heap": "memlens.heap", "deep_size": "memlens.heap", "Snapshot": "memlens.heap",
    # why is it alive (docs/WHY.md): reference paths, retained sizes, pictures
    "why": "memlens.why", "refs": "memlens.why", "backrefs": "memlens.why",
    "retained_size": "memlens.why", "count": "memlens.why", "by_type": "memlens.why",
    "get_leaking_objects": "memlens.why", "find_backref_chain": "memlens.why",
    "rss": "memlens.rssparts",
    # the garbage collector (docs/GC.md)
    "cycles": "memlens.gc", "gc_stats": "memlens.gc", "start_gc_recording": "memlens.gc",
    "stop_gc_recording": "memlens.gc",
    # the IPython extension hook
    "load_ipython_extension": "memlens.magics",
}


# Submodules that `import memlens` used to load (so `memlens.gc.cycles` and
# friends worked without importing them): loaded on first use too.
_SUBMODULES = ("_engine", "escape", "fmt", "gc", "pictures", "rssparts")


def __getattr__(name):
    importlib = __import__("importlib")
    if name in _SUBMODULES:
        return importlib.import_module("memlens." + name)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError("module 'memlens' has no attribute %r" % name)
    # not cached in this module's dict: the program's census would see the
    # dict grow as the program uses the API
    return getattr(importlib.import_module(module), name)


def __dir__():
    # what dir(memlens) listed when every name was imported with the package
    own = set(globals()) - {"_EXPORTS", "_SUBMODULES", "_Package", "__dir__"}
    return sorted(own | set(_EXPORTS) - {"load_ipython_extension"} | set(_SUBMODULES))


class _Package(type(__import__("sys"))):
    """memlens' module type. The functions `memlens.profile`, `memlens.heap`
    and `memlens.why` have the names of the submodules that define them;
    importing such a submodule (`from memlens.heap import type_name`, done
    by memlens itself or by a user) makes the import system set the package's
    attribute to the submodule: the function is kept there instead. Reach
    the modules through sys.modules (`from memlens.heap import ...`)."""

    def __setattr__(self, name, value):
        if name in ("profile", "heap", "why") and getattr(value, "__name__", None) == "memlens." + name:
            value = getattr(value, name)
        super().__setattr__(name, value)


# A census (memlens.heap(), `memlens heap`) counts the package as the program
# imported it: a module, as before this type existed, and not a memlens type
# (memlens' own types never appear in a report).
_Package.__module__, _Package.__name__, _Package.__qualname__ = "builtins", "module", "module"


__import__("sys").modules[__name__].__class__ = _Package


def snapshot_now():
    """Inside a program run by `memlens run`: write the live heap's buffer
    owners and holders into the capture now (as at exit; `memlens leaks`
    and `memlens why` use the last one). Returns the pass's counts
    (objects, owners, holders, held, duration_us), or None when no capture
    is being written."""
    import os
    from memlens import _engine
    return _engine.exit_snapshot(2, os.path.dirname(os.path.abspath(__file__)) + os.sep)

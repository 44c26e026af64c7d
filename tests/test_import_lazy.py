"""`import memlens` is cheap (session 8, speed): the API's submodules are
imported on first use (PEP 562), and the public API is what it was.

Ground truth: sys.modules of a fresh interpreter before and after the
import; the names dir(memlens) listed when the package imported everything
eagerly (commit 1b6b087); each name is the object its submodule defines,
whatever the order of imports."""
import subprocess
import sys

import pytest

# dir(memlens) at 1b6b087, where __init__ imported every submodule eagerly
DIR_BEFORE = [
    "Snapshot", "__builtins__", "__cached__", "__doc__", "__file__", "__getattr__", "__loader__",
    "__name__", "__package__", "__path__", "__spec__", "__version__", "_engine", "_modules_before",
    "backrefs", "by_type", "count", "cycles", "deep_size", "escape", "find_backref_chain", "fmt", "gc",
    "gc_stats", "get_leaking_objects", "heap", "pictures", "profile", "refs", "retained_size", "rss",
    "rssparts", "snapshot_now", "start_gc_recording", "stop_gc_recording", "why"]

# name -> (submodule, attribute) of the public API
API = {"profile": ("memlens.profile", "profile"), "heap": ("memlens.heap", "heap"),
       "deep_size": ("memlens.heap", "deep_size"), "Snapshot": ("memlens.heap", "Snapshot"),
       "why": ("memlens.why", "why"), "refs": ("memlens.why", "refs"), "backrefs": ("memlens.why", "backrefs"),
       "retained_size": ("memlens.why", "retained_size"), "count": ("memlens.why", "count"),
       "by_type": ("memlens.why", "by_type"), "get_leaking_objects": ("memlens.why", "get_leaking_objects"),
       "find_backref_chain": ("memlens.why", "find_backref_chain"), "rss": ("memlens.rssparts", "rss"),
       "cycles": ("memlens.gc", "cycles"), "gc_stats": ("memlens.gc", "gc_stats"),
       "start_gc_recording": ("memlens.gc", "start_gc_recording"),
       "stop_gc_recording": ("memlens.gc", "stop_gc_recording"),
       "load_ipython_extension": ("memlens.magics", "load_ipython_extension")}


def run(code):
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_loads_only_the_package_and_engine():
    new = run("import sys; before = set(sys.modules); import memlens; "
              "print(' '.join(sorted(set(sys.modules) - before)))").split()
    # the engine loads with the package, as before (see __init__.py)
    assert new == ["memlens", "memlens._engine"]


def test_dir_is_unchanged():
    got = run("import memlens; print(' '.join(dir(memlens)))").split()
    assert got == DIR_BEFORE


@pytest.mark.parametrize("first", ["attribute", "submodule"])
def test_each_name_is_its_submodules_object(first):
    # "submodule": every submodule imported before the package's attribute is
    # read (the import system then sets memlens.heap to the module memlens.heap)
    code = """
import importlib, sys
import memlens
api = %r
if %r == "submodule":
    for mod, _ in api.values():
        importlib.import_module(mod)
for name, (mod, attr) in sorted(api.items()):
    assert getattr(memlens, name) is getattr(sys.modules[mod], attr), name
from memlens import heap, why, profile, gc, rssparts
assert callable(heap) and callable(why) and callable(profile), (heap, why, profile)
assert gc is sys.modules["memlens.gc"] and rssparts is sys.modules["memlens.rssparts"]
assert memlens.gc.cycles is memlens.cycles
assert type(memlens.heap()).__name__ == "Snapshot"
try:
    memlens.no_such_name
except AttributeError as exc:
    assert "no_such_name" in str(exc)
else:
    raise AssertionError("no AttributeError")
print("ok")
""" % (API, first)
    assert run(code).strip() == "ok"

"""The garbage collector in captures: GC_START/GC_STOP records (format v2),
the `memlens gc` report, and what `memlens run` records of real collections.

Ground truth: programs that make cycles of known types at known lines, with
the collector disabled and collected by hand, so each collection frees
exactly what the program made garbage (docs/GC.md)."""
import gc
import json
import pathlib
import subprocess
import sys

import pytest

from capfile import Capture, OBJ, MEM, TYPEF_BUFFER
from conftest import memlens, report
from memlens import _engine

GOLDEN = pathlib.Path(__file__).parent / "golden"
# memlens run records collections by default (free lists on); --exact too
GC_OPTS = ()


def gc_scenario():
    """tests/c/gen_golden.c's v2-gc scenario, through capfile (from the spec)."""
    cap = Capture(version=2)
    cap.thread_def(1, 4242, "MainThread")
    cap.switch_thread(1)
    cap.code_def("demo.py", "<module>", 1, [(0, 1), (10, 3)])
    cap.frame_def(0, 1, 12)
    cap.type_def("Node")
    cap.type_def("<PyMem buffer>", TYPEF_BUFFER)
    cap.time(100)
    cap.alloc(1, 1, 56, OBJ)
    cap.alloc(1, 1, 56, OBJ)
    cap.alloc(1, 2, 32, MEM)
    cap.gc_start(2, 150, 1)
    cap.free(1)
    cap.free(3)
    cap.thread_def(2, 4243, "worker")
    cap.switch_thread(2)
    cap.free(2)
    cap.switch_thread(1)
    cap.gc_stop(2, 400, 2, 0)
    cap.gc_start(0, 500, 0)
    cap.gc_stop(0, 520, 0, 1)
    cap.trailer([3, 3, 0, 0, 0])
    return cap


def test_golden_gc_bytes_and_events():
    cap = gc_scenario()
    assert cap.data() == (GOLDEN / "v2-gc.mlens").read_bytes()
    got = _engine.read_events(str(GOLDEN / "v2-gc.mlens"))
    assert got["events"] == cap.events
    assert got["truncated"] is False


def test_gc_report_on_golden():
    d = json.loads(memlens("gc", str(GOLDEN / "v2-gc.mlens"), "--json").stdout)
    assert d["capture"]["truncated"] is False
    assert d["has_records"] is True
    assert d["collections"] == 2 and d["incomplete"] == 0
    gens = {g["generation"]: g for g in d["generations"]}
    assert gens[2]["collections"] == 1 and gens[2]["collected"] == 2
    assert gens[0]["collections"] == 1 and gens[0]["uncollectable"] == 1
    assert d["pauses"]["count"] == 2
    assert d["pauses"]["total_s"] == pytest.approx(270e-6)
    assert d["pauses"]["max_s"] == pytest.approx(250e-6)
    assert d["pauses"]["p50_s"] == pytest.approx(20e-6)
    assert d["uncollectable"] == 1
    # the collector freed block 1 (Node) and block 3 (buffer) on thread 1;
    # block 2 was freed by thread 2 meanwhile: not the collector's
    assert d["garbage_bytes"] == 56 + 32 and d["garbage_blocks"] == 2
    rows = {(r["type"], r["line"]): (r["count"], r["bytes"]) for r in d["garbage"]}
    assert rows == {("Node", 3): (1, 56), ("<PyMem buffer>", 3): (1, 32)}
    longest = d["longest"]
    assert [c["pause_s"] for c in longest] == pytest.approx([250e-6, 20e-6])
    assert longest[0]["site"] == {"function": "<module>", "file": "demo.py", "line": 3}
    assert longest[0]["freed_blocks"] == 2


def test_gc_records_are_corrupt_in_a_v1_file(tmp_path):
    cap = gc_scenario()
    cap.version = 1
    path = tmp_path / "v1gc.mlens"
    path.write_bytes(cap.data())
    r = memlens("gc", str(path))
    assert r.returncode == 2
    assert "record tag 0x0e is not in format version 1" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_gc_record_with_impossible_generation(tmp_path):
    cap = Capture(version=2)
    cap.gc_start(99, 10)
    cap.trailer([0, 0, 0, 0, 0])
    path = tmp_path / "bad.mlens"
    path.write_bytes(cap.data())
    r = memlens("gc", str(path), "--json")
    assert r.returncode == 2 and "GC_START of generation 99" in r.stderr
    assert "Traceback" not in r.stderr


def test_gc_start_with_undefined_stack(tmp_path):
    cap = Capture(version=2)
    cap.gc_start(0, 10, 7)
    path = tmp_path / "bad.mlens"
    path.write_bytes(cap.data())
    r = memlens("gc", str(path))
    assert r.returncode == 2 and "GC_START with undefined stack 7" in r.stderr


def test_start_without_stop_is_incomplete(tmp_path):
    cap = Capture(version=2)
    cap.gc_start(1, 10)
    cap.gc_start(2, 20)
    cap.gc_stop(2, 50, 4)
    cap.gc_start(0, 60)   # the program was killed in a collection
    path = tmp_path / "inc.mlens"
    path.write_bytes(cap.data())
    d = json.loads(memlens("gc", str(path), "--json").stdout)
    assert d["capture"]["truncated"] is True
    assert d["collections"] == 1 and d["incomplete"] == 2
    assert d["pauses"]["count"] == 1 and d["pauses"]["total_s"] == pytest.approx(30e-6)


def test_v1_capture_has_no_gc_records():
    r = memlens("gc", str(GOLDEN / "v1-basic.mlens"))
    assert r.returncode == 0 and "no collections recorded" in r.stdout
    d = json.loads(memlens("gc", str(GOLDEN / "v1-basic.mlens"), "--json").stdout)
    assert d["has_records"] is False and d["collections"] == 0 and d["garbage"] == []


# ---- real programs under `memlens run` ----

CYCLES = """\
import gc

class Node:
    def __init__(self):
        self.me = self

class Parent:
    def __init__(self):
        self.children = []

class Child:
    def __init__(self, parent):
        self.parent = parent

class WithDel:
    def __init__(self):
        self.me = self
    def __del__(self):
        pass

def make_closure():
    def inner():                                # @closure
        return inner
    return inner

gc.disable()
gc.collect()
for _ in range(100):
    Node()                                      # @self
for _ in range(10):
    p = Parent()                                # @parent
    p.children.append(Child(p))                 # @child
del p
for _ in range(7):
    make_closure()
for _ in range(5):
    WithDel()                                   # @del
kept = Node()                                   # @kept
held = Node()                                   # @released
print("first", gc.collect())                    # @collect1
del held
print("second", gc.collect())                   # @collect2
"""


def garbage_of(rows, script, tag, type_suffix):
    return [r for r in rows if r["file"] == script.path and r["line"] == script.line(tag)
            and r["type"].split(".")[-1] == type_suffix]


def test_collector_garbage_by_type_and_line(script, capture):
    s = script(CYCLES)
    plain = subprocess.run([sys.executable, s.path], capture_output=True, text=True)
    cap, proc = capture(s, opts=GC_OPTS)
    assert proc.stdout == plain.stdout  # the program is unchanged
    first, second = int(plain.stdout.split()[1]), int(plain.stdout.split()[3])
    assert second == (1 if sys.version_info >= (3, 11) else 2)  # 3.10: and its __dict__
    d = report("gc", cap, "--top", "0")
    assert d["has_records"] is True and d["incomplete"] == 0
    rows = d["garbage"]

    def count(tag, t):
        found = garbage_of(rows, s, tag, t)
        return sum(r["count"] for r in found)

    assert count("self", "Node") == 100
    assert count("parent", "Parent") == 10
    assert count("child", "Child") == 10
    assert count("closure", "function") == 7
    assert count("del", "WithDel") == 5
    assert count("released", "Node") == 1     # garbage once its one reference went
    assert count("kept", "Node") == 0         # still referenced: never garbage
    # the two collections the program made by hand, in order, with pauses
    full = [g for g in d["generations"] if g["generation"] == 2][0]
    assert full["collections"] >= 3           # the program's three gc.collect() calls
    assert d["pauses"]["count"] >= 3 and d["pauses"]["max_s"] > 0
    firsts = [c for c in d["longest"] if c["site"]["line"] == s.line("collect1")]
    seconds = [c for c in d["longest"] if c["site"]["line"] == s.line("collect2")]
    assert len(firsts) == 1 and len(seconds) == 1
    assert firsts[0]["collected"] == first and seconds[0]["collected"] == second
    assert firsts[0]["time_s"] + firsts[0]["pause_s"] <= seconds[0]["time_s"]
    assert firsts[0]["generation"] == 2 and firsts[0]["site"]["function"] == "<module>"


def test_pauses_ordered_in_time(script, capture):
    s = script("""\
        import gc
        class A:
            def __init__(self):
                self.a = self
        for i in range(20):
            junk = [A() for _ in range(200)]
            del junk
            gc.collect(i % 3)
        print("done")
    """)
    cap, proc = capture(s, opts=GC_OPTS)
    events = _engine.read_events(cap)["events"]
    gcs = [e for e in events if e["kind"] in ("gc_start", "gc_stop")]
    mine = gcs[-40:]  # the program's 20 collections are the last ones
    assert [e["kind"] for e in mine] == ["gc_start", "gc_stop"] * 20
    assert [e["generation"] for e in mine[::2]] == [i % 3 for i in range(20)]
    times = [e["time_us"] for e in mine]
    assert times == sorted(times)
    stops = [e for e in mine if e["kind"] == "gc_stop"]
    assert all(e["collected"] >= 200 for e in stops)


def test_program_callbacks_unchanged(script, capture):
    """The program's own callbacks run and see the same phases and info; a
    program that clears gc.callbacks does not break the capture."""
    s = script("""\
        import gc
        seen = []
        def cb(phase, info):
            seen.append((phase, info["generation"], info["collected"], info["uncollectable"]))
        gc.callbacks.append(cb)
        class A:
            def __init__(self):
                self.a = self
        gc.disable()
        for _ in range(30):
            A()
        gc.collect()
        print(seen[-2:])
        print([c.__name__ for c in gc.callbacks if c is cb])
        gc.callbacks.remove(cb)
        gc.callbacks.clear()
        for _ in range(5):
            A()
        print(gc.collect())
    """)
    plain = subprocess.run([sys.executable, s.path], capture_output=True, text=True)
    assert plain.returncode == 0
    cap, proc = capture(s, opts=GC_OPTS)
    assert proc.stdout == plain.stdout
    d = report("gc", cap)
    assert d["truncated"] is False
    # the collection after gc.callbacks.clear() is not seen; the one before is
    assert any(c["collected"] >= 30 for c in d["longest"])
    assert all(c["collected"] != 5 for c in d["longest"])


def test_gc_callbacks_left_as_the_program_left_them(script, capture):
    s = script("""\
        import atexit, gc
        def mine(phase, info):
            pass
        gc.callbacks.append(mine)
        def at_end():
            print(len(gc.callbacks), gc.callbacks[-1] is mine)
        atexit.register(at_end)
    """)
    plain = subprocess.run([sys.executable, s.path], capture_output=True, text=True)
    cap, proc = capture(s, opts=GC_OPTS)
    assert plain.stdout == "1 True\n"
    assert proc.stdout == plain.stdout


def test_the_recorders_are_not_the_programs_objects(script, capture, tmp_path):
    """The two recorders are made when memlens is imported, in every run, and
    are not on the GC lists: a run that records collections starts the
    program with the same collector count as one that does not
    (MEMLENS_NO_GC_RECORD), and the program's gc.get_objects() does not hold
    them. Before, they were made when recording began: 2 more in the
    youngest generation's count (the program's collections came 2
    allocations earlier), and 2 builtin functions in gc.get_objects()."""
    s = script("""\
        import gc
        count = gc.get_count()[0]
        names = ("memlens_gc_recorder", "memlens_gc_start_recorder", "memlens_gc_stop_recorder")
        mine = sum(1 for o in gc.get_objects() if getattr(o, "__name__", None) in names)
        listed = sum(1 for c in gc.callbacks if getattr(c, "__name__", None) in names)
        print(count, mine, listed, [gc.is_tracked(c) for c in gc.callbacks])
    """)
    _, rec = capture(s, opts=("--no-heap-at-exit",))
    out = str(tmp_path / "norec.mlens")
    norec = memlens("run", "-q", "--no-heap-at-exit", "-o", out, s.path, env={"MEMLENS_NO_GC_RECORD": "1"})
    assert norec.returncode == 0, norec.stderr
    count, mine, listed, tracked = rec.stdout.split(" ", 3)
    assert (mine, listed, tracked) == ("0", "1", "[False]\n")  # recording (one: the list was empty), off the GC lists
    assert norec.stdout == "%s 0 0 []\n" % count                     # the same count without


def test_gc_freeze_program(script, capture):
    """gc.freeze(): frozen cycles are never the collector's garbage."""
    s = script("""\
        import gc
        class F:
            def __init__(self):
                self.f = self
        gc.disable()
        frozen = [F() for _ in range(40)]            # @frozen
        gc.freeze()
        del frozen
        young = [F() for _ in range(25)]             # @young
        del young
        print(gc.collect())
        gc.unfreeze()
        print(gc.collect())
    """)
    plain = subprocess.run([sys.executable, s.path], capture_output=True, text=True)
    cap, proc = capture(s, opts=GC_OPTS)
    assert proc.stdout == plain.stdout
    rows = report("gc", cap, "--top", "0")["garbage"]
    assert sum(r["count"] for r in garbage_of(rows, s, "young", "F")) == 25
    # the 40 frozen ones are garbage only after unfreeze (second collection)
    assert sum(r["count"] for r in garbage_of(rows, s, "frozen", "F")) == 40
    events = _engine.read_events(cap)["events"]
    stops = [e["collected"] for e in events if e["kind"] == "gc_stop"]
    assert [int(x) for x in plain.stdout.split()] == stops[-2:]


def test_gc_text_report(script, capture):
    s = script(CYCLES)
    cap, _ = capture(s, opts=GC_OPTS)
    r = memlens("gc", cap, "--top", "5")
    assert r.returncode == 0, r.stderr
    assert "pauses:" in r.stdout and "cyclic garbage freed by the collector" in r.stdout
    assert "Node" in r.stdout


def test_summary_gc_line(script, capture):
    s = script(CYCLES)
    cap, _ = capture(s, opts=GC_OPTS)
    g = report("gc", cap, "--top", "0")
    d = report("summary", cap)
    assert d["gc"]["collections"] == g["collections"]
    assert d["gc"]["freed_bytes"] == g["garbage_bytes"]
    assert d["gc"]["freed_blocks"] == g["garbage_blocks"]
    assert d["gc"]["pause_s"] == pytest.approx(g["pauses"]["total_s"])
    r = memlens("summary", cap)
    assert "garbage collector" in r.stdout and "memlens gc" in r.stdout
    # a capture without GC records: null, and no line
    golden = str(GOLDEN / "v1-basic.mlens")
    assert report("summary", golden)["gc"] is None
    assert "garbage collector" not in memlens("summary", golden).stdout


def test_recorded_by_default_without_moving_program_dicts(script, capture):
    """Default mode (free lists on) records collections, and the callbacks'
    info dicts (two per collection, made at the line that triggered it)
    never end up counted as the program's: 3000 dicts and their keys kept
    at @dicts are all alive there, while collections are triggered at @nodes
    too. Before (recording on, info dicts freed onto the free lists), each
    collection triggered at @nodes moved up to two of the @dicts dicts (and
    keys) to @nodes, with no bound. --exact records the same way."""
    s = script("""
        import gc
        class Node:
            pass
        keep = []
        gc.collect()  # empty free lists: every dict below is made by the allocator
        for i in range(3000):
            keep.append(Node())  # @nodes
            keep.append({"k": i})  # @dicts
        print(len(keep))
    """)
    # the keys tables as the allocator typed them ("<dict keys>"): the heap at
    # exit would name them by owner ("dict (keys)", tests/test_heap_at_exit.py)
    for opts in (("--no-heap-at-exit",), ("--exact", "--no-heap-at-exit")):
        cap, proc = capture(s, opts=opts)
        assert proc.stdout.strip() == "6000"
        data = json.loads(memlens("gc", cap, "--json").stdout)
        assert data["collections"] >= 2, opts  # 3.13: generation 0 threshold 2000
        leaks = report("leaks", cap, "--top", "0")
        at = {}
        for r in leaks:
            if r["file"] == s.path:
                at[(r["line"], r["type"])] = at.get((r["line"], r["type"]), 0) + r["count"]
        assert at.get((s.line("dicts"), "dict")) == 3000, opts
        assert at.get((s.line("dicts"), "<dict keys>")) == 3000, opts
        assert not at.get((s.line("nodes"), "dict")) and not at.get((s.line("nodes"), "<dict keys>")), opts
        assert at.get((s.line("nodes"), "__main__.Node")) == 3000, opts


def _allocs_by_type(cap):
    return {r["type"]: r["allocs"] for r in report("types", cap, "--top", "0")}


def test_the_recorders_blocks_are_not_in_the_capture(script, capture, tmp_path):
    """CPython makes an info dict (its keys table, three key strs, the
    values) for every call of gc.callbacks, and on 3.10/3.11 a phase str per
    call, only because memlens put its two recorders there: none of it is in
    the capture. 400 collections of an empty youngest generation: the dicts,
    keys tables, strs and ints allocated are the same as in a capture made
    without the recorders (MEMLENS_NO_GC_RECORD). 3.12+ make the phase str of
    each collection with or without callbacks (the program's, recorded in both):
    2 strs per collection there. Before, the recorded capture had ~400 x 2
    more dicts and keys tables and ~400 x 6-8 more strs."""
    s = script("""
        import gc
        gc.disable()
        for i in range(400):
            gc.collect(0)  # @collect
    """)
    cap, _ = capture(s, opts=("--no-heap-at-exit",))
    assert json.loads(memlens("gc", cap, "--json").stdout)["collections"] >= 400
    out = str(tmp_path / "norec.mlens")
    proc = memlens("run", "-q", "--no-heap-at-exit", "-o", out, s.path, env={"MEMLENS_NO_GC_RECORD": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "collections" not in json.loads(memlens("gc", out, "--json").stdout) or \
        not json.loads(memlens("gc", out, "--json").stdout)["collections"]
    rec, plain = _allocs_by_type(cap), _allocs_by_type(out)
    for t in ("dict", "<dict keys>", "str", "int", "tuple"):
        assert rec.get(t, 0) == plain.get(t, 0), (t, rec.get(t), plain.get(t))
    phase_strs = 2 * 400 if sys.version_info >= (3, 12) else 0
    assert phase_strs <= rec.get("str", 0) < phase_strs + 50, rec.get("str")
    assert rec.get("dict", 0) < 20, rec.get("dict")


def test_info_dicts_the_program_keeps_are_recorded(script, capture):
    """With a callback of the program in gc.callbacks, CPython would make the
    info dicts without memlens too: they are the program's. This one keeps
    them: 2 per collection, alive at exit at the line of the collection."""
    s = script("""
        import gc
        kept = []
        gc.collect()  # empty free lists: every info dict is made by the allocator
        gc.callbacks.append(lambda phase, info: kept.append(info))
        gc.disable()
        for i in range(100):
            gc.collect(0)  # @collect
        print(len(kept))
    """)
    cap, proc = capture(s, opts=("--no-heap-at-exit",))
    assert proc.stdout.strip() == "200"
    at = {}
    for r in report("leaks", cap, "--top", "0"):
        if r["file"] == s.path:
            at[(r["line"], r["type"])] = at.get((r["line"], r["type"]), 0) + r["count"]
    assert at.get((s.line("collect"), "dict")) == 200, at

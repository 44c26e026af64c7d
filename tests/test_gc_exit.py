"""Garbage at exit (GARBAGE_AT_EXIT, format v2): `memlens run` writes, when
the program ends, the blocks a full collection would have freed, and
`memlens leaks` splits each (site, type) group into that garbage and what
was still referenced (docs/GC.md "Garbage at exit").

Ground truth: programs that run with the collector disabled, so every cycle
they drop stays as garbage until the end, made at known lines."""
import json
import pathlib
import subprocess
import sys

from capfile import Capture, MEM, OBJ, TYPEF_BUFFER
from conftest import memlens, report
from memlens import _engine

GOLDEN = pathlib.Path(__file__).parent / "golden"

NODES = """
    import gc
    import sys
    gc.disable()


    class Node:
        def __init__(self):
            self.me = self
            self.name = "node %d" % id(self)


    KEEP = []


    def make_garbage():
        for i in range(40):
            Node()  # @garbage


    def make_kept():
        for i in range(25):
            KEEP.append(Node())  # @kept


    make_garbage()
    make_kept()
    print("made", len(KEEP))
    sys.exit(3)
"""


def _group(rows, type_, line):
    got = [r for r in rows if r["type"] == type_ and r["line"] == line]
    assert len(got) == 1, (type_, line, rows)
    return got[0]


def test_leaks_split_garbage_from_referenced(script, capture):
    prog = script(NODES)
    # --exact: with the free lists on, a dict or keys block parked by another
    # line can come back as a garbage node's (3.10: the class body's keys)
    path, proc = capture(prog, expect_status=3, opts=("--exact",))
    assert proc.stdout == "made 25\n"  # the program's output and status as under python
    doc = json.loads(memlens("leaks", path, "--json", "--top", "0").stdout)
    rows = doc["leaks"]
    garbage = _group(rows, "__main__.Node", prog.line("garbage"))
    kept = _group(rows, "__main__.Node", prog.line("kept"))
    assert (garbage["count"], garbage["garbage_blocks"]) == (40, 40)
    assert garbage["garbage_bytes"] == garbage["bytes"]
    assert (kept["count"], kept["garbage_blocks"], kept["garbage_bytes"]) == (25, 0, 0)
    # the names (str, untracked) that only the garbage holds are garbage too;
    # the kept nodes' names are not
    init = "Node.__init__" if sys.version_info >= (3, 11) else "__init__"  # co_qualname: 3.11+
    names = [r for r in rows if r["type"] == "str" and r["function"] == init]
    assert sum(r["garbage_blocks"] for r in names) == 40
    assert sum(r["count"] - r["garbage_blocks"] for r in names) == 25
    total = doc["garbage_at_exit"]
    assert total["blocks"] == sum(r["garbage_blocks"] for r in rows)
    assert total["bytes"] == sum(r["garbage_bytes"] for r in rows)
    # every garbage block is at one of the garbage nodes' lines
    assert {r["function"] for r in rows if r["garbage_blocks"]} <= {"make_garbage", init}


def test_leaks_text_shows_the_split(script, capture):
    prog = script(NODES)
    path, _ = capture(prog, expect_status=3)
    out = memlens("leaks", path).stdout
    assert "Garbage not yet collected at exit*" in out
    section = out.split("Garbage not yet collected at exit*", 1)[1]
    # the Node row itself (its values arrays read "__main__.Node (values)")
    line = [l for l in section.splitlines() if l.split()[4:6] == ["__main__.Node", "make_garbage"]]
    assert len(line) == 1 and ":%d" % prog.line("garbage") in line[0], section
    assert line[0].split()[2:4] == ["40", "0"]  # "2.2 KiB", garbage blocks, referenced blocks
    assert "a gc.collect() would have freed them" in section


def test_no_gc_at_exit(script, capture):
    prog = script(NODES)
    path, proc = capture(prog, opts=("--no-gc-at-exit",), expect_status=3)
    assert proc.stdout == "made 25\n"
    doc = json.loads(memlens("leaks", path, "--json").stdout)
    assert doc["garbage_at_exit"] is None
    assert _group(doc["leaks"], "__main__.Node", prog.line("garbage"))["count"] == 40


def test_no_cycles_no_garbage(script, capture):
    prog = script("""
        import gc
        gc.disable()
        KEEP = [bytearray(100) for _ in range(30)]  # @kept
        tmp = [object() for _ in range(10)]
        del tmp
        print("ok")
    """)
    path, proc = capture(prog)
    assert proc.stdout == "ok\n"
    doc = json.loads(memlens("leaks", path, "--json").stdout)
    assert doc["garbage_at_exit"] == {"bytes": 0, "blocks": 0}
    assert all(r["garbage_blocks"] == 0 for r in doc["leaks"])
    assert _group(doc["leaks"], "bytearray", prog.line("kept"))["count"] == 30
    assert "No garbage at exit" in memlens("leaks", path).stdout


def test_garbage_freed_by_a_collection_is_not_reported(script, capture):
    """A program that collects its cycles itself leaves none at the end."""
    prog = script("""
        import gc
        gc.disable()
        class Node:
            def __init__(self):
                self.me = self
        for i in range(40):
            Node()
        print(gc.collect() >= 40)
    """)
    path, proc = capture(prog)
    assert proc.stdout == "True\n"
    doc = json.loads(memlens("leaks", path, "--json").stdout)
    assert doc["garbage_at_exit"]["blocks"] == 0
    assert not any(r["type"] == "__main__.Node" for r in doc["leaks"])


def test_capture_without_the_record_still_reads():
    """v2-gc.mlens has no GARBAGE_AT_EXIT record: the split is absent (None), not 0."""
    doc = json.loads(memlens("leaks", str(GOLDEN / "v2-gc.mlens"), "--json").stdout)
    assert doc["garbage_at_exit"] is None
    assert all("garbage_blocks" not in r for r in doc["leaks"])
    assert "Garbage not yet" not in memlens("leaks", str(GOLDEN / "v2-gc.mlens")).stdout


def gc_exit_scenario():
    """tests/c/gen_golden.c's v2-gc-exit scenario, through capfile (from the spec)."""
    cap = Capture(version=2)
    cap.thread_def(1, 4242, "MainThread")
    cap.switch_thread(1)
    cap.code_def("demo.py", "<module>", 1, [(0, 1), (10, 3)])
    cap.frame_def(0, 1, 12)
    cap.frame_def(0, 1, 2)
    cap.type_def("Node")
    cap.type_def("<PyMem buffer>", TYPEF_BUFFER)
    cap.time(100)
    cap.alloc(1, 1, 56, OBJ)
    cap.alloc(1, 1, 56, OBJ)
    cap.alloc(1, 2, 32, MEM)
    cap.alloc(2, 1, 64, OBJ)
    cap.gc_start(2, 150, 1)
    cap.gc_seqs("uncollectable", [2, 3])
    cap.gc_stop(2, 300, 2, 2)
    cap.time(400)
    cap.gc_seqs("garbage_at_exit", [1])
    cap.gc_seqs("garbage_at_exit", [3])
    cap.trailer([4, 0, 0, 0, 0])
    return cap


def test_golden_bytes_and_events():
    cap = gc_exit_scenario()
    assert cap.data() == (GOLDEN / "v2-gc-exit.mlens").read_bytes()
    got = _engine.read_events(str(GOLDEN / "v2-gc-exit.mlens"))
    assert got["events"] == cap.events


def test_leaks_on_golden():
    """Two GARBAGE_AT_EXIT records make one set: Node seq 1 (line 3) and the buffer."""
    doc = json.loads(memlens("leaks", str(GOLDEN / "v2-gc-exit.mlens"), "--json").stdout)
    rows = {(r["type"], r["line"]): r for r in doc["leaks"]}
    assert {k: (r["count"], r["garbage_blocks"], r["garbage_bytes"]) for k, r in rows.items()} == {
        ("Node", 3): (2, 1, 56), ("<PyMem buffer>", 3): (1, 1, 32), ("Node", 1): (1, 0, 0)}
    assert doc["garbage_at_exit"] == {"blocks": 2, "bytes": 88}


SAVEALL = """
    import gc
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)


    class Node:
        def __init__(self):
            self.me = self


    class Pair:
        def __init__(self):
            self.child = Child(self)  # @child


    class Child:
        def __init__(self, parent):
            self.parent = parent


    for i in range(30):
        Node()  # @nodes
    for i in range(12):
        Pair()  # @pairs
    KEPT = [Node() for i in range(5)]
    print(gc.collect(), len(gc.garbage))
    gc.set_debug(0)
"""


def test_gc_garbage_by_type_and_line(script, capture):
    """gc.DEBUG_SAVEALL: every object a collection finds goes into gc.garbage;
    `memlens gc` counts them by type and allocation line (UNCOLLECTABLE)."""
    prog = script(SAVEALL)
    plain = subprocess.run([sys.executable, prog.path], capture_output=True, text=True)
    path, proc = capture(prog, opts=("--exact",))
    assert proc.stdout == plain.stdout  # gc.collect() and gc.garbage as under python
    doc = json.loads(memlens("gc", path, "--json", "--top", "0").stdout)
    rows = {(r["type"], r["line"]): r["count"] for r in doc["gc_garbage"]["rows"]}
    assert rows[("__main__.Node", prog.line("nodes"))] == 30
    assert rows[("__main__.Pair", prog.line("pairs"))] == 12
    assert rows[("__main__.Child", prog.line("child"))] == 12
    assert not any(t == "__main__.Node" and line != prog.line("nodes") for t, line in rows)
    assert doc["gc_garbage"]["blocks"] == sum(r["count"] for r in doc["gc_garbage"]["rows"])
    out = memlens("gc", path).stdout
    assert "uncollectable (gc.garbage) by type and line" in out
    # collections (and gc.garbage) are recorded in default captures too
    path2, proc2 = capture(prog)
    assert proc2.stdout == plain.stdout
    doc2 = json.loads(memlens("gc", path2, "--json", "--top", "0").stdout)
    rows2 = {(r["type"], r["line"]): r["count"] for r in doc2["gc_garbage"]["rows"]}
    for key in (("__main__.Node", prog.line("nodes")), ("__main__.Pair", prog.line("pairs")),
                ("__main__.Child", prog.line("child"))):
        assert rows2[key] == rows[key]


def test_gc_report_on_golden_uncollectable():
    doc = json.loads(memlens("gc", str(GOLDEN / "v2-gc-exit.mlens"), "--json").stdout)
    assert doc["gc_garbage"] == {"bytes": 88, "blocks": 2, "groups": 2, "rows": [
        {"function": "<module>", "file": "demo.py", "line": 3, "type": "Node", "count": 1, "bytes": 56},
        {"function": "<module>", "file": "demo.py", "line": 3, "type": "<PyMem buffer>", "count": 1,
         "bytes": 32}]}

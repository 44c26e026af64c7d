"""The call tree (read_calltree, `memlens tree`): ground truth from known programs.

A known allocation made on a known path (main -> g -> f, 1000 Lesson objects at
a tagged line) must sit at exactly that path, with its type, count and bytes,
in every view that holds it."""
import json

import pytest

from conftest import memlens, report
from memlens import _engine

LESSONS = """
    import sys
    import threading

    class Lesson:
        __slots__ = ("n",)

        def __init__(self, n):
            self.n = n

    def f(n):
        out = []
        for i in range(n):
            out.append(Lesson(i))  # @make
        return out

    def g():
        return f(1000)  # @call_f

    def churn():
        for i in range(500):
            x = Lesson(i)  # @churn
            del x

    def main():
        keep = g()  # @call_g
        gone = g()  # @call_g2
        del gone
        churn()  # @call_churn
        t = threading.Thread(target=lambda: KEEP.append(f(300)), name="worker-7")  # @thread
        t.start()
        t.join()
        return keep

    KEEP = []
    KEEP.append(main())  # @call_main
"""


def frames_of(tree, node):
    """The path of a node from the outermost frame: [(function, line), ...]."""
    fr, nodes = tree["frames"], tree["nodes"]
    path = []
    while node > 0:
        i = nodes["frame"][node]
        path.append((fr["function"][i], fr["line"][i]))
        node = nodes["parent"][node]
    return path[::-1]


def entries(tree, view, type_name, tail):
    """(bytes, count, thread names) of the view's entries of a type whose
    path ends with `tail` ([(function, line), ...])."""
    v = tree["views"][view]
    out = []
    for node, t, th, b, c in zip(v["node"], v["type"], v["thread"], v["bytes"], v["count"]):
        if tree["types"][t] == type_name and frames_of(tree, node)[-len(tail):] == tail:
            out.append((b, c, tree["threads"]["name"][th]))
    return out


@pytest.fixture
def lessons(script, capture):
    prog = script(LESSONS)
    path, _ = capture(prog)
    return prog, path


def test_known_path_in_every_view(lessons):
    prog, path = lessons
    tree = _engine.read_calltree(path, ("peak", "end", "allocated", "temporary"))
    main_path = [("<module>", prog.line("call_main")), ("main", prog.line("call_g")),
                 ("g", prog.line("call_f")), ("f", prog.line("make"))]
    # the full path from the outermost frame, exactly
    for view in ("peak", "end", "allocated"):
        got = entries(tree, view, "__main__.Lesson", main_path)
        assert len(got) == 1, (view, got)
        b, c, thread = got[0]
        assert c == 1000 and b % 1000 == 0 and b >= 1000 * 16, (view, got)
    # the second g() call is freed: allocated, not at the end
    second = main_path[:1] + [("main", prog.line("call_g2"))] + main_path[2:]
    assert entries(tree, "allocated", "__main__.Lesson", second)[0][1] == 1000
    assert entries(tree, "end", "__main__.Lesson", second) == []
    # churn: each Lesson freed before the next allocation of the thread
    churn = [("<module>", prog.line("call_main")), ("main", prog.line("call_churn")),
             ("churn", prog.line("churn"))]
    (b, c, _), = entries(tree, "temporary", "__main__.Lesson", churn)
    assert c == 500
    assert entries(tree, "temporary", "__main__.Lesson", main_path) == []
    assert entries(tree, "end", "__main__.Lesson", churn) == []


def test_sums_equal_summary(lessons):
    _, path = lessons
    tree = _engine.read_calltree(path, ("peak", "end", "allocated"))
    summary = report("summary", path)
    assert sum(tree["views"]["peak"]["bytes"]) == tree["peak_bytes"] == summary["peak_bytes"]
    assert sum(tree["views"]["end"]["bytes"]) == tree["end_bytes"]
    assert sum(tree["views"]["allocated"]["bytes"]) == tree["allocated_bytes"]
    assert sum(tree["views"]["allocated"]["count"]) == tree["allocations"]


def test_threads_apart(lessons):
    """The worker thread's 300 Lessons are its own, under its own stack."""
    prog, path = lessons
    tree = _engine.read_calltree(path, "end")
    v = tree["views"]["end"]
    per_thread = {}
    for node, t, th, c in zip(v["node"], v["type"], v["thread"], v["count"]):
        path_ = frames_of(tree, node)
        if tree["types"][t] == "__main__.Lesson" and path_[-1] == ("f", prog.line("make")):
            per_thread[th] = (c, path_[0][0].rpartition(".")[2])
    assert sorted(per_thread.values()) == [(300, "_bootstrap"), (1000, "<module>")]
    assert len(tree["threads"]["id"]) == 2


def test_tree_command_text(lessons):
    """Piped text: the path main -> g -> f, one level deeper each, f naming the Lesson type."""
    prog, path = lessons
    proc = memlens("tree", path, "--view", "end", "--min-share", "0")
    assert proc.returncode == 0, proc.stderr
    want = [("<module>", "call_main"), ("main", "call_g"), ("g", "call_f"), ("f", "make")]
    at, indent = 0, -1
    for line in proc.stdout.splitlines()[1:]:
        func, tag = want[at]
        # columns: share (6), bytes (10), blocks (9), then the indented function
        body = line[6 + 1 + 10 + 1 + 9 + 2:]
        name = body.split()[0]
        if name == func and (":%d" % prog.line(tag)) in body:
            depth = len(body) - len(body.lstrip(" "))
            assert depth > indent, proc.stdout
            indent, at = depth, at + 1
            if at == len(want):
                assert "[__main__.Lesson" in line, line
                break
    assert at == len(want), proc.stdout


def test_tree_command_json(lessons):
    prog, path = lessons
    proc = memlens("tree", path, "--view", "allocated", "--json", "--min-share", "0")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["view"] == "allocated" and doc["capture"]["path"] == path
    nodes = doc["nodes"]
    f_nodes = [n for n in nodes if n["function"] == "f" and n["line"] == prog.line("make")]
    lessons_ = sorted(t["count"] for n in f_nodes for t in n["types"]
                      if t["type"] == "__main__.Lesson")
    assert lessons_ == [300, 1000, 1000]
    for n in f_nodes:  # parent chain leads to the root
        p = n["parent"]
        while p != -1:
            p = nodes[p]["parent"]
    assert doc["bytes"] == report("summary", path)["allocated_bytes"]


def test_tree_thread_and_errors(lessons):
    _, path = lessons
    tree = _engine.read_calltree(path, "end")
    worker = str(tree["threads"]["id"][1])
    proc = memlens("tree", path, "--view", "end", "--thread", worker, "--json", "--min-share", "0")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    counts = [t["count"] for n in doc["nodes"] if n["function"] == "f" for t in n["types"]
              if t["type"] == "__main__.Lesson"]
    assert counts == [300]
    for args in (["--view", "range"], ["--thread", "no-such-thread"], ["--range", "5:1"],
                 ["--view", "nope"]):
        proc = memlens("tree", path, *args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, args


def test_range_views(lessons):
    """At the end of the run, the range [end, end] is the end view; [0, end]
    reaches the global peak; range_new over the whole run is the end view."""
    _, path = lessons
    first = _engine.read_calltree(path, ("end", "peak"))
    end = first["duration_us"]
    t = _engine.read_calltree(path, ("range", "range_new", "end", "peak"), t0_us=0, t1_us=end)
    assert t["range"]["high_bytes"] == t["peak_bytes"]
    assert sorted(zip(t["views"]["range"]["node"], t["views"]["range"]["bytes"])) == \
        sorted(zip(t["views"]["peak"]["node"], t["views"]["peak"]["bytes"]))
    assert sum(t["views"]["range_new"]["bytes"]) == t["end_bytes"]
    late = _engine.read_calltree(path, ("range", "end"), t0_us=end + 1, t1_us=end + 1)
    assert sum(late["views"]["range"]["bytes"]) == late["end_bytes"]
    with pytest.raises(ValueError):
        _engine.read_calltree(path, "range")
    with pytest.raises(ValueError):
        _engine.read_calltree(path, "bogus")


def test_summary_stacks(lessons):
    prog, path = lessons
    proc = memlens("leaks", path, "--stacks", "--top", "1")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    i = text.index("#1 stack:")
    frames = [l.split()[0] for l in text[i:].splitlines()[1:5]]
    assert frames == ["f", "g", "main", "<module>"]
    proc = memlens("summary", path, "--stacks", "--top", "1")
    assert proc.returncode == 0 and "#1 stack:" in proc.stdout


# ---- exact semantics on a capture written by the independent encoder ----

def synthetic(tmp_path):
    """Thread 1: A1 (a, 100) and B1 (b, 50) at t=0; A1 freed at t=10; A2-A4 (a, 30 each)
    and B1 freed at t=20; B2 (b, 200: the global peak, 290) made and freed at t=30.
    Thread 2 at t=40: W (a, type U, 7) kept; X (b, 5) made, then freed by thread 1."""
    from capfile import Capture
    cap = Capture()
    cap.thread_def(1, 101, "main-thread")
    cap.thread_def(2, 102, "worker")
    cap.switch_thread(1)
    main = cap.site("app.py", "main", 1)
    a = cap.site("app.py", "a", 10, parent=main)
    b = cap.site("app.py", "b", 20, parent=main)
    t, u = cap.type_def("T"), cap.type_def("U")
    a1 = cap.alloc(a, t, 100)
    b1 = cap.alloc(b, t, 50)
    cap.time(10)
    cap.free(a1)
    cap.time(10)
    for _ in range(3):
        cap.alloc(a, t, 30)
    cap.free(b1)
    cap.time(10)
    cap.free(cap.alloc(b, t, 200))
    cap.time(10)
    cap.switch_thread(2)
    cap.alloc(a, u, 7)
    x = cap.alloc(b, t, 5)
    cap.switch_thread(1)
    cap.free(x)
    path = str(tmp_path / "synthetic.mlens")
    cap.save(path)
    return path


def values(tree, view):
    """{(innermost function, type, thread name): (bytes, count)}"""
    v = tree["views"][view]
    out = {}
    for node, t, th, b, c in zip(v["node"], v["type"], v["thread"], v["bytes"], v["count"]):
        fn = tree["frames"]["function"][tree["nodes"]["frame"][node]]
        out[(fn, tree["types"][t], tree["threads"]["name"][th])] = (b, c)
    return out


def test_synthetic_views(tmp_path):
    path = synthetic(tmp_path)
    tree = _engine.read_calltree(path, ("peak", "end", "allocated", "temporary"))
    assert tree["peak_bytes"] == 290 and tree["peak_time_us"] == 30
    assert values(tree, "peak") == {("a", "T", "main-thread"): (90, 3),
                                    ("b", "T", "main-thread"): (200, 1)}
    assert values(tree, "end") == {("a", "T", "main-thread"): (90, 3),
                                   ("a", "U", "worker"): (7, 1)}
    assert values(tree, "allocated") == {("a", "T", "main-thread"): (190, 4),
                                         ("b", "T", "main-thread"): (250, 2),
                                         ("a", "U", "worker"): (7, 1),
                                         ("b", "T", "worker"): (5, 1)}
    # N=1: only B2, freed before any other allocation; X is freed by another thread
    assert values(tree, "temporary") == {("b", "T", "main-thread"): (200, 1)}
    two = _engine.read_calltree(path, "temporary", temporary_n=2)
    assert values(two, "temporary") == {("b", "T", "main-thread"): (200, 1),
                                        ("a", "T", "main-thread"): (100, 1)}
    four = _engine.read_calltree(path, "temporary", temporary_n=4)
    assert values(four, "temporary") == {("b", "T", "main-thread"): (250, 2),
                                         ("a", "T", "main-thread"): (100, 1)}
    # the tree: main is the parent of a and b
    paths = {tuple(frames_of(tree, n)) for n in tree["views"]["allocated"]["node"]}
    assert paths == {(("main", 1), ("a", 10)), (("main", 1), ("b", 20))}


def test_synthetic_ranges(tmp_path):
    path = synthetic(tmp_path)
    # [5, 25]: the highest point is the state at t0 (150: A1 and B1)
    t = _engine.read_calltree(path, ("range", "range_new"), t0_us=5, t1_us=25)
    assert t["range"]["high_bytes"] == 150 and t["range"]["high_time_us"] == 5
    assert values(t, "range") == {("a", "T", "main-thread"): (100, 1),
                                  ("b", "T", "main-thread"): (50, 1)}
    assert values(t, "range_new") == {("a", "T", "main-thread"): (90, 3)}
    # [15, 25]: the heap climbs from 50 to 140 after A4
    t = _engine.read_calltree(path, "range", t0_us=15, t1_us=25)
    assert t["range"]["high_bytes"] == 140 and t["range"]["high_time_us"] == 20
    assert values(t, "range") == {("a", "T", "main-thread"): (90, 3),
                                  ("b", "T", "main-thread"): (50, 1)}
    # at T = 30 exactly: the state before the first event at 30 (90), then B2 (290)
    t = _engine.read_calltree(path, "range", t0_us=30, t1_us=30)
    assert t["range"]["high_bytes"] == 290


def test_corrupt_capture(tmp_path):
    path = synthetic(tmp_path)
    data = open(path, "rb").read()
    bad = tmp_path / "bad.mlens"
    bad.write_bytes(data[:-40] + b"\xff" * 40)
    proc = memlens("tree", str(bad))
    assert proc.returncode in (0, 2) and "Traceback" not in proc.stderr
    bad.write_bytes(data[:len(data) // 2])
    proc = memlens("tree", str(bad), "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["capture"]["truncated"] is True

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

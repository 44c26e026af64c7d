"""memlens.cycles() under `memlens run`: each group of garbage with the
lines that allocated it (docs/GC.md "memlens.cycles()").

Ground truth: a program that drops, with the collector off, 30
self-referencing Node made at one line, 20 Parent/Child pairs (each
referring to the other) made at a second line and one closure cycle (a
function that refers to itself through its cell) defined at a third, keeps
one more Node cycle referenced, and prints what cycles() says. Under
`memlens run` each group names exactly those lines with exactly those
counts, and never the kept Node's line; under plain python there is no
capture to read, so no line, and the result says why."""
import json
import os
import subprocess
import sys

import pytest

import memlens

PROG = """
    import gc
    import json
    import memlens

    gc.disable()


    class Node:
        def __init__(self):
            self.me = self


    class Child:
        pass


    class Parent:
        def __init__(self, child):
            self.child = child
            child.parent = self


    def make_nodes():
        for i in range(30):
            Node()  # @nodes


    def make_pairs():
        for i in range(20):
            Parent(Child())  # @pairs


    def make_closure():
        def inner():  # @closure
            return inner
        return inner


    make_nodes()
    make_pairs()
    make_closure()
    KEPT = Node()  # @kept
    c = memlens.cycles()
    nodes = [[n[0], s] for g in c for n, s in zip(g.nodes, g.node_sites) if n[0] == "__main__.Node"]
    print(json.dumps({"cycles": c.to_json(), "text": str(c), "node_sites": nodes,
                      "dot": [g.to_dot() for g in c]}))
"""


def _group_with(doc, type_name):
    got = [g for g in doc["groups"] if any(t["type"] == type_name for t in g["types"])]
    assert len(got) == 1, (type_name, doc["groups"])
    return got[0]


def _lines(group, type_name):
    """{line: count} of the group's sites for one type."""
    out = {}
    for s in group["sites"]:
        if s["type"] == type_name:
            out[s["line"]] = out.get(s["line"], 0) + s["count"]
    return out


def _types(group):
    return {t["type"]: t["objects"] for t in group["types"]}


@pytest.mark.parametrize("opts", [(), ("--exact",), ("--no-compress",)],
                         ids=["default", "exact", "raw-file"])
def test_cycles_name_the_lines_that_made_them(script, capture, opts):
    prog = script(PROG)
    _, proc = capture(prog, opts=opts)
    out = json.loads(proc.stdout)
    doc = out["cycles"]
    assert doc["lines"] is True and doc["lines_note"] is None
    path = prog.path

    nodes = _group_with(doc, "__main__.Node")
    assert _types(nodes)["__main__.Node"] == 30  # not the kept one
    assert _lines(nodes, "__main__.Node") == {prog.line("nodes"): 30}

    pairs = _group_with(doc, "__main__.Parent")
    assert _types(pairs)["__main__.Parent"] == 20 and _types(pairs)["__main__.Child"] == 20
    assert _lines(pairs, "__main__.Parent") == {prog.line("pairs"): 20}
    assert _lines(pairs, "__main__.Child") == {prog.line("pairs"): 20}

    closure = _group_with(doc, "function")
    assert _types(closure)["function"] == 1
    assert _lines(closure, "function") == {prog.line("closure"): 1}

    sites = [s for g in doc["groups"] for s in g["sites"]]
    # the kept cycle is not garbage: its line is nowhere
    assert not [s for s in sites if s["file"] == path and s["line"] == prog.line("kept")]
    # every site of the three groups is in the program (never memlens' own
    # frames); with the free lists on, a dict, tuple or cell CPython takes
    # from a free list keeps the line of its block's first allocation
    for g in (nodes, pairs, closure):
        files = {s["file"] for s in g["sites"]}
        assert files == {path} if "--exact" in opts else path in files, g["sites"]
    assert not [s for s in sites if os.sep + "memlens" + os.sep in s["file"]]
    # the counts of a group's rows never exceed its objects
    for g in doc["groups"]:
        assert sum(s["count"] for s in g["sites"]) <= g["objects"]

    # the text: "made at prog.py:N" for the groups
    assert "made at" in out["text"]
    assert "prog.py:%d" % prog.line("nodes") in out["text"]
    assert "prog.py:%d" % prog.line("pairs") in out["text"]
    # the example cycle's Node nodes carry their line, in the picture too
    assert out["node_sites"] and all(s and s["line"] == prog.line("nodes") for _, s in out["node_sites"])
    assert any("prog.py:%d" % prog.line("nodes") in d for d in out["dot"])


def test_without_a_capture_no_lines_and_says_why(script):
    prog = script(PROG)
    proc = subprocess.run([sys.executable, prog.path], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    doc = out["cycles"]
    assert doc["lines"] is False
    assert "memlens run" in doc["lines_note"]
    assert "memlens run" in out["text"] and "made at" not in out["text"]
    # the same groups, without sites
    assert _types(_group_with(doc, "__main__.Node"))["__main__.Node"] == 30
    assert _types(_group_with(doc, "__main__.Parent"))["__main__.Parent"] == 20
    assert all(g["sites"] == [] for g in doc["groups"])
    assert all(s is None for _, s in out["node_sites"])


def test_cycles_of_an_object_in_this_process_has_no_lines():
    """In the test process itself (no capture) cycles(obj) works as before."""
    a = []
    a.append(a)
    c = memlens.cycles(a)
    assert len(c) == 1 and c.lines is False
    assert c.groups[0].sites == []

"""memlens.cycles(), memlens.gc_stats(), memlens.start_gc_recording(): the
collector seen from inside the process.

Ground truth: cycles of known types made by the test with the collector
disabled; the unreachable set must hold exactly them, and what gc.collect()
then frees must be exactly what cycles() announced."""
import gc
import sys
import weakref
import xml.etree.ElementTree as ET

import pytest

import memlens


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


class Plain:
    pass


def make_closure():
    def inner():
        return inner
    return inner


@pytest.fixture(autouse=True)
def collector_off():
    """No collection may run behind the test's back; start from no garbage."""
    was = gc.isenabled()
    gc.disable()
    gc.collect()
    yield
    gc.collect()
    if was:
        gc.enable()


def ring(n):
    return [(i, (i + 1) % n) for i in range(n)]


def count(result, cls):
    """Unreachable objects of class cls (names are module-qualified)."""
    return sum(n for g in result for name, n, _ in g.types if name.split(".")[-1] == cls.__name__)


def test_exactly_the_unreachable_ones():
    for _ in range(100):
        Node()
    for _ in range(10):
        p = Parent()
        p.children.append(Child(p))
    del p
    for _ in range(7):
        make_closure()
    for _ in range(5):
        WithDel()
    kept = Node()                 # referenced from this frame: not garbage
    held = Parent()               # a cycle kept by one external reference
    held.children.append(Child(held))
    c = memlens.cycles()
    assert count(c, Node) == 100
    assert count(c, Parent) == 10 and count(c, Child) == 10
    assert count(c, WithDel) == 5
    closures = [g for g in c if any(label == "make_closure.<locals>.inner" for _, label, _ in g.nodes)]
    assert len(closures) == 1 and closures[0].islands == 7 and closures[0].count("function") == 7
    # the parent/child islands: one group of 10 islands with its lists
    pc = [g for g in c if any(n.endswith("Parent") for n in g.key)]
    assert len(pc) == 1 and pc[0].islands == 10 and pc[0].count("list") == 10
    # what the collector then frees is exactly what cycles() announced
    assert gc.collect() == c.objects
    assert kept.me is kept and held.children[0].parent is held
    # the external reference released: now that cycle is garbage
    del held
    c2 = memlens.cycles()
    assert count(c2, Parent) == 1 and count(c2, Child) == 1 and count(c2, Node) == 0
    assert gc.collect() == c2.objects


def test_touches_no_gc_state():
    """No collection, nothing freed, counts and generations unchanged."""
    for _ in range(20):
        Node()
    probe = Node()
    ref = weakref.ref(probe)
    del probe
    before_count, before_stats = gc.get_count(), gc.get_stats()
    c = memlens.cycles()
    assert count(c, Node) == 21
    assert ref() is not None          # still there: cycles() collected nothing
    assert gc.get_stats() == before_stats
    assert gc.get_count()[1:] == before_count[1:]
    assert gc.collect() == c.objects and ref() is None


def test_freeze_hides_frozen_cycles():
    frozen = [Node() for _ in range(30)]
    gc.freeze()
    try:
        del frozen
        young = [Node() for _ in range(4)]
        del young
        # a full collection would not look at the 30 frozen ones
        c = memlens.cycles()
        assert count(c, Node) == 4
        assert gc.collect() == c.objects
    finally:
        gc.unfreeze()
    assert count(memlens.cycles(), Node) == 30


def test_nothing_when_nothing_is_garbage():
    keep = [Node() for _ in range(5)]
    c = memlens.cycles()
    assert count(c, Node) == 0
    assert keep


def test_cycles_of_an_object():
    p = Parent()
    p.children.append(Child(p))
    c = memlens.cycles(p)
    assert len(c) == 1
    g = c.groups[0]
    assert g.count(g.types[0][0]) >= 1
    names = [n.split(".")[-1] for n in g.key]
    assert "Parent" in names and "Child" in names and "list" in names
    # the example cycle starts at p and goes round: Parent -> list -> Child -> Parent
    # (3.10: each instance through its __dict__)
    kinds = [n[0].split(".")[-1] for n in g.nodes]
    assert [k for k in kinds if k != "dict"] == ["Parent", "list", "Child"]
    assert kinds.count("dict") == (0 if sys.version_info >= (3, 11) else 2)
    assert g.edges == ring(len(kinds))
    assert len(memlens.cycles(Plain())) == 0      # in no cycle
    assert len(memlens.cycles(12345)) == 0        # not a GC object


def test_pictures():
    n = Node()
    g = memlens.cycles(n).groups[0]
    # a self reference (3.10: through the instance's __dict__)
    assert g.nodes[0][0].endswith("Node")
    assert g.edges == ([(0, 0)] if sys.version_info >= (3, 11) else ring(2))
    p = Parent()
    p.children.append(Child(p))
    g = memlens.cycles(p).groups[0]
    dot = g.to_dot()
    assert dot.startswith("digraph cycle {") and dot.count("->") == len(g.nodes)
    svg = ET.fromstring(g.to_svg())
    ns = "{http://www.w3.org/2000/svg}"
    assert svg.tag == ns + "svg"
    assert len(svg.findall(ns + "circle")) == len(g.nodes) == len(svg.findall(ns + "line"))
    labels = [t.text for t in svg.findall(ns + "text")]
    assert any(label.endswith("Parent") for label in labels)


def test_hostile_names_in_pictures():
    cls = type('<b>&"x\x1b', (), {"__init__": lambda self: setattr(self, "me", self)})
    obj = cls()
    g = memlens.cycles(obj).groups[0]
    svg = g.to_svg()
    ET.fromstring(svg)                            # still well-formed
    assert "<b>" not in svg and "\x1b" not in svg
    dot = g.to_dot()
    assert '<b>&\\"x\\\\x1b' in dot and "\x1b" not in dot


def test_gc_stats_counts_collections():
    before = list(gc.callbacks)
    memlens.start_gc_recording()
    try:
        assert len(gc.callbacks) == len(before) + (2 if before else 1)  # one alone, else around them
        s0 = memlens.gc_stats()
        got = []
        for i in range(3):
            Node()
            got.append(gc.collect())
        gc.collect(0)
        s = memlens.gc_stats()
    finally:
        memlens.stop_gc_recording()
    assert gc.callbacks == before                 # as the program had it
    full = s["generations"][2]["collections"] - s0["generations"][2]["collections"]
    young = s["generations"][0]["collections"] - s0["generations"][0]["collections"]
    assert full == 3 and young == 1
    assert got == ([1, 1, 1] if sys.version_info >= (3, 11) else [2, 2, 2])  # 3.10: and __dict__
    assert s["generations"][2]["collected"] - s0["generations"][2]["collected"] == sum(got)
    assert s["pauses"] - s0["pauses"] == 4
    assert 0 < s["pause_max_s"] <= s["pause_total_s"] and s["pause_p50_s"] <= s["pause_p99_s"]
    assert s["recording"] is True and memlens.gc_stats()["recording"] is False


def test_recorders_around_the_programs_callbacks():
    """With a callback of the program's already in gc.callbacks, two
    recorders go around it: the stop one first, the start one last, so the
    callback's time is outside the pauses (it takes 30 ms a call, measured
    here; a collection of the youngest generation takes microseconds). With the list
    empty, one recorder does both phases."""
    import time
    before = list(gc.callbacks)
    spent = []

    def slow(phase, info):
        t = time.perf_counter()
        while time.perf_counter() - t < 0.03:
            pass
        spent.append(time.perf_counter() - t)
    gc.callbacks[:] = []
    try:
        memlens.start_gc_recording()
        try:
            alone = [c.__name__ for c in gc.callbacks]
        finally:
            memlens.stop_gc_recording()
        gc.callbacks.append(slow)
        memlens.start_gc_recording()
        try:
            around = [getattr(c, "__name__", None) for c in gc.callbacks]
            s0 = memlens.gc_stats()
            for i in range(3):
                Node()
                gc.collect(0)
            s = memlens.gc_stats()
        finally:
            memlens.stop_gc_recording()
        assert gc.callbacks == [slow]
    finally:
        gc.callbacks[:] = before
    assert alone == ["memlens_gc_recorder"]
    assert around == ["memlens_gc_stop_recorder", "slow", "memlens_gc_start_recorder"]
    assert s["pauses"] - s0["pauses"] == 3 and len(spent) == 6 and min(spent) >= 0.03
    assert s["pause_total_s"] - s0["pause_total_s"] < 0.03   # 6 calls of the program's: 180 ms, outside


def test_recording_survives_a_cleared_callbacks_list():
    before = list(gc.callbacks)
    memlens.start_gc_recording()
    saved = list(gc.callbacks)
    gc.callbacks.clear()
    gc.collect()                                   # nothing to record, nothing breaks
    memlens.stop_gc_recording()
    assert gc.callbacks == []
    gc.callbacks.extend(x for x in saved if x in before)
    assert gc.callbacks == before

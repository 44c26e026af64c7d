"""memlens.why(), refs(), backrefs(), retained_size() and objgraph's helpers,
against ground truth built here: objects held through known chains of
named edges, weak references, closures, threads, C-held containers."""
import ctypes
import gc
import sys
import threading
import types
import weakref
import xml.dom.minidom

import pytest

import memlens
from memlens import _engine


class Lesson:
    def __init__(self, n):
        self.n = n


class Slotted:
    __slots__ = ("payload",)


class Bare:
    """No __dict__ and no attributes: its size is sys.getsizeof on every version."""
    __slots__ = ()


@pytest.fixture
def module():
    """A fresh module in sys.modules: its globals are a named root."""
    name = "memlens_whytest_mod"
    mod = types.ModuleType(name)
    sys.modules[name] = mod
    yield mod
    del sys.modules[name]


def _only(paths):
    assert len(paths) == 1, [(p.root, p.edges) for p in paths]
    return paths[0]


def test_known_chain_is_found_through_exactly_its_edges(module):
    module.CACHE = {"entries": [None, None, Lesson(7)]}
    p = _only(memlens.why(module.CACHE["entries"][2]).paths)
    assert p.root == "module memlens_whytest_mod"
    assert p.edges == [".CACHE", "['entries']", "[2]"]
    assert p.objects[1] is module.CACHE and p.objects[2] is module.CACHE["entries"]
    assert p.objects[-1] is module.CACHE["entries"][2]


def test_attribute_slot_and_class_attribute_edges(module):
    holder = Lesson(1)
    holder.child = Slotted()
    holder.child.payload = bytearray(10)
    module.HOLDER = holder

    class Registry:
        items = {}
    Registry.items[5] = ["x"]
    module.Registry = Registry
    p = _only(memlens.why(holder.child.payload).paths)
    assert p.edges == [".HOLDER", ".child", ".payload"]
    p = _only(memlens.why(Registry.items[5]).paths)
    assert p.edges == [".Registry", ".items", "[5]"]


def test_deque_items_and_a_deque_subclass(module):
    # a deque's referents are its items ("[i]": the index is not readable
    # without calling into Python); a subclass's attributes keep their names
    import collections

    class Ring(collections.deque):
        pass
    module.Q = collections.deque([Lesson(0), Lesson(1)], maxlen=10)
    module.R = Ring([Lesson(2)])
    module.R.label = bytearray(3)
    p = _only(memlens.why(module.Q[1]).paths)
    assert p.edges == [".Q", "[i]"]
    p = _only(memlens.why(module.R[0]).paths)
    assert p.edges == [".R", "[i]"]
    p = _only(memlens.why(module.R.label).paths)
    assert p.edges == [".R", ".label"]


def test_weak_references_are_never_paths(module):
    target = Lesson(3)
    module.REF = weakref.ref(target)
    module.WEAKDICT = weakref.WeakValueDictionary({"k": target})
    module.WEAKSET = weakref.WeakSet([target])
    r = memlens.why(target)
    # only the caller's local holds it, and the caller's frame is not a root
    assert r.paths == []
    assert "no path" in str(r)
    module.STRONG = [target]
    p = _only(memlens.why(target).paths)
    assert p.edges == [".STRONG", "[0]"]
    for o in p.objects:
        assert not isinstance(o, (weakref.ref, weakref.WeakValueDictionary, weakref.WeakSet))


def test_several_paths_through_different_referrers(module):
    target = Lesson(4)
    module.A = [target]

    class Cache:
        ENTRIES = [None, target]
    module.Cache = Cache

    def make():
        x = target

        def inner():
            return x
        return inner
    module.fn = make()
    paths = memlens.why(target, paths=3).paths
    got = sorted(tuple(p.edges) for p in paths)
    assert got == sorted([(".A", "[0]"), (".Cache", ".ENTRIES", "[1]"), (".fn", "closure cell 'x'")])
    assert len(memlens.why(target, paths=1).paths) == 1
    with pytest.raises(ValueError):
        memlens.why(target, paths=0)


def test_max_depth_limits_the_paths(module):
    module.DEEP = [[[[Lesson(5)]]]]
    target = module.DEEP[0][0][0][0]
    assert _only(memlens.why(target).paths).edges == [".DEEP", "[0]", "[0]", "[0]", "[0]"]
    assert memlens.why(target, max_depth=3).paths == []


def test_thread_frame_local_is_a_named_root():
    ready, stop = threading.Event(), threading.Event()
    box = []

    def worker():
        held = Lesson(6)
        box.append(id(held))
        ready.set()
        stop.wait()
        return held

    t = threading.Thread(target=worker, name="whyworker")
    t.start()
    try:
        assert ready.wait(30)
        target = next(o for o in memlens.by_type(Lesson) if id(o) == box[0])
        p = _only(memlens.why(target).paths)
        assert p.root.startswith("thread whyworker, frame worker() in ")
        assert p.root.endswith(", local 'held'")
        assert "test_why.py:" in p.root
        assert p.edges == []
        del target
    finally:
        stop.set()
        t.join()


def test_held_by_c_code_when_no_named_root_reaches():
    target = Lesson(8)
    box = [target]
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(box))  # a reference no object shows
    box_id = id(box)
    del box
    try:
        p = _only(memlens.why(target).paths)
        assert p.root == "held by C code"
        assert id(p.objects[0]) == box_id and p.edges == ["[0]"]
        del p
        assert box_id in {id(o) for o in memlens.get_leaking_objects()}
    finally:
        ctypes.pythonapi.Py_DecRef(ctypes.cast(box_id, ctypes.py_object))


def test_results_are_never_in_a_later_path_or_census(module):
    module.KEEP = [Bare()]
    first = memlens.why(module.KEEP[0])
    pictures = memlens.backrefs(module.KEEP[0])
    second = memlens.why(module.KEEP[0])
    assert [p.edges for p in second.paths] == [[".KEEP", "[0]"]]
    snap = memlens.heap(ids=False)
    for name in ("memlens.why.Why", "memlens.why.RefGraph", "memlens._engine.GraphHold"):
        assert snap.count_of(name) == 0, name
    # the holders' references do not make the path objects "held by C code":
    # the retained size of KEEP still includes its item
    assert memlens.retained_size(module.KEEP) == sys.getsizeof(module.KEEP) + sys.getsizeof(module.KEEP[0])
    del first, pictures


def _build_holder(module):
    shared = bytearray(500)
    module.OTHER = [shared]
    module.HOLDER = [[bytearray(1000) for _ in range(10)], shared]


def test_retained_size_equals_what_freeing_would_free(module):
    _build_holder(module)  # no local of this frame refers to the data (locals are roots)
    own = module.HOLDER[0]
    expected = sys.getsizeof(module.HOLDER) + sys.getsizeof(own) + sum(sys.getsizeof(b) for b in own)
    del own
    assert memlens.retained_size(module.HOLDER) == expected
    assert memlens.retained_size(module.HOLDER[1]) == sys.getsizeof(module.HOLDER[1])
    del module.OTHER  # now only HOLDER keeps the shared bytearray
    assert memlens.retained_size(module.HOLDER) == expected + sys.getsizeof(module.HOLDER[1])


def test_heap_retained_column_and_dominators(module):
    class WhyBig:
        __slots__ = ("blob",)
    module.BIG = [WhyBig() for _ in range(2000)]
    for o in module.BIG:
        o.blob = bytearray(4000)
    del o  # (locals are roots)
    snap = memlens.heap(ids=False, retained=True)
    name = _engine.type_name(WhyBig)
    per_object = sys.getsizeof(bytearray(4000)) + sys.getsizeof(module.BIG[0])
    assert snap.retained_of(name) == 2000 * per_object
    top = snap.dominators(3)
    assert top[0].name == "dict of module memlens_whytest_mod"
    assert top[0].accumulation is module.BIG
    holds = {n: c for n, c, _ in top[0].holds}
    assert holds["bytearray"] == 2000 and holds[name] == 2000
    suspects = snap.leak_suspects(threshold=0.10)
    assert suspects and suspects[0].object is top[0].object
    text = str(snap)
    assert "retained" in text.splitlines()[1]
    doc = snap.as_dict()
    assert doc["dominators"][0]["name"] == "dict of module memlens_whytest_mod"
    assert all("retained" in row for row in doc["types"])
    with pytest.raises(ValueError):
        memlens.heap(ids=False).dominators()


def test_refs_and_backrefs_pictures(module):
    module.TREE = {"<script>alert(1)</script>": [Lesson(i) for i in range(30)]}
    g = memlens.refs(module.TREE, depth=2, max_items=5)
    names = {e[2] for e in g.edges}
    assert "['<script>alert(1)</script>']" in names
    assert {"[0]", "[4]"} <= names and "[5]" not in names
    assert any("+25 more not shown" in n.lines for n in g._picture()[0])
    svg = g.to_svg()
    xml.dom.minidom.parseString(svg)  # well-formed
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert g._repr_svg_() == svg
    dot = g.to_dot()
    assert dot.startswith("digraph") and "->" in dot
    b = memlens.backrefs(module.TREE["<script>alert(1)</script>"][3], depth=3)
    roots = [n for n in b._nodes if n[2]]
    assert ("module memlens_whytest_mod",) == tuple(r[2] for r in roots)
    xml.dom.minidom.parseString(memlens.why(module.TREE).to_svg())


def test_count_by_type_leaking_and_backref_chain(module):
    class WhyCounted:
        pass
    module.ITEMS = [WhyCounted() for _ in range(37)]
    assert memlens.count(WhyCounted) == 37
    assert memlens.count(_engine.type_name(WhyCounted)) == 37
    assert memlens.count("WhyCounted") == 37
    found = memlens.by_type("WhyCounted")
    assert len(found) == 37 and {id(o) for o in found} == {id(o) for o in module.ITEMS}
    del found
    assert memlens.count("NoSuchTypeAnywhere") == 0
    target = module.ITEMS[5]
    chain = memlens.find_backref_chain(target, lambda o: o is module.__dict__)
    assert chain[0] is module.__dict__ and chain[1] is module.ITEMS and chain[-1] is target
    assert memlens.find_backref_chain(target, lambda o: False) == [target]


def test_why_prints_one_line_per_hop(module):
    module.KEEP = {"k": [Lesson(1)]}
    text = str(memlens.why(module.KEEP["k"][0]))
    lines = text.splitlines()
    assert lines[0].endswith("1 path from roots")
    assert lines[1].startswith("path 1: module memlens_whytest_mod")
    assert [ln.split()[0] for ln in lines[2:]] == [".KEEP", "['k']", "[0]"]


def test_hostile_names_are_escaped_on_the_terminal(module):
    module.__dict__["\x1b[31mred"] = [Lesson(2)]
    text = str(memlens.why(module.__dict__["\x1b[31mred"][0]))
    assert "\x1b" not in text and "\\x1b" in text

"""Dominators and retained sizes (csrc/graph/dominators.c): against a
brute force (remove a node, see what becomes unreachable) on random
graphs and on random graphs of real objects, on graphs with what no root
reaches, and on real heaps against guppy3's .domisize."""
import random
import sys
import types

import pytest

import memlens
from memlens import _engine


def _reach(n, succ, roots, removed=None):
    seen = [False] * n
    stack = [r for r in roots if r != removed]
    for r in stack:
        seen[r] = True
    while stack:
        v = stack.pop()
        for w in succ[v]:
            if w != removed and not seen[w]:
                seen[w] = True
                stack.append(w)
    return seen


def _brute(n, edges, roots):
    """retained[d] = 1 + the nodes reachable before and not after removing d
    (every node reachable from the roots; sizes are 1 each)."""
    succ = [[] for _ in range(n)]
    for a, b in edges:
        succ[a].append(b)
    base = _reach(n, succ, roots)
    assert all(base)
    retained = []
    for d in range(n):
        after = _reach(n, succ, roots, removed=d)
        retained.append(sum(1 for v in range(n) if not after[v]))
    return retained


def _random_graph(rng, n, extra):
    """A random spanning tree from a few roots (so all is reachable), then
    `extra` random edges (cycles, shortcuts, self loops, duplicates)."""
    nroots = rng.randint(1, 3)
    roots = list(range(nroots))
    edges = []
    for v in range(nroots, n):
        edges.append((rng.randrange(0, v), v))
    for _ in range(extra):
        edges.append((rng.randrange(n), rng.randrange(n)))
    rng.shuffle(edges)
    return roots, edges


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_match_the_brute_force(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 70)
    roots, edges = _random_graph(rng, n, rng.randint(0, 3 * n))
    idom, retained = _engine.graph_dominators_test(n, [a for a, _ in edges], [b for _, b in edges], roots)
    assert retained == _brute(n, edges, roots)
    # the immediate dominator dominates (removing it cuts the node off), and
    # nodes only the virtual root dominates have -1
    succ = [[] for _ in range(n)]
    for a, b in edges:
        succ[a].append(b)
    for v, d in enumerate(idom):
        if d >= 0:
            assert not _reach(n, succ, roots, removed=d)[v]
        else:
            assert all(_reach(n, succ, roots, removed=u)[v] for u in range(n) if u != v)


def test_a_long_chain_does_not_recurse():
    n = 200000  # a recursive DFS would overflow the C stack
    idom, retained = _engine.graph_dominators_test(n, list(range(n - 1)), list(range(1, n)), [0])
    assert retained[0] == n and retained[n - 1] == 1 and idom[n - 1] == n - 2


def test_what_no_root_reaches_becomes_a_root_in_node_order():
    # 0 is the root; 1 <-> 2 is a cycle no root reaches; 3 hangs off 2
    idom, retained = _engine.graph_dominators_test(4, [1, 2, 2], [2, 1, 3], [0])
    assert idom == [-1, -1, 1, 2]
    assert retained == [1, 3, 2, 1]


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        _engine.graph_dominators_test(3, [0, 5], [1, 2], [0])
    with pytest.raises(ValueError):
        _engine.graph_dominators_test(3, [0], [1, 2], [0])


class Node:
    __slots__ = ("kids", "blob")


def _tree(rng, depth):
    node = Node()
    node.blob = bytearray(rng.randint(0, 300))
    node.kids = [_tree(rng, depth - 1) for _ in range(rng.randint(0, 3))] if depth else []
    return node


@pytest.fixture
def module():
    """A fresh module in sys.modules: the data lives in its globals, not in
    the test's locals (every frame's locals are roots too)."""
    mod = types.ModuleType("memlens_domtest_mod")
    sys.modules[mod.__name__] = mod
    yield mod
    del sys.modules[mod.__name__]


def _build_forest(mod):
    rng = random.Random(5)
    mod.FOREST = [_tree(rng, 4) for _ in range(5)]
    # sharing: some subtrees are also held from elsewhere
    mod.ELSEWHERE = [mod.FOREST[0].kids[0] if mod.FOREST[0].kids else mod.FOREST[0], mod.FOREST[3]]


PICKS = [lambda m: m.FOREST, lambda m: m.FOREST[0], lambda m: m.FOREST[1], lambda m: m.FOREST[3],
         lambda m: m.FOREST[4].blob, lambda m: m.ELSEWHERE, lambda m: m.__dict__]


@pytest.mark.parametrize("pick", range(len(PICKS)))
def test_real_heap_against_guppy_domisize(module, pick):
    guppy = pytest.importorskip("guppy")
    hp = guppy.hpy()
    _build_forest(module)
    assert memlens.retained_size(PICKS[pick](module)) == hp.iso(PICKS[pick](module)).domisize


def _build_known(mod):
    d = bytearray(1000)
    b = [d, bytearray(10)]
    c = [d]
    mod.A = [b, c]
    mod.E = c


def test_real_heap_known_answer(module):
    """A -> [B, C]; B -> [D, F]; C -> [D]; E (a global) -> C: A retains A,
    B and F (D is reachable through C, which E holds too)."""
    _build_known(module)
    b, c = module.A
    expected = sys.getsizeof(module.A) + sys.getsizeof(b) + sys.getsizeof(b[1])
    extra = sys.getsizeof(c) + sys.getsizeof(c[0])
    del b, c  # (the test's locals are roots too)
    assert memlens.retained_size(module.A) == expected
    del module.E
    assert memlens.retained_size(module.A) == expected + extra


class Cell(list):
    """A list subclass: only these make up the random object graph below."""
    __slots__ = ()


def _build_cells(mod, seed, n):
    """n Cells referring to each other at random; the module holds a few.
    Returns the cells' ids and, per cell, the ids of the cells it holds."""
    rng = random.Random(seed)
    cells = [Cell() for _ in range(n)]
    for i, c in enumerate(cells):
        for _ in range(rng.randint(0, 3)):
            c.append(cells[rng.randrange(n)])
        if i and rng.random() < 0.7:  # keep most of them reachable
            cells[rng.randrange(i)].append(c)
    mod.ROOTS = Cell(cells[:3])
    return [id(c) for c in cells], [[id(x) for x in c] for c in cells], [id(c) for c in mod.ROOTS]


@pytest.mark.parametrize("seed", range(6))
def test_real_heap_against_a_brute_force(module, seed):
    """Retained sizes of real objects equal what removing each one cuts
    off from the module's root, computed here by plain search."""
    import ctypes
    ids, kids, roots = _build_cells(module, seed, 40)
    index = {x: i for i, x in enumerate(ids)}
    n = len(ids)
    succ = [[index[x] for x in k] for k in kids]
    root_nodes = [index[x] for x in roots]
    reach = _reach(n, succ, root_nodes)
    for i in range(n):
        if not reach[i]:
            continue  # freed already: its refcount went to zero or it is garbage
        obj = ctypes.cast(ids[i], ctypes.py_object).value
        after = _reach(n, succ, root_nodes, removed=i)
        expected = sum(sys.getsizeof(ctypes.cast(ids[v], ctypes.py_object).value)
                       for v in range(n) if reach[v] and not after[v])
        if i in root_nodes:
            expected = None  # also held by ROOTS: checked through ROOTS below
        if expected is not None:
            assert memlens.retained_size(obj) == expected, i
        del obj
    whole = sum(sys.getsizeof(ctypes.cast(ids[v], ctypes.py_object).value) for v in range(n) if reach[v])
    assert memlens.retained_size(module.ROOTS) == whole + sys.getsizeof(module.ROOTS)

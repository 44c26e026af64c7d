"""Eclipse MAT's second kind of leak suspect: many instances of one class
together retaining a share of the heap, with their accumulation point
(csrc/graph/suspects.c). Against a brute force on random graphs, and on
real programs whose holder is known."""
import random
import subprocess
import sys
import textwrap

import pytest

from memlens import _engine

SHARE = 0.8  # the accumulation point holds >= 80% of the class's bytes
PER_HOLDER = 4  # at most this many per holding instance: a part of the holder's class


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


def _brute(n, edges, roots, sizes, types, threshold):
    """The suspects by definition: dominators by removing each node."""
    succ = [[] for _ in range(n)]
    for a, b in edges:
        succ[a].append(b)
    # doms[v]: the nodes whose removal cuts v off (its strict dominators)
    doms = [set() for _ in range(n)]
    for d in range(n):
        after = _reach(n, succ, roots, removed=d)
        for v in range(n):
            if v != d and not after[v]:
                doms[v].add(d)
    retained = [sizes[d] + sum(sizes[v] for v in range(n) if d in doms[v]) for d in range(n)]
    total = sum(sizes)
    per = {}
    for t in sorted(set(types)):
        inst = [v for v in range(n) if types[v] == t]
        top = [v for v in inst if not any(types[u] == t for u in doms[v])]
        per[t] = (inst, top, sum(retained[v] for v in top))
    cands = [t for t in sorted(per) if per[t][2] and per[t][2] >= threshold * total]
    cands.sort(key=lambda t: -per[t][2])  # stable: equal sums keep type order
    kept = [t for t in cands if max(retained[v] for v in per[t][1]) < SHARE * per[t][2]]
    out = []
    depth = [len(d) for d in doms]
    for t in kept:
        inst, top, ret = per[t]
        # each top instance below a kept class's instance: the nearest such
        held = {v: max((u for u in doms[v] if types[u] in kept), key=lambda u: depth[u])
                for v in top if any(types[u] in kept for u in doms[v])}
        covered = sum(retained[v] for v in held)
        if covered and covered >= SHARE * ret and len(held) <= PER_HOLDER * len(set(held.values())):
            continue

        def under(x):
            return sum(retained[v] for v in top if v == x or x in doms[v])
        points = [x for x in range(n) if under(x) and under(x) >= SHARE * ret]
        if points:
            point = max(points, key=lambda x: len(doms[x]))
            out.append((t, len(inst), len(top), ret, point, under(point)))
        else:
            out.append((t, len(inst), len(top), ret, -1, ret))
    return out[:16]


def _random_graph(rng, n, extra):
    nroots = rng.randint(1, 3)
    roots = list(range(nroots))
    edges = [(rng.randrange(0, v), v) for v in range(nroots, n)]
    edges += [(rng.randrange(n), rng.randrange(n)) for _ in range(extra)]
    rng.shuffle(edges)
    return roots, edges


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_match_the_brute_force(seed):
    rng = random.Random(1000 + seed)
    n = rng.randint(2, 60)
    roots, edges = _random_graph(rng, n, rng.randint(0, 2 * n))
    ntypes = rng.randint(1, 5)
    sizes = [rng.randint(1, 50) for _ in range(n)]
    types = [rng.randrange(ntypes) for _ in range(n)]
    threshold = rng.choice([0.02, 0.05, 0.1, 0.2, 0.3])
    got = _engine.graph_suspects_test(n, [a for a, _ in edges], [b for _, b in edges], roots,
                                      sizes, types, ntypes, threshold)
    assert got == _brute(n, edges, roots, sizes, types, threshold)


def test_known_small_graph():
    # root 0 -> list 1 -> items 2..6 (type 1, 10 bytes each); 0 -> 7 (type 2)
    # item 2 also referred to by 7: no longer dominated by the list
    edges = [(0, 1)] + [(1, i) for i in range(2, 7)] + [(0, 7), (7, 2)]
    sizes = [1, 1, 10, 10, 10, 10, 10, 1]
    types = [0, 0, 1, 1, 1, 1, 1, 2]
    got = _engine.graph_suspects_test(8, [a for a, _ in edges], [b for _, b in edges], [0],
                                      sizes, types, 3, 0.1)
    # type 0: node 0 alone holds it all (a one-object suspect, not this kind)
    # type 1: 50 bytes, the list holds 40 of them: 80%, so the list is its point
    assert got == [(1, 5, 5, 50, 1, 40)]


def _run(body):
    prog = textwrap.dedent(body)
    r = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_instances_in_one_list_name_the_list():
    out = _run("""
        import sys, memlens
        class Lesson:
            def __init__(self, i):
                self.payload = "x" * 1000 + str(i)
        HOLDER = [Lesson(i) for i in range(5000)]
        snap = memlens.heap(retained=True)
        s = snap.leak_suspects(0.10)
        c = [c for c in s.classes if c.name == "__main__.Lesson"][0]
        print(c.count, c.top, c.accumulation is HOLDER, c.accumulation_name,
              c.accumulation_bytes == c.retained, c.retained == snap.retained_of("__main__.Lesson"),
              # the list retains its Lessons and itself
              c.retained + sys.getsizeof(HOLDER) == memlens.retained_size(HOLDER))
        print("str" in [k.name for k in s.classes])
        print("3,000" not in str(s), "5,000 __main__.Lesson retain" in str(s),
              "accumulation point: list holding" in str(s))
    """).split("\n")
    assert out[0].split() == ["5000", "5000", "True", "list", "True", "True", "True"]
    assert out[1] == "False"
    assert out[2] == "True True True"


def test_instances_in_separate_globals_name_the_module():
    out = _run("""
        import memlens
        class Lesson:
            def __init__(self, i):
                self.payload = "x" * 1000 + str(i)
        for i in range(5000):
            globals()["lesson_%d" % i] = Lesson(i)
        s = memlens.heap(retained=True).leak_suspects()
        c = [c for c in s.classes if c.name == "__main__.Lesson"][0]
        print(c.count, c.accumulation_name, c.accumulation is globals())
    """)
    assert out.split() == ["5000", "dict", "of", "module", "__main__", "True"]


def test_instances_held_from_different_roots_have_no_point():
    # half in one module's globals, half in another's: no dominator holds 80%
    out = _run("""
        import sys, types, memlens
        class Lesson:
            def __init__(self, i):
                self.payload = "x" * 1000 + str(i)
        other = types.ModuleType("other")
        sys.modules["other"] = other
        A = [Lesson(i) for i in range(2500)]
        other.B = [Lesson(i) for i in range(2500)]
        s = memlens.heap(retained=True).leak_suspects()
        c = [c for c in s.classes if c.name == "__main__.Lesson"][0]
        print(c.count, c.accumulation_name, c.accumulation)
        print("accumulation point: none" in str(s))
    """).split("\n")
    assert out[0] == "5000 None None"
    assert out[1] == "True"


def test_threshold_bounds():
    import memlens
    snap = memlens.heap(retained=True)
    with pytest.raises(ValueError):
        snap.leak_suspects(0.001)
    assert snap.leak_suspects(1.0).classes == []


def test_attributes_are_part_of_their_records_items_are_not_part_of_lists():
    # root 0 -> list 1 -> records 2..6 (type 1), each record -> its str (type 3)
    edges = [(0, 1)] + [(1, i) for i in range(2, 7)] + [(i, i + 5) for i in range(2, 7)]
    sizes = [1, 1] + [10] * 10
    types = [0, 2] + [1] * 5 + [3] * 5
    got = _engine.graph_suspects_test(12, [a for a, _ in edges], [b for _, b in edges], [0],
                                      sizes, types, 4, 0.1)
    # the str (one per record) are a part of the records; the records (five
    # to one list) are their own suspect, the list their accumulation point
    assert got == [(1, 5, 5, 100, 1, 100)]
    # two lists of five records each: the records (more than 4 to a list)
    # are not a part of the lists; both are suspects, the root their point
    edges = [(0, 1), (0, 2)] + [(1 if i < 8 else 2, i) for i in range(3, 13)] + \
        [(i, i + 10) for i in range(3, 13)]
    sizes = [1, 1, 1] + [10] * 20
    types = [0, 2, 2] + [1] * 10 + [3] * 10
    got = _engine.graph_suspects_test(23, [a for a, _ in edges], [b for _, b in edges], [0],
                                      sizes, types, 4, 0.1)
    assert got == [(2, 2, 2, 202, 0, 202), (1, 10, 10, 200, 0, 200)]

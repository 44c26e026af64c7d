"""The .heapsnapshot writer (csrc/graph/heapsnapshot.c), checked against
the format's definition (V8's snapshot.meta field lists; node and edge
arrays consistent; every edge's target a node; strings indexed right) and
by an independent reader here that recomputes node count, edges,
dominators and retained sizes from the file and compares them with
memlens' own. (No JavaScript consumer installs here: npm is unreachable.)"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

NODE_FIELDS = ["type", "name", "id", "self_size", "edge_count", "trace_node_id", "detachedness"]
NODE_TYPES = ["hidden", "array", "string", "object", "code", "closure", "regexp", "number", "native",
              "synthetic", "concatenated string", "sliced string", "symbol", "bigint", "object shape"]
EDGE_FIELDS = ["type", "name_or_index", "to_node"]
EDGE_TYPES = ["context", "element", "property", "internal", "hidden", "shortcut", "weak"]

PROGRAM = textwrap.dedent("""
    import json, sys, weakref
    import memlens

    class SnapMarker:
        __slots__ = ("blob", "__weakref__")

    def build():
        global KEEP, WEAK, HOSTILE
        KEEP = [SnapMarker() for _ in range(3)]
        for m in KEEP:
            m.blob = bytearray(5000)
        WEAK = weakref.ref(KEEP[0])   # a weak reference retains nothing
        HOSTILE = {'"</script>\\x01\\\\': 1, "\\udcff\\u00e9": 2}

    build()
    info = memlens.heap(ids=False).save(sys.argv[1])
    info["keep_retained"] = memlens.retained_size(KEEP)
    info["marker_retained"] = memlens.retained_size(KEEP[0])
    print(json.dumps(info))
""")


def _load(path):
    with open(path, "rb") as f:
        raw = f.read()
    raw.decode("utf-8")  # strict UTF-8
    return json.loads(raw)


def _check_format(doc):
    snap = doc["snapshot"]
    meta = snap["meta"]
    assert meta["node_fields"] == NODE_FIELDS
    assert meta["node_types"][0] == NODE_TYPES
    assert meta["edge_fields"] == EDGE_FIELDS
    assert meta["edge_types"][0] == EDGE_TYPES
    nodes, edges, strings = doc["nodes"], doc["edges"], doc["strings"]
    nf, ef = len(NODE_FIELDS), len(EDGE_FIELDS)
    assert len(nodes) == snap["node_count"] * nf
    assert len(edges) == snap["edge_count"] * ef
    assert sum(nodes[i + 4] for i in range(0, len(nodes), nf)) == snap["edge_count"]
    ids = [nodes[i + 2] for i in range(0, len(nodes), nf)]
    assert len(set(ids)) == len(ids)
    for i in range(0, len(nodes), nf):
        assert 0 <= nodes[i] < len(NODE_TYPES) and 0 <= nodes[i + 1] < len(strings)
        assert 0 <= nodes[i + 3] < 2 ** 32
    for i in range(0, len(edges), ef):
        t, name, to = edges[i:i + 3]
        assert 0 <= t < len(EDGE_TYPES)
        assert to % nf == 0 and 0 <= to < len(nodes)
        if EDGE_TYPES[t] not in ("element", "hidden"):
            assert 0 <= name < len(strings)
    assert strings[nodes[1]] == "(root)" and NODE_TYPES[nodes[0]] == "synthetic"
    for key in ("trace_function_infos", "trace_tree", "samples", "locations"):
        assert doc[key] == []


class Reader:
    """An independent reader: successors per node, then dominators by
    Cooper, Harvey and Kennedy's iterative algorithm from node 0 (weak
    edges are not essential, as in DevTools), then retained sizes."""

    def __init__(self, doc):
        nodes, edges = doc["nodes"], doc["edges"]
        self.strings = doc["strings"]
        self.n = len(nodes) // 7
        self.name = [self.strings[nodes[7 * i + 1]] for i in range(self.n)]
        self.size = [nodes[7 * i + 3] for i in range(self.n)]
        self.succ = [[] for _ in range(self.n)]
        e = 0
        for i in range(self.n):
            for _ in range(nodes[7 * i + 4]):
                t, name, to = edges[e:e + 3]
                label = name if EDGE_TYPES[t] in ("element", "hidden") else self.strings[name]
                self.succ[i].append((EDGE_TYPES[t], label, to // 7))
                e += 3

    def child(self, node, label):
        return [to for _, name, to in self.succ[node] if name == label]

    def dominators(self):
        n, succ = self.n, self.succ
        order, seen, stack = [], [False] * n, [(0, 0)]
        seen[0] = True
        while stack:  # post-order, iteratively
            v, i = stack.pop()
            if i < len(succ[v]):
                stack.append((v, i + 1))
                t, _, w = succ[v][i]
                if t != "weak" and not seen[w]:
                    seen[w] = True
                    stack.append((w, 0))
            else:
                order.append(v)
        self.reached = sum(seen)
        po = {v: k for k, v in enumerate(order)}
        preds = [[] for _ in range(n)]
        for v in range(n):
            for t, _, w in succ[v]:
                if t != "weak":
                    preds[w].append(v)
        idom = [None] * n
        idom[0] = 0
        changed = True
        while changed:
            changed = False
            for v in reversed(order):
                if v == 0:
                    continue
                new = None
                for p in preds[v]:
                    if idom[p] is None:
                        continue
                    if new is None:
                        new = p
                        continue
                    a, b = p, new
                    while a != b:
                        while po[a] < po[b]:
                            a = idom[a]
                        while po[b] < po[a]:
                            b = idom[b]
                    new = a
                if idom[v] != new:
                    idom[v] = new
                    changed = True
        retained = list(self.size)
        for v in order:  # children before parents
            if v != 0:
                retained[idom[v]] += retained[v]
        self.idom, self.retained = idom, retained
        return retained


def _run(tmp_path, *cmd):
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    return subprocess.run([sys.executable, *cmd], capture_output=True, text=True, env=env,
                          cwd=str(tmp_path), timeout=600)


def test_snapshot_is_well_formed_and_its_retained_sizes_are_memlens_own(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    out = tmp_path / "app.heapsnapshot"
    res = _run(tmp_path, str(prog), str(out))
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    doc = _load(out)
    _check_format(doc)
    assert doc["snapshot"]["node_count"] == info["count"] + 3  # + 3 synthetic nodes
    object_edges = doc["snapshot"]["edge_count"]
    assert object_edges >= info["edges"]
    r = Reader(doc)
    assert sum(r.size) == info["total"]
    r.dominators()
    assert r.reached == r.n  # every object hangs under the root or one of its groups
    # (root) --"module __main__"--> dict --KEEP--> list
    (main,) = r.child(0, "module __main__")
    (keep,) = r.child(main, "KEEP")
    assert r.name[keep] == "list"
    markers = [i for i in range(r.n) if r.name[i] == "__main__.SnapMarker"]
    assert len(markers) == 3
    assert [r.retained[i] for i in markers] == [info["marker_retained"]] * 3
    assert r.retained[keep] == info["keep_retained"]
    # the list's items are "element" edges with their index; the marker's
    # slot a "property" named blob
    assert sorted(name for t, name, to in r.succ[keep] if t == "element") == [0, 1, 2]
    assert any(t == "property" and name == "blob" for t, name, _ in r.succ[markers[0]])
    # hostile dict keys are JSON-escaped, bytes that are not UTF-8 replaced
    assert '"</script>\x01\\' in r.strings
    assert "\ufffd\u00e9" in r.strings or "\ufffd\ufffd\u00e9" in r.strings


def test_cli_heapsnapshot(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text("class CliMarker:\n    pass\nKEEP = [CliMarker() for _ in range(11)]\nprint('out')\n")
    out = tmp_path / "cli.heapsnapshot"
    res = _run(tmp_path, "-m", "memlens", "heap", "--top", "3", "--heapsnapshot", str(out), str(prog))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("out\n") and "memlens heap:" in res.stdout
    doc = _load(out)
    _check_format(doc)
    r = Reader(doc)
    assert sum(1 for name in r.name if name == "__main__.CliMarker") == 11
    # an existing file is never overwritten without -f
    res = _run(tmp_path, "-m", "memlens", "heap", "--heapsnapshot", str(out), str(prog))
    assert res.returncode == 2 and "exists" in res.stderr and "Traceback" not in res.stderr
    assert res.stdout == ""  # the program did not run
    res = _run(tmp_path, "-m", "memlens", "heap", "-f", "--heapsnapshot", str(out), str(prog))
    assert res.returncode == 0, res.stderr
    _check_format(_load(out))

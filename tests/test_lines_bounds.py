"""`memlens lines` on hostile captures (issue 9, "Reader resource bounds"):
the work per stack is linear in its depth, and memory is bounded by what the
capture defines (its stacks and the lines that occur), not by the values of
line numbers. Captures are built here with tests/capfile.py; time and memory
are bounded with resource limits on a subprocess, never timed assertions.
"""
import json
import os
import resource
import subprocess
import sys

import pytest

from capfile import Capture

SANITIZED = "asan" in os.environ.get("LD_PRELOAD", "")
FILE = "/tmp/deep.py"


def lines_json(path, limits, *args):
    def preexec():
        for what, value in limits.items():
            resource.setrlimit(what, (value, value))

    env = dict(os.environ)
    env.pop("MEMLENS_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "memlens", "lines", str(path), "--file", FILE,
                           "--json", *args], capture_output=True, env=env, timeout=600,
                          preexec_fn=preexec)


def by_function(doc):
    out = {}
    for row in doc["lines"]:
        out.setdefault(row["function"], {})[row["line"]] = row
    return out


def test_deep_recursion_with_many_innermost_frames(tmp_path):
    """A mutual recursion through K functions, 20,000 frames deep, under
    which N distinct innermost frames each allocate 8 bytes. Every stack is
    the whole chain: lines.c walked all 20,000 frames of each of the N stacks
    and scanned the functions charged so far at each frame (20,000 x K x N
    steps: 5 s of CPU with K = 256, about 20 s here); now a stack whose
    parent was seen costs what its own functions cost (0.2 s). Ground
    truth: each of the K functions gets one row (the line of its innermost
    frame) with N allocations of 8 bytes, each innermost frame its own line
    with one, and the functions come in order of first appearance (the leaf,
    then the chain from the innermost frame up), as before."""
    K, DEPTH, N = 1024, 20000, 4000
    cap = Capture()
    codes = [cap.code_def(FILE, "f%d" % j, 10 * j + 1, [(0, 10 * j + 1), (2, 10 * j + 2)])
             for j in range(K)]
    leaf = cap.code_def(FILE, "leaf", 5000, [(2 * i, 5001 + i) for i in range(N)])
    top = 0
    for d in range(DEPTH):
        top = cap.frame_def(top, codes[d % K], 2)
    t = cap.type_def("bytes")
    for i in range(N):
        cap.alloc(cap.frame_def(top, leaf, 2 * i), t, 8)
    path = tmp_path / "deep.mlens"
    cap.save(path)

    cpu = 60 if SANITIZED else 10
    r = lines_json(path, {resource.RLIMIT_CPU: cpu})
    assert r.returncode == 0, (r.returncode, r.stderr.decode(errors="replace")[-2000:])
    doc = json.loads(r.stdout)
    assert [f["function"] for f in doc["functions"]] == (
        ["leaf"] + ["f%d" % (d % K) for d in range(DEPTH - 1, DEPTH - 1 - K, -1)])
    funcs = by_function(doc)
    for j in range(K):
        rows = funcs["f%d" % j]
        assert list(rows) == [10 * j + 2]
        assert rows[10 * j + 2]["allocations"] == N
        assert rows[10 * j + 2]["allocated_bytes"] == 8 * N
        assert rows[10 * j + 2]["increment_bytes"] == 8 * N
    assert sorted(funcs["leaf"]) == [5001 + i for i in range(N)]
    assert all(row["allocations"] == 1 and row["allocated_bytes"] == 8
               for row in funcs["leaf"].values())
    for f in doc["functions"]:
        assert f["adds_up"]


@pytest.mark.skipif(SANITIZED, reason="an address-space limit defeats ASan's shadow memory")
def test_line_numbers_near_2_31_and_0(tmp_path):
    """Line numbers 2^31-1, 2^31-2, 0 and 7 in one code. lines.c kept an
    array indexed by line number: 2^31 rows of 64 bytes, 128 GiB, so `lines`
    failed with "out of memory". Memory now follows the lines that occur:
    the report runs under a 1 GiB address-space limit and has four rows
    (0 is where events without a line go) with the bytes allocated at each."""
    big = 2 ** 31 - 1
    cap = Capture()
    code = cap.code_def(FILE, "work", 1, [(0, 0), (2, big), (4, big - 1), (6, 7)])
    t = cap.type_def("bytes")
    sizes = {0: 100, big: 200, big - 1: 300, 7: 400}
    for off, line in ((0, 0), (2, big), (4, big - 1), (6, 7)):
        frame = cap.frame_def(0, code, off)
        for _ in range(3):
            cap.alloc(frame, t, sizes[line])
    path = tmp_path / "big-lines.mlens"
    cap.save(path)

    r = lines_json(path, {resource.RLIMIT_AS: 1 << 30})
    assert r.returncode == 0, (r.returncode, r.stderr.decode(errors="replace")[-2000:])
    doc = json.loads(r.stdout)
    rows = by_function(doc)["work"]
    assert sorted(rows) == [0, 7, big - 1, big]
    for line, size in sizes.items():
        assert rows[line]["allocations"] == 3
        assert rows[line]["allocated_bytes"] == 3 * size
    assert doc["functions"][0]["net_bytes"] == 3 * sum(sizes.values())
    assert doc["functions"][0]["adds_up"]


def test_many_functions_in_one_file(tmp_path):
    """100,000 distinct functions of one file, each allocating once. lines.c
    looked each new code up among the functions found so far by a linear
    scan (100,000^2 / 2 string comparisons, about 50 s of CPU); a hash finds
    it at once. --top keeps the report itself small. Ground truth: every
    event is charged, and the top functions are those of the largest size
    (22 bytes: i % 7 == 6), first appearance first, each with its one row."""
    n = 100000
    cap = Capture()
    t = cap.type_def("bytes")
    for i in range(n):
        cap.alloc(cap.site(FILE, "g%d" % i, 3), t, 16 + i % 7)
    path = tmp_path / "many.mlens"
    cap.save(path)

    cpu = 60 if SANITIZED else 15
    r = lines_json(path, {resource.RLIMIT_CPU: cpu}, "--top", "5")
    assert r.returncode == 0, (r.returncode, r.stderr.decode(errors="replace")[-2000:])
    doc = json.loads(r.stdout)
    assert doc["events"] == n and doc["unattributed"] == 0
    top = [f["function"] for f in doc["functions"]]
    assert top == ["g%d" % i for i in range(6, 6 + 5 * 7, 7)]
    funcs = by_function(doc)
    for name in top:
        assert list(funcs[name]) == [3]
        assert funcs[name][3]["allocated_bytes"] == 22


def test_many_events_on_a_deep_stack_of_distinct_functions(tmp_path):
    """A chain of 20,000 distinct functions and 300,000 allocations (then
    frees) on its innermost frame. lines.c charged each event to every
    function of its stack, 20,000 row updates per event (12e9 in all); now
    an event adds to its stack's sums, charged to the rows once at the end.
    Ground truth: every function has one row, at the line of its frame, with
    300,000 allocations of 24 bytes and as many frees (increment 0)."""
    depth, n = 20000, 300000
    cap = Capture()
    top = 0
    for d in range(depth):
        code = cap.code_def(FILE, "h%d" % d, 10 * d + 1, [(0, 10 * d + 1), (2, 10 * d + 2)])
        top = cap.frame_def(top, code, 2)
    t = cap.type_def("bytes")
    for _ in range(n // 1000):
        seqs = [cap.alloc(top, t, 24) for _ in range(1000)]
        for s in seqs:
            cap.free(s)
    path = tmp_path / "hot.mlens"
    cap.save(path)

    cpu = 60 if SANITIZED else 10
    r = lines_json(path, {resource.RLIMIT_CPU: cpu})
    assert r.returncode == 0, (r.returncode, r.stderr.decode(errors="replace")[-2000:])
    doc = json.loads(r.stdout)
    assert doc["events"] == 2 * n and doc["unattributed"] == 0
    funcs = by_function(doc)
    assert len(funcs) == depth
    for d in (0, 1, depth // 2, depth - 1):
        row = funcs["h%d" % d][10 * d + 2]
        assert (row["allocations"], row["allocated_bytes"], row["increment_bytes"]) == (n, 24 * n, 0)
        assert row["heap_bytes"] == 0
    assert all(f["adds_up"] and f["net_bytes"] == 0 for f in doc["functions"])

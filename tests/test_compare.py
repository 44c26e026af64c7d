"""`memlens compare`: two captures (and two saved heap snapshots) of a program
whose only difference is known: N Lessons kept (100 before, 400 after), and a
type that exists only in the second run."""
import json

import pytest

from conftest import memlens

PROG = """
    import sys

    class Lesson:
        __slots__ = ("n",)

        def __init__(self, n):
            self.n = n

    class OnlyAfter:
        pass

    def make(n):
        out = []
        for i in range(n):
            out.append(Lesson(i))  # @make
        return out

    N = int(sys.argv[1])
    keep = make(N)  # @call
    extra = [OnlyAfter() for _ in range(7)] if N > 200 else []
"""


@pytest.fixture
def runs(script, capture):
    prog = script(PROG)
    before, _ = capture(prog, "100")
    after, _ = capture(prog, "400")
    return prog, before, after


def compare_json(a, b):
    proc = memlens("compare", a, b, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_compare_captures_growth(runs):
    prog, before, after = runs
    doc = compare_json(before, after)
    assert doc["before"]["path"] == before and doc["after"]["path"] == after
    lesson = [r for r in doc["types"] if r["type"] == "__main__.Lesson"]
    assert len(lesson) == 1
    row = lesson[0]
    assert row["alive"] == {"before": 100, "after": 400, "change": 300}
    assert row["allocs"]["change"] == 300
    size = row["alive_bytes"]["before"] // 100
    assert row["alive_bytes"]["change"] == 300 * size
    # the biggest change of the sites at the end is the make line, +300 Lessons or more
    top = doc["sites_end"][0]
    assert (top["function"], top["line"]) == ("make", prog.line("make"))
    assert top["bytes"]["change"] >= 300 * size and top["status"] == "both"
    assert doc["functions_end"][0]["function"] == "make"
    only = [r for r in doc["types"] if r["type"] == "__main__.OnlyAfter"]
    assert only and only[0]["status"] == "new" and only[0]["alive"]["after"] == 7
    totals = {t["measure"]: t for t in doc["totals"]}
    assert totals["end_count"]["change"] >= 307


def test_compare_captures_shrink_first(runs):
    """Shrinking is a change like growth: after -> before puts the make line first, negative."""
    prog, before, after = runs
    doc = compare_json(after, before)
    top = doc["sites_end"][0]
    assert (top["function"], top["line"]) == ("make", prog.line("make"))
    assert top["bytes"]["change"] < 0
    row = [r for r in doc["types"] if r["type"] == "__main__.Lesson"][0]
    assert row["alive"]["change"] == -300


def test_compare_text(runs):
    prog, before, after = runs
    proc = memlens("compare", before, after, "--top", "3")
    assert proc.returncode == 0, proc.stderr
    assert "__main__.Lesson" in proc.stdout and "+300" in proc.stdout
    assert "make" in proc.stdout and "Functions" in proc.stdout


def test_compare_heap_snapshots(script, tmp_path):
    prog = script(PROG)
    snaps = []
    for n in ("100", "400"):
        out = str(tmp_path / ("h%s.mlheap" % n))
        proc = memlens("heap", "--save", out, prog.path, n)
        assert proc.returncode == 0, proc.stderr
        snaps.append(out)
    with open(snaps[0], "rb") as f:
        assert f.readline() == b"memlens-heap 1\n"
    doc = compare_json(*snaps)
    row = [r for r in doc["types"] if r["type"] == "__main__.Lesson"][0]
    assert row["count"] == {"before": 100, "after": 400, "change": 300}
    assert "__main__.OnlyAfter" in doc["new_types"]
    assert isinstance(doc["dicts"], list)
    # the saved file is not overwritten without -f
    proc = memlens("heap", "--save", snaps[0], prog.path, "1")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("content", [
    b"memlens-heap 1\n{not json",
    b"memlens-heap 1\n{\"total_count\": -1, \"total_bytes\": 0, \"types\": []}",
    b"memlens-heap 9\n{}",
    b"memlens-heap 1\n" + b"[" * 100000,
    b"\x80\x04\x95pickle",
])
def test_bad_heap_snapshot(tmp_path, content):
    good = tmp_path / "good.mlheap"
    good.write_bytes(b'memlens-heap 1\n{"total_count":0,"total_bytes":0,"types":[],"dicts":[]}')
    bad = tmp_path / "bad.mlheap"
    bad.write_bytes(content)
    proc = memlens("compare", str(good), str(bad))
    assert proc.returncode == 2, proc.stdout
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1

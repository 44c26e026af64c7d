"""memlens flamegraph: the numbers embedded in the page, without a browser.

The program has known allocations on known paths: 20,000 Lesson objects made
in make_lessons() called from build() called from main(), and one 8 MiB
bytes object made in make_blob() called from build(), both held at the peak
and then dropped; a 3 MiB str made in keep() still held at the end.
Ground truth: `memlens summary --json` (peak, end and allocated bytes) and
the tagged lines of the program.
"""
import os
import re

import pytest

from conftest import memlens, report

PROGRAM = '''
class Lesson:
    def __init__(self, i):
        self.i = i

def make_lessons(n):
    out = []
    for i in range(n):
        out.append(Lesson(i))   # @lessons
    return out

def make_blob():
    return bytes(8 << 20)   # @blob

def build():
    lessons = make_lessons(20000)   # @call_lessons
    blob = make_blob()   # @call_blob
    return lessons, blob

def keep():
    return "k" * (3 << 20)   # @keep

def main():
    held = build()   # @call_build
    del held
    return keep()   # @call_keep

kept = main()   # @call_main
'''


@pytest.fixture
def page(script, capture):
    prog = script(PROGRAM)
    path, _ = capture(prog)
    from memlens import flamegraph
    return prog, path, flamegraph.page_data(path)


def frame_of(data, f):
    S, F = data["S"], data["F"]
    return S[F[3 * f]], S[F[3 * f + 1]], F[3 * f + 2]


def path_of(data, node):
    out = []
    while node > 0:
        out.append(frame_of(data, data["NF"][node]))
        node = data["P"][node]
    return out[::-1]


def rows(data, view):
    r = data["views"][view]["rows"]
    return [r[i:i + 5] for i in range(0, len(r), 5)]


def held_at(data, k):
    """(node, type) -> [bytes, blocks] held at the peak of time bucket k."""
    out = {}
    st = data["temporal"]["steps"]
    for i in range(0, len(st), 5):
        node, ty, bucket, b, c = st[i:i + 5]
        if bucket <= k:
            a = out.setdefault((node, ty), [0, 0])
            a[0] += b
            a[1] += c
    return {key: v for key, v in out.items() if v != [0, 0]}


def test_views_equal_summary(page):
    prog, path, data = page
    s = report("summary", path)
    assert sum(r[3] for r in rows(data, "peak")) == s["peak_bytes"]
    assert sum(r[3] for r in rows(data, "end")) == s["end_bytes"]
    assert sum(r[3] for r in rows(data, "allocated")) == s["allocated_bytes"]
    assert data["chart"]["peak"]["heap"] == s["peak_bytes"]


def test_known_paths_and_types(page):
    prog, path, data = page
    f = prog.path
    lessons = [("<module>", f, prog.line("call_main")), ("main", f, prog.line("call_build")),
               ("build", f, prog.line("call_lessons")), ("make_lessons", f, prog.line("lessons"))]
    blob = lessons[:2] + [("build", f, prog.line("call_blob")), ("make_blob", f, prog.line("blob"))]
    types = data["types"]
    by_path = {}
    for node, ty, th, b, c in rows(data, "peak"):
        p = tuple(x for x in path_of(data, node) if not x[1].startswith("<frozen"))
        a = by_path.setdefault((p, types[ty]), [0, 0])
        a[0] += b
        a[1] += c
    # 20,000 Lesson objects at exactly that path, and nothing of Lesson elsewhere
    les = {k: v for k, v in by_path.items() if k[1] == "__main__.Lesson"}
    assert list(les) == [(tuple(lessons), "__main__.Lesson")]
    assert les[(tuple(lessons), "__main__.Lesson")][1] == 20000
    bb = by_path[(tuple(blob), "bytes")]
    assert bb[0] >= 8 << 20 and bb[1] == 1
    # end: the 3 MiB bytes from keep(), not the blob
    end = {}
    for node, ty, th, b, c in rows(data, "end"):
        key = (path_of(data, node)[-1][0], types[ty])
        end[key] = end.get(key, 0) + b
    assert end.get(("keep", "str"), 0) >= 3 << 20
    assert ("make_blob", "bytes") not in end


def test_temporal_buckets_hold_their_heap(page):
    """Every bucket's intervals sum to the heap at that bucket's high point,
    and at the global peak they are exactly the peak view (nothing merged)."""
    from memlens import flamegraph
    prog, path, _ = page
    data = flamegraph.page_data(path, merge_below=0)
    T = data["temporal"]
    n = len(T["top"])
    assert 2 <= n <= 128 and len(T["edges"]) == n + 1
    for k in range(n):
        assert sum(v[0] for v in held_at(data, k).values()) == T["top"][k]
    s = report("summary", path)
    k = T["top"].index(max(T["top"]))
    assert T["top"][k] == s["peak_bytes"]
    assert abs(T["top_t"][k] - s["peak_time_s"]) < 1e-6
    peak = {}
    for node, ty, th, b, c in rows(data, "peak"):
        a = peak.setdefault((node, ty), [0, 0])
        a[0] += b
        a[1] += c
    assert held_at(data, k) == peak


def test_no_source_leaves_source_out(script, capture, tmp_path):
    prog = script(PROGRAM)
    path, _ = capture(prog)
    with_src, without = tmp_path / "a.html", tmp_path / "b.html"
    assert memlens("flamegraph", path, "-o", str(with_src)).returncode == 0
    proc = memlens("flamegraph", path, "-o", str(without), "--no-source")
    assert proc.returncode == 0, proc.stderr
    assert "bytes(8 \\u003c\\u003c 20)" in with_src.read_text()
    assert "bytes(8 \\u003c" not in without.read_text()
    # O_EXCL: a second run refuses to replace the page, -f does
    proc = memlens("flamegraph", path, "-o", str(without))
    assert proc.returncode == 2 and "exists" in proc.stderr
    assert memlens("flamegraph", path, "-o", str(without), "-f", "--view", "end").returncode == 0
    assert '"default_view":"end"' in without.read_text()


def test_page_is_self_contained_and_escaped(script, capture, tmp_path):
    prog = script('''
        import types
        Evil = type("</script><img src=x onerror=alert(1)>", (), {})
        def f():
            return [Evil() for _ in range(100)]
        f.__code__ = f.__code__.replace(co_name="</script><script>alert(2)</script>")
        held = f()
    ''')
    path, _ = capture(prog)
    out = tmp_path / "evil.html"
    proc = memlens("flamegraph", path, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert html.count("</script>") == 1  # the page's own script element only
    assert "<img" not in html.split("<script>")[1]
    assert "\\u003c/script\\u003e\\u003cimg src=x onerror=alert(1)\\u003e" in html
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", html)


def test_bad_input(tmp_path):
    proc = memlens("flamegraph", str(tmp_path / "missing.mlens"), "-o", str(tmp_path / "x.html"))
    assert proc.returncode == 2 and "missing.mlens" in proc.stderr and "Traceback" not in proc.stderr
    bad = tmp_path / "bad.mlens"
    bad.write_bytes(b"not a capture at all")
    proc = memlens("flamegraph", str(bad), "-o", str(tmp_path / "x.html"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    proc = memlens("flamegraph", str(bad), "-o", str(tmp_path / "x.svg"))
    assert proc.returncode == 2 and ".html" in proc.stderr
    assert not os.path.exists(tmp_path / "x.html")



def test_small_nodes_merge_into_their_caller(script, capture):
    """Merging keeps every view's total; a merged node's bytes land on its
    nearest kept ancestor, and a node's small types in its OTHER row."""
    from memlens import flamegraph
    prog = script(PROGRAM)
    path, _ = capture(prog)
    full = flamegraph.page_data(path, merge_below=0)
    coarse = flamegraph.page_data(path, merge_below=0.05)
    assert full["merged_nodes"] == 0 and coarse["merged_nodes"] > 0
    assert len(coarse["P"]) < len(full["P"])
    for view in flamegraph.VIEWS:
        by_type = [{}, {}]
        for i, data in enumerate((full, coarse)):
            for node, ty, th, b, c in rows(data, view):
                a = by_type[i].setdefault(data["types"][ty], [0, 0])
                a[0] += b
                a[1] += c
        other = by_type[1].pop(flamegraph.OTHER_TYPES, [0, 0])
        for name, (b, c) in by_type[1].items():
            assert b <= by_type[0][name][0] and c <= by_type[0][name][1]
        assert other[0] == sum(b for b, c in by_type[0].values()) - sum(b for b, c in by_type[1].values())
        assert other[1] == sum(c for b, c in by_type[0].values()) - sum(c for b, c in by_type[1].values())
    # the time steps still sum to each bucket's heap
    for k, top in enumerate(coarse["temporal"]["top"]):
        assert sum(v[0] for v in held_at(coarse, k).values()) == top
    # at the peak, make_blob holds 8 MiB of 10.x: kept, with its exact bytes
    blob = [(path_of(coarse, n), b) for n, ty, th, b, c in rows(coarse, "peak")
            if coarse["types"][ty] == "bytes" and b >= 8 << 20]
    assert blob and blob[0][0][-1][0] == "make_blob"
    # make_lessons (over 1 of about 10 MiB at the peak) stays; the class
    # Lesson made at the module's line 1 (about 1 KiB) goes to the root
    kept = {path_of(coarse, n)[-1][::2] for n, *_ in rows(coarse, "peak") if n}
    assert ("make_lessons", prog.line("lessons")) in kept
    fine = {path_of(full, n)[-1][::2] for n, *_ in rows(full, "peak") if n}
    assert ("<module>", 1) in fine and ("<module>", 1) not in kept


def test_notebook_repr_is_an_isolated_iframe(script, capture):
    from memlens import flamegraph
    prog = script(PROGRAM)
    path, _ = capture(prog)
    html = flamegraph.FlameGraph(path)._repr_html_()
    assert html.startswith('<iframe srcdoc="') and html.endswith("</iframe>")
    assert 'sandbox="allow-scripts"' in html
    # the whole page is one attribute value: no raw markup or quote inside it
    inner = html[len('<iframe srcdoc="'):html.index('" sandbox=')]
    assert "<" not in inner and '"' not in inner and "&lt;script&gt;" in inner
    import html as htmllib
    assert htmllib.unescape(inner) == flamegraph.render_html(path)


def test_diff_data(script, capture, tmp_path):
    """BEFORE makes 20,000 Lessons, AFTER 30,000 and no 8 MiB blob: the
    page's rows are AFTER's, its base rows BEFORE's, on shared paths."""
    from memlens import flamegraph
    before_prog = script(PROGRAM, name="app.py")
    before, _ = capture(before_prog)
    after_prog = script(PROGRAM.replace("make_lessons(20000)", "make_lessons(30000)")
                        .replace("bytes(8 << 20)", "b''"), name="app.py")
    after, _ = capture(after_prog)
    data = flamegraph.diff_data(before, after, merge_below=0)
    sb, sa = report("summary", before), report("summary", after)
    for view, key in (("peak", "peak_bytes"), ("end", "end_bytes"), ("allocated", "allocated_bytes")):
        assert sum(r[3] for r in rows(data, view)) == sa[key]
        base = data["views"][view]["base"]
        assert sum(base[i + 3] for i in range(0, len(base), 5)) == sb[key]

    def lessons(rs):
        return sum(r[4] for r in rs if data["types"][r[1]] == "__main__.Lesson"
                   and path_of(data, r[0])[-1][0] == "make_lessons")
    base = data["views"]["peak"]["base"]
    assert lessons(rows(data, "peak")) == 30000
    assert lessons([base[i:i + 5] for i in range(0, len(base), 5)]) == 20000
    out = tmp_path / "diff.html"
    proc = memlens("flamegraph", "--diff", before, after, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert '"diff":true' in out.read_text()
    proc = memlens("flamegraph", before, "--diff", before, after, "-o", str(tmp_path / "x.html"))
    assert proc.returncode == 2 and "--diff" in proc.stderr


def test_time_steps_budget_keeps_bucket_sums(script, capture, monkeypatch):
    """With room for only a few steps of their own, the other (node, type)
    groups join their ancestors' OTHER rows: every bucket still sums to its
    heap, and fewer groups keep their own steps."""
    from memlens import flamegraph
    prog = script(PROGRAM)
    path, _ = capture(prog)
    full = flamegraph.page_data(path)
    monkeypatch.setattr(flamegraph, "TIME_STEPS", 5)
    small = flamegraph.page_data(path)
    for data in (full, small):
        for k, top in enumerate(data["temporal"]["top"]):
            assert sum(v[0] for v in held_at(data, k).values()) == top

    def groups(data, other):
        st = data["temporal"]["steps"]
        return {(st[i], st[i + 1]) for i in range(0, len(st), 5)
                if (data["types"][st[i + 1]] == flamegraph.OTHER_TYPES) == other}
    assert len(groups(small, False)) < len(groups(full, False))
    assert sum(1 for _ in groups(small, False)) <= 5
    assert groups(small, True)


def test_cut_and_corrupt_captures(script, capture, tmp_path):
    """A capture cut short, or with garbage in the middle, makes a page of
    what the reader accepts or fails with one line (exit 2), never a
    traceback (what the reader accepts is docs/FORMAT.md's business)."""
    prog = script(PROGRAM)
    path, _ = capture(prog)
    raw = open(path, "rb").read()
    mid = len(raw) // 2
    cases = {"cut": raw[:len(raw) * 2 // 3], "bad": raw[:mid] + bytes([0xFF]) * 4096 + raw[mid + 4096:]}
    for name, blob in cases.items():
        cap, out = tmp_path / (name + ".mlens"), tmp_path / (name + ".html")
        cap.write_bytes(blob)
        proc = memlens("flamegraph", str(cap), "-o", str(out))
        assert "Traceback" not in proc.stderr, proc.stderr
        if proc.returncode == 0:
            assert out.read_text().startswith("<!DOCTYPE html>")
            # what was not read is said, on stderr and in the page
            assert "warning: capture ends early" in proc.stderr
            assert "capture ends early" in out.read_text()
        else:
            assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
            assert not out.exists()


def test_holders_from_snapshot_now_without_the_option(script, capture):
    """The holder tooltips come from the capture's records, whatever its
    options say: a program that only calls memlens.snapshot_now() (run with
    --no-heap-at-exit, no --heap-on) still gets them; the same program
    without the call gets none."""
    source = '''
        import memlens

        class Record:
            def __init__(self, i):
                self.i = i

        def build():
            return [Record(i) for i in range(3000)]   # @record

        KEEP = build()
        memlens.snapshot_now()   # @snap
    '''
    prog = script(source)
    path, _ = capture(prog, opts=("--no-heap-at-exit",))
    from memlens import flamegraph, reports
    options = reports.meta(path)["options"]
    assert not options["heap_at_exit"] and not options["heap_on"]
    holders = flamegraph.page_data(path, view="end")["holders"]
    mine = [h for h in holders if h["type"] == "__main__.Record"]
    assert len(mine) == 1, holders
    h = mine[0]
    assert h["line"] == prog.line("record") and h["count"] == 3000 and h["held"] == 3000
    assert h["path"] == "module __main__ .KEEP (list) [i]"
    plain = script(source.replace("memlens.snapshot_now()", "pass"), name="plain.py")
    path2, _ = capture(plain, opts=("--no-heap-at-exit",))
    assert flamegraph.page_data(path2, view="end")["holders"] == []

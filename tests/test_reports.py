"""Reports on synthetic captures with known ground truth (built by capfile.py,
an encoder written from format.h independently of writer.c)."""
import json
import os
import subprocess
import sys

import pytest

import capfile
from capfile import MEM, OBJ, RAW, Capture
from memlens import _engine, reports
from memlens.errors import UsageError


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "memlens"] + [str(a) for a in args],
                          capture_output=True, text=True, cwd=cwd)


def three_and_two_freed():
    """3 allocations of 100 B at site A (app.py:10), then 2 of them freed,
    then 50 B at site B (app.py:20) that stays."""
    cap = Capture()
    a = cap.site("app.py", "load", 10)
    b = cap.site("app.py", "keep", 20)
    t_bytes = cap.type_def("bytes")
    cap.time(1000)
    s1 = cap.alloc(a, t_bytes, 100)
    s2 = cap.alloc(a, t_bytes, 100)
    cap.time(2000)
    cap.alloc(a, t_bytes, 100)         # event 3: heap 300 = the peak, at 3 ms
    cap.time(500)
    cap.free(s1)
    cap.free(s2)
    cap.alloc(b, 0, 50, domain=MEM)    # untyped
    cap.time(1500)
    return cap


def test_summary_peak_and_end(tmp_path):
    path = three_and_two_freed().save(tmp_path / "a.mlens")
    d = reports.summary(path, top=10)
    assert d["peak_bytes"] == 300
    assert d["peak_time_s"] == pytest.approx(0.003)
    assert d["allocated_bytes"] == 350 and d["allocations"] == 4 and d["frees"] == 2
    assert d["end_bytes"] == 150 and d["end_count"] == 2
    assert d["duration_s"] == pytest.approx(0.005)
    assert d["truncated"] is False and d["warnings"] == []
    assert d["python"] == "3.12.1" and d["argv"] == ["demo.py"]
    # at the peak: only site A, its three blocks
    assert [(r["function"], r["file"], r["line"], r["bytes"], r["count"]) for r in d["top_peak"]] == [
        ("load", "app.py", 10, 300, 3)]
    assert d["top_peak"][0]["stack"] == [{"function": "load", "file": "app.py", "line": 10}]
    assert [(r["line"], r["bytes"], r["count"]) for r in d["top_allocated"]] == [(10, 300, 3), (20, 50, 1)]
    assert [(r["line"], r["bytes"], r["count"]) for r in d["top_end"]] == [(10, 100, 1), (20, 50, 1)]


def test_summary_peak_is_the_first_maximum_and_pass_two_stops_there(tmp_path):
    # heap: 100, 300, 100 (free), 300 again (not a new peak), 0
    cap = Capture()
    a = cap.site("m.py", "f", 1)
    b = cap.site("m.py", "g", 2)
    s1 = cap.alloc(a, 0, 100)
    s2 = cap.alloc(b, 0, 200)
    cap.free(s2)
    s3 = cap.alloc(a, 0, 200)
    for s in (s1, s3):
        cap.free(s)
    path = cap.save(tmp_path / "p.mlens")
    d = reports.summary(path)
    assert d["peak_bytes"] == 300
    # the blocks live at the FIRST peak: 100 at f, 200 at g (not 300 at f)
    assert {(r["function"], r["bytes"]) for r in d["top_peak"]} == {("f", 100), ("g", 200)}
    assert d["end_bytes"] == 0 and d["top_end"] == []
    raw = _engine.read_summary(str(path))
    assert raw["peak_event"] == 2


def test_sites_group_stacks_by_innermost_frame(tmp_path):
    """Two different callers of the same line are one site; the site's stack
    is the caller that contributes the most bytes."""
    cap = Capture()
    main = cap.code_def("main.py", "<module>", 1, [(0, 1), (4, 5), (8, 9)])
    caller1 = cap.frame_def(0, main, 4)        # main.py:5
    caller2 = cap.frame_def(0, main, 8)        # main.py:9
    work = cap.code_def("lib.py", "work", 40, [(0, 40), (6, 42)])
    inner1 = cap.frame_def(caller1, work, 6)   # lib.py:42 called from line 5
    inner2 = cap.frame_def(caller2, work, 7)   # lib.py:42 called from line 9
    other = cap.frame_def(caller2, work, 0)    # lib.py:40: another site
    t = cap.type_def("dict")
    for _ in range(3):
        cap.alloc(inner1, t, 10)               # 30 B via line 5
    cap.alloc(inner2, t, 1000)                 # 1000 B via line 9
    cap.alloc(other, t, 5)
    path = cap.save(tmp_path / "s.mlens")
    d = reports.summary(path)
    rows = d["top_end"]
    assert [(r["file"], r["line"], r["bytes"], r["count"]) for r in rows] == [
        ("lib.py", 42, 1030, 4), ("lib.py", 40, 5, 1)]
    assert rows[0]["stack"] == [{"function": "work", "file": "lib.py", "line": 42},
                                {"function": "<module>", "file": "main.py", "line": 9}]


def test_same_function_in_two_code_objects_is_one_site(tmp_path):
    cap = Capture()
    f1 = cap.site("x.py", "f", 3)
    f2 = cap.site("x.py", "f", 3)   # a second code object (e.g. re-executed module)
    cap.alloc(f1, 0, 10)
    cap.alloc(f2, 0, 20)
    d = reports.summary(cap.save(tmp_path / "c.mlens"))
    assert [(r["function"], r["line"], r["bytes"], r["count"]) for r in d["top_end"]] == [("f", 3, 30, 2)]


def test_no_python_stack_site(tmp_path):
    cap = Capture()
    cap.alloc(0, 0, 4096, domain=RAW)
    d = reports.summary(cap.save(tmp_path / "n.mlens"))
    assert d["top_end"] == [{"function": "<no Python stack>", "file": "", "line": 0,
                             "bytes": 4096, "count": 1, "stack": []}]


def test_top_limits_rows(tmp_path):
    cap = Capture()
    for i in range(1, 8):
        cap.alloc(cap.site("t.py", "f%d" % i, i), 0, i * 10)
    path = cap.save(tmp_path / "t.mlens")
    d = reports.summary(path, top=3)
    assert [r["line"] for r in d["top_end"]] == [7, 6, 5]
    assert len(reports.summary(path, top=0)["top_end"]) == 7


def types_capture():
    """Known per-type counts: 5 lists (3 freed), 2 floats (none freed) plus 4
    REUSE of float, an untyped buffer, and a type object."""
    cap = Capture()
    s = cap.site("types.py", "make", 7)
    t_list = cap.type_def("list")
    t_float = cap.type_def("float")
    t_type = cap.type_def("type", capfile.TYPEF_METATYPE)
    lists = [cap.alloc(s, t_list, 56) for _ in range(5)]   # alive 5 = peak
    for q in lists[:3]:
        cap.free(q)                                        # alive 2
    cap.alloc(s, t_list, 56)                               # alive 3 (peak stays 5)
    cap.alloc(s, t_float, 24)
    cap.alloc(s, t_float, 24)
    for _ in range(4):
        cap.reuse(t_float)                                 # free-list reuse
    cap.alloc(s, 0, 1000, domain=MEM)
    cap.alloc(s, t_type, 900)
    return cap


def test_types_table_exact(tmp_path):
    path = types_capture().save(tmp_path / "ty.mlens")
    d = reports.types(path)
    by = {r["type"]: r for r in d["types"]}
    # a 3.12 capture made without --exact: list and float counts can be off
    # by what their free lists hold (80, 100), <untyped> not
    assert by["list"] == {"type": "list", "allocs": 6, "frees": 3, "peak_alive": 5, "alive": 3,
                          "alive_bytes": 168, "allocated_bytes": 336, "alive_max_error": 80}
    # REUSE: one alloc and one free each; no bytes; alive unchanged
    assert by["float"] == {"type": "float", "allocs": 6, "frees": 4, "peak_alive": 2, "alive": 2,
                           "alive_bytes": 48, "allocated_bytes": 48, "alive_max_error": 100}
    assert by["<untyped>"] == {"type": "<untyped>", "allocs": 1, "frees": 0, "peak_alive": 1,
                               "alive": 1, "alive_bytes": 1000, "allocated_bytes": 1000,
                               "alive_max_error": 0}
    assert by["type"]["allocs"] == 1 and by["type"]["alive_bytes"] == 900
    # by allocations, ties by name
    assert [r["type"] for r in d["types"]] == ["float", "list", "<untyped>", "type"]
    assert d["reuses"] == 4


@pytest.mark.parametrize("sort,first", [("alive", "list"), ("peak", "list"), ("bytes", "<untyped>"),
                                        ("allocs", "float")])
def test_types_sort(tmp_path, sort, first):
    path = types_capture().save(tmp_path / "ty.mlens")
    rows = reports.types(path, sort=sort)["types"]
    assert rows[0]["type"] == first
    key = reports.TYPE_SORTS[sort]
    assert [r[key] for r in rows] == sorted((r[key] for r in rows), reverse=True)


def test_reuse_of_a_type_never_allocated_otherwise(tmp_path):
    cap = Capture()
    t = cap.type_def("tuple")
    cap.reuse(t)
    cap.reuse(t)
    rows = reports.types(cap.save(tmp_path / "r.mlens"))["types"]
    assert rows == [{"type": "tuple", "allocs": 2, "frees": 2, "peak_alive": 0, "alive": 0,
                     "alive_bytes": 0, "allocated_bytes": 0, "alive_max_error": 20 * 2000}]


def test_leaks_grouped_by_site_and_type(tmp_path):
    cap = Capture()
    a = cap.site("leak.py", "cache_put", 30)
    b = cap.site("leak.py", "other", 40)
    t_dict, t_str = cap.type_def("dict"), cap.type_def("str")
    for _ in range(4):
        cap.alloc(a, t_dict, 232)                 # 928 B of dict at line 30
    for _ in range(3):
        cap.alloc(a, t_str, 60)                   # 180 B of str at line 30
    gone = [cap.alloc(b, t_dict, 5000) for _ in range(2)]
    for g in gone:
        cap.free(g)                               # freed: not a leak
    cap.alloc(b, t_str, 2000)
    d = reports.leaks(cap.save(tmp_path / "l.mlens"))
    assert [(r["function"], r["line"], r["type"], r["bytes"], r["count"]) for r in d["leaks"]] == [
        ("other", 40, "str", 2000, 1), ("cache_put", 30, "dict", 928, 4),
        ("cache_put", 30, "str", 180, 3)]
    assert d["groups"] == 3 and d["end_bytes"] == 3108 and d["end_count"] == 8
    assert d["leaks"][1]["stack"] == [{"function": "cache_put", "file": "leak.py", "line": 30}]


def test_threads_keep_their_own_stack_for_frees(tmp_path):
    cap = Capture()
    a = cap.site("th.py", "main_work", 5)
    b = cap.site("th.py", "worker", 9)
    cap.thread_def(1, 100, "MainThread")
    cap.thread_def(2, 101, "worker")
    cap.switch_thread(1)
    s1 = cap.alloc(a, 0, 10)
    cap.switch_thread(2)
    s2 = cap.alloc(b, 0, 20)
    cap.switch_thread(1)
    cap.free(s2)                 # freed by the main thread: its stack is a
    cap.switch_thread(2)
    cap.free(s1)                 # freed by the worker: its stack is b
    path = cap.save(tmp_path / "th.mlens")
    got = _engine.read_events(str(path))["events"]
    assert got == cap.events
    frees = [e for e in got if e["kind"] == "free"]
    assert [(e["seq"], e["thread"], e["stack"], e["at_stack"]) for e in frees] == [
        (2, 1, b, a), (1, 2, a, b)]


def test_every_record_kind_decodes_as_encoded(tmp_path):
    """capfile's model of the events equals what the C reader returns."""
    cap = types_capture()
    cap.time(7)
    cap.memory(1 << 30, 12345)
    cap.mark(capfile.MARK_ENTER, "phase 2")
    cap.note(capfile.NOTE_WARNING, "careful")
    cap.fork(4242)
    cap.context_stack(0)
    cap.reuse(2)
    many = [cap.alloc(1, 1, 8) for _ in range(200)]
    for s in many[::-1][::7] + many[:3]:
        cap.free(s)             # inline and long FREE distances
    path = cap.save(tmp_path / "all.mlens")
    got = _engine.read_events(str(path))
    assert got["events"] == cap.events
    assert got["truncated"] is False
    assert got["trailer"][:2] == [cap.last_seq, sum(e["kind"] == "free" for e in cap.events)]


def test_warnings_from_notes_and_trailer(tmp_path):
    cap = Capture()
    cap.note(capfile.NOTE_WARNING, "42 stacks were too deep")
    cap.note(capfile.NOTE_WARNING, "42 stacks were too deep")   # shown once
    cap.note(capfile.NOTE_TRACER_LOST, "")
    cap.alloc(0, 0, 1)
    cap.trailer([1, 0, 17, 0, 0])
    path = tmp_path / "w.mlens"
    path.write_bytes(cap.data())
    d = reports.summary(path)
    assert d["warnings"][0] == "42 stacks were too deep"
    assert "object-creation tracer was replaced" in d["warnings"][1]
    assert d["warnings"][2] == "17 events were dropped while recording (out of memory)"
    assert len(d["warnings"]) == 3


# ---- the CLI ----

def test_cli_summary_json(tmp_path):
    path = three_and_two_freed().save(tmp_path / "a.mlens")
    r = run_cli("summary", path, "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    for key in ("peak_bytes", "allocated_bytes", "allocations", "end_bytes", "duration_s",
                "top_peak", "top_allocated", "top_end"):
        assert key in d
    assert (d["peak_bytes"], d["allocated_bytes"], d["allocations"], d["end_bytes"]) == (300, 350, 4, 150)
    assert set(d["top_peak"][0]) == {"function", "file", "line", "bytes", "count", "stack"}
    assert d["capture"] == {"path": str(path), "python": "3.12.1", "argv": ["demo.py"],
                            "truncated": False, "warnings": []}
    assert r.stderr == ""


def test_cli_summary_text(tmp_path):
    path = three_and_two_freed().save(tmp_path / "a.mlens")
    r = run_cli("summary", path, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "peak heap        300 B at 3 ms" in out
    assert "total allocated  350 B in 4 allocations" in out
    assert "heap at the end  150 B in 2 blocks" in out
    peak_section = out.split("at the peak (300 B):")[1].split("\n\n")[0]
    lines = peak_section.strip().splitlines()
    assert lines[0].split() == ["bytes", "blocks", "share", "function", "location"]
    assert lines[2].split() == ["300", "B", "3", "100.0%", "load", "app.py:10"]
    # columns aligned: every row of the table has the same width up to 'location'
    assert len({ln.index("location") if "location" in ln else ln.index("app.py") for ln in lines
                if "location" in ln or "app.py" in ln}) == 1


def test_cli_types_json_and_text(tmp_path):
    path = types_capture().save(tmp_path / "ty.mlens")
    r = run_cli("types", path, "--json", "--sort", "alive")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["capture"]["path"] == str(path) and doc["capture"]["truncated"] is False
    rows = doc["types"]
    assert rows[0] == {"type": "list", "allocs": 6, "frees": 3, "peak_alive": 5, "alive": 3,
                       "alive_bytes": 168, "allocated_bytes": 336, "alive_max_error": 80}
    r = run_cli("types", path, "--top", "2")
    assert r.returncode == 0, r.stderr
    body = r.stdout.splitlines()
    assert body[1].split() == ["type", "allocs", "frees", "peak", "alive", "alive", "alive",
                               "bytes", "allocated"]
    assert body[3].split()[:6] == ["float", "6", "4", "2", "2", "48"]
    assert body[4].split()[:6] == ["list", "6", "3", "5", "3", "168"]
    assert len(body) == 5 + 2  # title, header, rule, 2 rows, reuse note, free-list bounds
    assert body[-1].startswith("(alive counts can be off by what CPython's free lists hold: "
                               "float at most 100, list at most 80;")


def test_cli_leaks_json(tmp_path):
    cap = Capture()
    s = cap.site("lk.py", "grow", 3)
    t = cap.type_def("bytearray")
    for _ in range(5):
        cap.alloc(s, t, 1024)
    path = cap.save(tmp_path / "lk.mlens")
    r = run_cli("leaks", path, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["leaks"] == [{"function": "grow", "file": "lk.py", "line": 3,
                                     "type": "bytearray", "bytes": 5120, "count": 5,
                                     "stack": [{"function": "grow", "file": "lk.py", "line": 3}],
                                     "alive_max_error": 0}]
    r = run_cli("leaks", path)
    assert "5.0 KiB" in r.stdout and "lk.py:3" in r.stdout and "bytearray" in r.stdout


def test_short_summary(tmp_path, capsys):
    path = three_and_two_freed().save(tmp_path / "a.mlens")
    data = reports.summary(path, top=3)
    reports.print_short_summary(data, str(path), file=sys.stderr)
    err = capsys.readouterr().err
    assert "peak heap 300 B at 3 ms" in err
    assert "allocated 350 B in 4 allocations" in err
    assert "app.py:10" in err and str(path) in err
    assert len(err.splitlines()) <= 6


def test_display_path(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert reports.display_path(str(tmp_path / "pkg" / "m.py")) == os.path.join("pkg", "m.py")
    assert reports.display_path("/usr/lib/python3.12/site-packages/requests/api.py") == \
        "site-packages/requests/api.py"
    assert reports.display_path("/opt/py/lib/python3.11/json/decoder.py") == "python3.11/json/decoder.py"
    assert reports.display_path("<frozen importlib._bootstrap>") == "<frozen importlib._bootstrap>"
    long = "/very/" + "long/" * 30 + "file.py"
    shown = reports.display_path(long)
    assert len(shown) == 50 and shown.endswith("long/file.py")


def many_allocs(tmp_path, n=1_100_000):
    """n ALLOCs of 8 B with no stack: two bytes each (the fresh cache's pair)."""
    path = tmp_path / "many.mlens"
    path.write_bytes(Capture().header() + b"\x80\x08" * n)
    return path


def test_progress_callback(tmp_path):
    path = many_allocs(tmp_path)
    calls = []
    d = _engine.read_types(str(path), progress=lambda *a: calls.append(a))
    assert d["allocations"] == 1_100_000 and d["truncated"] is True
    size = path.stat().st_size
    assert calls and all(p == 1 and s == size and 0 < pos <= size for p, pos, s in calls)
    assert [c[1] for c in calls] == sorted(c[1] for c in calls)


def test_progress_callback_exception_stops_the_report(tmp_path):
    path = many_allocs(tmp_path)

    class Stop(Exception):
        pass

    def stop(*args):
        raise Stop()

    for fn in (_engine.read_summary, _engine.read_types, _engine.read_leaks):
        with pytest.raises(Stop):
            fn(str(path), progress=stop)

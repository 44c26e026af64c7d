"""`memlens summary` reads its capture once (session 8, speed): the RSS
section ("Where the RSS goes") is read in the same pass as the summary.

Ground truth: a capture written by the independent encoder tests/capfile.py
with known RSS samples, native (--native) blocks whose live bytes the
reader puts into the samples, and pymalloc arenas with known blocks; the
separate reading (`_engine.rss_report`, what `memlens rss` runs) must give
the same result, and the command must not call it."""
import json

import capfile
from memlens import _engine, cli

NATIVE = 3 << 20


def fields(rss):
    # RSS_SAMPLE fields in format.h's order (rss, anonymous, stacks, arenas'
    # resident, pymalloc used, malloc used, malloc free, own, traced, traced
    # small); the native field left out: the tracker writes 0, the reader
    # fills it from the live native blocks
    return [rss, rss // 2, 1 << 16, 8 << 20, 5 << 20, 20 << 20, 1 << 20, 1 << 18, 6 << 20, 5 << 20]


def make(path):
    cap = capfile.Capture({"python": "3.11.7", "pid": 1, "argv": ["x.py"], "start_time_us": 1,
                           "options": {}}, version=2)
    cap.thread_def(1, 11, "MainThread")
    cap.switch_thread(1)
    code = cap.code_def("/src/app.py", "build", 10, [(0, 12)])
    frame = cap.frame_def(0, code, 0)
    nat = cap.type_def("<native: libfoo.so>")
    obj = cap.type_def("Node")
    cap.time(1000)
    kept = cap.alloc(0, nat, NATIVE, domain=capfile.RAW)
    small = [cap.alloc(frame, obj, 64) for _ in range(5)]
    gone = cap.alloc(frame, obj, 64)
    for rss in (40 << 20, 90 << 20, 70 << 20, 60 << 20):
        cap.time(100_000)
        cap.rss_sample(fields(rss))
    cap.free(gone)
    cap.arena(0x10000, 1 << 18, 1 << 18, 64, 2, 320)   # mostly empty: holds the 5 Nodes
    cap.arena(0x60000, 1 << 18, 1 << 18, 64, 64, 1 << 18)
    cap.arena_blocks(0, small)
    cap.save(str(path))
    return kept


def test_one_pass_gives_what_the_rss_reading_gives(tmp_path):
    path = tmp_path / "c.mlens"
    make(path)
    for points in (2, 3, 2000):
        one = _engine.read_summary(str(path), top=10, rss_points=points)
        alone = _engine.rss_report(str(path), points)
        assert one["rss"] == alone
        # the summary's own fields do not change when the RSS rides along
        plain = _engine.read_summary(str(path), top=10)
        assert plain["rss"] is None
        assert {k: v for k, v in one.items() if k != "rss"} == {k: v for k, v in plain.items() if k != "rss"}
    rss = _engine.read_summary(str(path), rss_points=2000)["rss"]
    assert rss["samples"] == 4 and len(rss["points"]) == 4
    assert rss["peak"]["fields"]["rss"] == 90 << 20 and rss["end"]["fields"]["rss"] == 60 << 20
    # the native bytes live at each sample come from the events (the record has 0)
    assert rss["end"]["fields"]["native_traced"] == NATIVE
    a = rss["arenas"]
    assert a["arenas"] == 2 and a["mostly_empty"]["arenas"] == 1
    assert a["mostly_empty"]["blocks"] == 5 and a["mostly_empty"]["bytes"] == 5 * 64
    assert [(g["function"], g["line"], g["type"], g["blocks"]) for g in a["groups"]] == [("build", 12, "Node", 5)]


def test_summary_command_reads_the_capture_once(tmp_path, monkeypatch, capsys):
    path = tmp_path / "c.mlens"
    make(path)
    expected = _engine.rss_report(str(path), 2)
    calls = []

    def counted(name):
        real = getattr(_engine, name)

        def fn(*a, **kw):
            calls.append(name)
            return real(*a, **kw)
        return fn
    for name in ("read_summary", "rss_report", "read_types", "read_leaks"):
        monkeypatch.setattr(_engine, name, counted(name))
    assert cli.main(["summary", "--json", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert calls == ["read_summary"]
    assert doc["rss"]["peak"]["rss_bytes"] == expected["peak"]["fields"]["rss"] == 90 << 20
    assert doc["rss"]["end"]["rss_bytes"] == expected["end"]["fields"]["rss"]
    calls.clear()
    assert cli.main(["summary", str(path)]) == 0
    text = capsys.readouterr().out
    assert calls == ["read_summary"]
    assert "Where the RSS goes at the RSS peak" in text and "Where the RSS goes at the end" in text

"""`memlens export`: each format read back by its consumer (go tool pprof) or
checked against its published definition (speedscope's JSON schema, the
Trace Event Format), with the ground truth of test_calltree's program: 1000
Lessons made in f() called from g() called from main(), kept to the end, 1000
more freed, 300 made and kept by a worker thread."""
import csv
import io
import json
import os
import shutil
import subprocess

import pytest

from conftest import memlens, report
from test_calltree import LESSONS
from memlens import _engine

HERE = os.path.dirname(os.path.abspath(__file__))
LESSON = "__main__.Lesson"


@pytest.fixture(scope="module")
def lessons(tmp_path_factory):
    import textwrap
    d = tmp_path_factory.mktemp("export")
    src = textwrap.dedent(LESSONS).lstrip("\n")
    (d / "prog.py").write_text(src)
    lines = {t.split("# @", 1)[1].strip(): no for no, t in enumerate(src.splitlines(), 1)
             if "# @" in t}
    cap = str(d / "cap.mlens")
    proc = memlens("run", "-q", "-o", cap, str(d / "prog.py"))
    assert proc.returncode == 0, proc.stderr
    return str(d / "prog.py"), lines, cap, d


def export(cap, fmt_, *args):
    proc = memlens("export", cap, "--format", fmt_, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def main_path(prog, lines):
    return [("<module>", lines["call_main"]), ("main", lines["call_g"]), ("g", lines["call_f"]),
            ("f", lines["make"])]


def lesson_size(cap):
    """The block size of one Lesson as the tracker saw it (every Lesson's is the same)."""
    tree = _engine.read_calltree(cap, "end")
    v = tree["views"]["end"]
    sizes = {b // c for t, b, c in zip(v["type"], v["bytes"], v["count"])
             if tree["types"][t] == LESSON and b % c == 0}
    assert len(sizes) == 1
    return sizes.pop()


def test_folded(lessons):
    prog, lines, cap, _ = lessons
    out = export(cap, "folded", "--view", "end")
    want = ";".join("%s (%s:%d)" % (f, prog, ln) for f, ln in main_path(prog, lines))
    want += ";[%s]" % LESSON
    rows = [l.rsplit(" ", 1) for l in out.splitlines()]
    got = [int(v) for k, v in rows if k == want]
    assert got == [1000 * lesson_size(cap)]
    # every byte of the view, as the summary counts them
    assert sum(int(v) for _k, v in rows) == report("summary", cap)["end_bytes"]


def test_csv(lessons):
    prog, lines, cap, _ = lessons
    rows = list(csv.DictReader(io.StringIO(export(cap, "csv", "--view", "allocated"))))
    f_line = lines["make"]
    lesson_rows = [r for r in rows if r["type"] == LESSON and r["function"] == "f"
                   and int(r["line"]) == f_line]
    # 1000 kept + 1000 freed from main (two call lines), 300 from the worker
    assert sorted(int(r["count"]) for r in lesson_rows) == [300, 1000, 1000]
    assert all(r["stack"].endswith("f (%s:%d)" % (prog, f_line)) for r in lesson_rows)
    assert sum(int(r["bytes"]) for r in rows) == report("summary", cap)["allocated_bytes"]


def test_speedscope_schema(lessons):
    jsonschema = pytest.importorskip("jsonschema")
    prog, lines, cap, _ = lessons
    doc = json.loads(export(cap, "speedscope", "--view", "peak"))
    with open(os.path.join(HERE, "schemas", "speedscope-file-format-schema.json")) as f:
        jsonschema.validate(doc, json.load(f))
    frames = doc["shared"]["frames"]
    prof = doc["profiles"][0]
    want = [(f, prog, ln) for f, ln in main_path(prog, lines)]
    hits = []
    for stack, w in zip(prof["samples"], prof["weights"]):
        names = [(frames[i]["name"], frames[i].get("file"), frames[i].get("line")) for i in stack]
        if names[:-1] == want and names[-1][0] == "[%s]" % LESSON:
            hits.append(w)
    assert hits == [1000 * lesson_size(cap)]  # the kept 1000
    assert sum(prof["weights"]) == prof["endValue"] == report("summary", cap)["peak_bytes"]
    # one profile per view, the chosen one first; each adds up to the summary
    summary = report("summary", cap)
    assert [p["name"].rsplit(" ", 1)[1] for p in doc["profiles"]] == [
        "(peak)", "(end)", "(allocated)", "(temporary)"]
    assert doc["profiles"][1]["endValue"] == summary["end_bytes"]
    assert doc["profiles"][2]["endValue"] == summary["allocated_bytes"]
    doc = json.loads(export(cap, "speedscope", "--view", "end"))
    with open(os.path.join(HERE, "schemas", "speedscope-file-format-schema.json")) as f:
        jsonschema.validate(doc, json.load(f))
    assert doc["profiles"][0]["name"].endswith("(end)") and doc["activeProfileIndex"] == 0


def test_chrome_trace(lessons):
    _, _, cap, _ = lessons
    doc = json.loads(export(cap, "chrome-trace"))
    events = doc["traceEvents"]
    counters = [e for e in events if e["ph"] == "C"]
    assert counters
    # the Trace Event Format: name, ph, ts (us), pid, tid, numeric args for counters
    for e in counters:
        assert isinstance(e["name"], str) and isinstance(e["ts"], int)
        assert isinstance(e["pid"], int) and isinstance(e["tid"], int)
        assert all(isinstance(v, int) for v in e["args"].values())
    ts = [e["ts"] for e in counters]
    assert ts == sorted(ts)
    memory = [e for e in counters if e["name"] == "memory"]
    assert max(e["args"]["heap_bytes"] for e in memory) <= report("summary", cap)["peak_bytes"]
    # per-type counters: at the time bucket of the peak, the Lessons held
    # are exactly the peak view's, and all types add up to the peak
    peak = _engine.read_calltree(cap, "peak")
    v = peak["views"]["peak"]
    want = sum(c for t, c in zip(v["type"], v["count"]) if peak["types"][t] == LESSON)
    blocks = [e for e in counters if e["name"] == "blocks by type"]
    bytes_ = [e for e in counters if e["name"] == "bytes by type"]
    assert blocks and len(blocks) == len(bytes_)
    top = max(range(len(bytes_)), key=lambda i: sum(bytes_[i]["args"].values()))
    assert blocks[top]["args"][LESSON] == want > 0
    assert bytes_[top]["args"][LESSON] == want * lesson_size(cap)
    assert sum(bytes_[top]["args"].values()) == report("summary", cap)["peak_bytes"]


def _go():
    go = shutil.which("go")
    if not go:
        pytest.fail("go is not installed (tests/run_all.sh installs Debian golang-go)")
    return go


def pprof_top(go, path, index, *extra):
    env = dict(os.environ, GOFLAGS="-mod=mod", GOPROXY="off", HOME=os.environ.get("HOME", "/tmp"))
    proc = subprocess.run([go, "tool", "pprof", "-top", "-nodecount=1000", "-sample_index=" + index]
                          + list(extra) + [path], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    flat = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 6 and parts[1].endswith("%"):
            flat[" ".join(parts[5:])] = parts[0]
    return flat, proc.stdout


def test_pprof_go_tool(lessons):
    go = _go()
    _, _, cap, d = lessons
    out = str(d / "end.pb.gz")
    proc = memlens("export", cap, "--format", "pprof", "--view", "end", "-o", out)
    assert proc.returncode == 0, proc.stderr
    with open(out, "rb") as f:
        assert f.read(2) == b"\x1f\x8b"  # gzip
    focus = "-tagfocus=type=^__main__\\.Lesson$"
    inuse, text = pprof_top(go, out, "inuse_objects", focus)
    assert inuse.get("f") == "1300", text  # 1000 kept by main, 300 by the worker
    alloc, text = pprof_top(go, out, "alloc_objects", focus)
    assert alloc.get("f") == "2300", text
    space, text = pprof_top(go, out, "inuse_space")
    assert "Type: inuse_space" in text


def test_pprof_needs_output(lessons):
    _, _, cap, _ = lessons
    proc = memlens("export", cap, "--format", "pprof")
    assert proc.returncode == 2 and "-o" in proc.stderr and "Traceback" not in proc.stderr


def test_export_output_exclusive(lessons):
    _, _, cap, d = lessons
    out = d / "exists.txt"
    out.write_text("keep")
    proc = memlens("export", cap, "--format", "folded", "-o", str(out))
    assert proc.returncode == 2 and out.read_text() == "keep"
    proc = memlens("export", cap, "--format", "folded", "-o", str(out), "-f")
    assert proc.returncode == 0 and "[__main__.Lesson]" in out.read_text()

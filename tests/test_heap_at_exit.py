"""memlens run's heap at exit: buffers named by their owners and the path
that holds each leak group (records 0x10..0x13, docs/FORMAT.md), against
programs whose objects, lines and holders are known."""
import json
import os
import signal
import subprocess
import sys

from conftest import memlens, report

LEAKY = """
class Record:
    def __init__(self, i):
        self.i = i


class Lesson:
    pass


KEEP = []
TABLE = {}


def build(n):
    for i in range(n):
        KEEP.append(Record(i))  # @record


def lessons():
    out = []
    for i in range(300):
        l = Lesson()
        l.__dict__  # a dict object of its own
        for k in range(40):
            setattr(l, "a%d" % k, k)
        out.append(l)
    return out


build(25000)
BLOB = bytearray(40 * 1024 * 1024)  # @blob
ITEMS = [None] * 100000  # @items
LESSONS = lessons()
for i in range(5000):
    TABLE["k%d" % i] = i
print("done")
"""


def _group(rows, type_, line=None):
    found = [r for r in rows if r["type"] == type_ and (line is None or r["line"] == line)]
    assert found, [(r["type"], r["line"]) for r in rows]
    return found[0]


def test_leaks_name_holders_and_owners(script, capture):
    prog = script(LEAKY)
    # --exact: free lists off, so each count below is exact on every version
    path, proc = capture(prog, opts=("--heap-at-exit", "--exact"))
    assert proc.stdout == "done\n"
    rows = report("leaks", path)
    rec = _group(rows, "__main__.Record", prog.line("record"))
    assert rec["count"] == 25000
    assert rec["holder"]["path"] == ["module __main__", ".KEEP", "(list)", "[i]"]
    assert rec["holder"]["count"] == 25000
    blob = _group(rows, "bytearray (data)", prog.line("blob"))
    assert blob["count"] == 1 and blob["bytes"] >= 40 * 1024 * 1024
    assert blob["holder"]["path"] == ["module __main__", ".BLOB"]
    items = _group(rows, "list (items)", prog.line("items"))
    assert items["bytes"] >= 100000 * 8
    assert items["holder"]["path"] == ["module __main__", ".ITEMS"]
    # no big anonymous buffer is left at those lines
    for r in rows:
        if r["line"] in (prog.line("blob"), prog.line("items")):
            assert not r["type"].startswith("<"), r
    # each Lesson's dict buffers, named by their owner: its keys table, or on
    # 3.10 (keys shared with the class) its values array
    keys = [r for r in rows if r["type"].startswith(("dict (keys) of", "dict (values) of"))
            and "Lesson" in r["type"]]
    assert keys and sum(r["count"] for r in keys) >= 300, [r["type"] for r in rows]
    table = [r for r in rows if r["type"] == "dict (keys) of module" or r["type"] == "dict (keys)"]
    assert any(r["holder"] and r["holder"]["path"][:2] == ["module __main__", ".TABLE"] for r in table)


def test_text_and_why(script, capture):
    prog = script(LEAKY)
    path, _ = capture(prog, opts=("--heap-at-exit",))
    out = memlens("leaks", path)
    assert out.returncode == 0, out.stderr
    assert "module __main__ .KEEP (list) [i]" in out.stdout
    why = memlens("why", path, "__main__.Record")
    assert why.returncode == 0, why.stderr
    assert ("25,000 __main__.Record" in why.stdout and
            "made at build():%d -- held by module __main__ .KEEP (list) [i]" % prog.line("record")
            in why.stdout), why.stdout
    site = memlens("why", path, "prog.py:%d" % prog.line("blob"), "--json")
    assert site.returncode == 0, site.stderr
    doc = json.loads(site.stdout)
    assert doc["matches"][0]["type"] == "bytearray (data)"
    assert doc["matches"][0]["holder"]["path"] == ["module __main__", ".BLOB"]
    bad = memlens("why", path, "NoSuchType")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr


def test_no_heap_at_exit_leaves_the_capture_as_before(script, capture):
    prog = script(LEAKY)
    path, proc = capture(prog, opts=("--heap-at-exit", "--no-heap-at-exit"))
    assert proc.stdout == "done\n"
    kinds = None
    doc = json.loads(memlens("leaks", path, "--json").stdout)
    assert doc["heap_at_exit"] is None
    rec = _group(doc["leaks"], "__main__.Record")
    assert rec.get("holder") is None
    assert not any(" (data)" in r["type"] or " (items)" in r["type"] for r in doc["leaks"])
    why = memlens("why", path, "__main__.Record")
    assert why.returncode == 2 and "no heap at exit" in why.stderr
    default, _ = capture(prog)  # off by default (its cost: BENCHMARKS.md)
    assert json.loads(memlens("leaks", default, "--json").stdout)["heap_at_exit"] is None


def test_program_output_and_status_unchanged(script, capture):
    prog = script(LEAKY + "import sys\nsys.stderr.write('err\\n')\nsys.exit(3)\n")
    path, proc = capture(prog, opts=("--heap-at-exit",), expect_status=3)
    plain = subprocess.run([sys.executable, prog.path], capture_output=True, text=True)
    assert (proc.stdout, proc.stderr, proc.returncode) == (plain.stdout, plain.stderr, plain.returncode)
    rows = report("leaks", path)
    assert _group(rows, "__main__.Record")["holder"]["path"][:2] == ["module __main__", ".KEEP"]


def test_snapshot_now_and_signal(script, capture):
    prog = script("""
        import os, signal
        import memlens
        HELD = [bytearray(1000) for _ in range(50)]  # @held
        r = memlens.snapshot_now()
        print(r is not None and r["held"] >= 50)
        os.kill(os.getpid(), signal.SIGUSR2)
        print("after")
    """)
    path, proc = capture(prog, opts=("--heap-on", "SIGUSR2", "--no-heap-at-exit"))
    assert proc.stdout == "True\nafter\n", proc.stderr
    doc = json.loads(memlens("leaks", path, "--json").stdout)
    assert doc["heap_at_exit"]["kind"] == "signal"
    assert doc["heap_at_exit"]["snapshots"] == 2
    b = _group(doc["leaks"], "bytearray", prog.line("held"))
    assert b["count"] == 50 and b["holder"]["path"] == ["module __main__", ".HELD", "(list)", "[i]"]


def test_heap_on_rejects_other_signals(script):
    prog = script("print(1)\n")
    r = memlens("run", "--heap-on", "SIGKILL", prog.path)
    assert r.returncode == 2 and "SIGUSR" in r.stderr and "Traceback" not in r.stderr


def test_old_capture_still_reads(tmp_path):
    import capfile
    cap = capfile.Capture(version=1)
    s = cap.site("app.py", "keep", 20)
    t = cap.type_def("bytes")
    cap.alloc(s, t, 100)
    p = tmp_path / "old.mlens"
    cap.save(str(p))
    doc = json.loads(memlens("leaks", str(p), "--json").stdout)
    assert doc["heap_at_exit"] is None
    assert doc["leaks"][0]["type"] == "bytes" and doc["leaks"][0].get("holder") is None

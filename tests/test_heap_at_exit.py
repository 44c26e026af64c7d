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
    from memlens import _engine
    exit_kinds = {"snapshot", "owners", "holder", "held"}
    assert not {e["kind"] for e in _engine.read_events(path)["events"]} & exit_kinds
    with_it, _ = capture(prog, opts=("--heap-at-exit",))
    assert {e["kind"] for e in _engine.read_events(with_it)["events"]} >= exit_kinds
    doc = json.loads(memlens("leaks", path, "--json").stdout)
    assert doc["heap_at_exit"] is None
    rec = _group(doc["leaks"], "__main__.Record")
    assert rec.get("holder") is None
    assert not any(" (data)" in r["type"] or " (items)" in r["type"] for r in doc["leaks"])
    why = memlens("why", path, "__main__.Record")
    assert why.returncode == 2 and "has no holders" in why.stderr

def reports_meta(path):
    from memlens import reports
    return reports.meta(path)


def test_default_names_buffers_but_finds_no_holders(script, capture):
    """Without a flag the pass at exit names the buffers still allocated by
    their owners (one walk of the heap, SNAPSHOT kind 4 and OWNERS records:
    BENCHMARKS.md "Heap at exit"), and finds no holders (no HOLDER or HELD
    records: the graph costs more); --heap-at-exit writes those too and the
    capture's options say which pass ran."""
    prog = script(LEAKY)
    default, proc = capture(prog, opts=("--exact",))
    assert proc.stdout == "done\n"
    from memlens import _engine, reports
    events = _engine.read_events(default)["events"]
    kinds = {e["kind"] for e in events}
    assert {"snapshot", "owners"} <= kinds and not kinds & {"owner", "holder", "held"}, kinds
    options = reports.meta(default)["options"]
    assert options["heap_at_exit"] is False and options["owners_at_exit"] is True
    doc = json.loads(memlens("leaks", default, "--json").stdout)
    assert doc["heap_at_exit"] is None and doc["owners_at_exit"]["objects"] > 25000
    # the buffers read by their owners, at the lines that made them
    blob = _group(doc["leaks"], "bytearray (data)", prog.line("blob"))
    assert blob["count"] == 1 and blob["bytes"] >= 40 * 1024 * 1024
    items = _group(doc["leaks"], "list (items)", prog.line("items"))
    assert items["count"] == 1 and items["bytes"] >= 100000 * 8
    assert all("holder" not in r for r in doc["leaks"])
    text = memlens("leaks", default)
    assert "bytearray (data)" in text.stdout and "held by" not in text.stdout, text.stdout
    why = memlens("why", default, "__main__.Record")
    assert why.returncode == 2 and "has no holders" in why.stderr and "--heap-at-exit" in why.stderr
    # --heap-at-exit: the same names, and the holders
    path, proc = capture(prog, opts=("--exact", "--heap-at-exit"))
    assert proc.stdout == "done\n"
    doc = json.loads(memlens("leaks", path, "--json").stdout)
    assert doc["heap_at_exit"]["kind"] == "exit" and doc["heap_at_exit"]["snapshots"] == 1
    assert doc["owners_at_exit"] is None
    rec = _group(doc["leaks"], "__main__.Record")
    assert rec["holder"]["path"] == ["module __main__", ".KEEP", "(list)", "[i]"]
    assert _group(doc["leaks"], "bytearray (data)", prog.line("blob"))["count"] == 1
    options = reports.meta(path)["options"]
    assert options["heap_at_exit"] is True and options["owners_at_exit"] is False
    off, _ = capture(prog, opts=("--no-heap-at-exit",))
    assert reports.meta(off)["options"]["owners_at_exit"] is False
    doc = json.loads(memlens("leaks", off, "--json").stdout)
    assert doc["heap_at_exit"] is None and doc["owners_at_exit"] is None
    assert not any(" (data)" in r["type"] or " (items)" in r["type"] for r in doc["leaks"])


def test_array_data_named_by_owner(script, capture):
    """An array.array's items are a buffer of their own (PyMem): named
    "array.array (data)" at the line that made the array, a subclass's by
    its class, by the default pass and by --heap-at-exit."""
    prog = script("""
        import array
        class Floats(array.array):
            pass
        A = array.array("d", range(100000))  # @arr
        F = Floats("i", range(50000))  # @sub
    """)
    for opts in ((), ("--heap-at-exit",)):
        path, _ = capture(prog, opts=opts)
        rows = report("leaks", path, "--top", "0")
        arr = [r for r in rows if r["line"] == prog.line("arr")]
        data = _group(arr, "array.array (data)", prog.line("arr"))
        assert data["count"] == 1 and 800000 <= data["bytes"] < 800000 * 1.2, arr
        assert not [r for r in arr if r["type"] == "<PyMem buffer>"], arr
        sub = [r for r in rows if r["line"] == prog.line("sub")]
        data = _group(sub, "__main__.Floats (data)", prog.line("sub"))
        assert data["count"] == 1 and 200000 <= data["bytes"] < 200000 * 1.2, sub


def test_default_pass_keeps_the_programs_snapshot(script, capture):
    """A program that took a snapshot (memlens.snapshot_now()) keeps its
    holders in the reports: the default pass at exit, which would replace
    it with one that has none, is skipped then."""
    prog = script("""
        import memlens
        KEEP = [bytearray(1000) for i in range(200)]  # @keep
        memlens.snapshot_now()
    """)
    path, _ = capture(prog)
    doc = json.loads(memlens("leaks", path, "--json").stdout)
    assert doc["heap_at_exit"]["kind"] == "snapshot_now" and doc["heap_at_exit"]["snapshots"] == 1
    assert doc["owners_at_exit"] is None
    rows = [r for r in doc["leaks"] if r["line"] == prog.line("keep") and r["type"] == "bytearray"]
    assert rows and rows[0]["holder"]["path"][:2] == ["module __main__", ".KEEP"], rows


def test_owner_named_keys_keep_the_free_list_bound(script, capture):
    """10,000 dicts kept at one line: with --heap-at-exit their keys tables read
    "dict (keys)" and keep the bound of the dict-keys free list that
    "<dict keys>" has (80 without --exact, 0 with it)."""
    prog = script("""
        KEEP = [{"a": i} for i in range(10000)]  # @dicts
    """)
    for opts, bound in ((("--heap-at-exit",), 80), (("--heap-at-exit", "--exact"), 0)):
        path, _ = capture(prog, opts=opts)
        rows = [r for r in report("leaks", path, "--top", "0")
                if r["line"] == prog.line("dicts") and r["file"] == prog.path]
        keys = [r for r in rows if r["type"] == "dict (keys)"]
        assert len(keys) == 1 and keys[0]["alive_max_error"] == bound, rows
        assert abs(keys[0]["count"] - 10000) <= bound
        assert not [r for r in rows if r["type"] == "<dict keys>"]


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


# One program, four holders whose truth is known: a module list (with its
# retained size as memlens.retained_size says in the same process), a
# running thread's local, C code only (a reference count raised through
# ctypes, then the name deleted), and a list reached only through a dict
# once its weak references are left out.
HOLDERS = """
import ctypes, sys, threading, weakref
import memlens


class Record:
    def __init__(self, i):
        self.i = i


KEEP = []


def build(n):
    for i in range(n):
        KEEP.append(Record(i))  # @record


ready = threading.Event()
never = threading.Event()


def hold():
    batch = [Record(i) for i in range(1000)]  # @batch
    ready.set()
    never.wait()  # @wait


build(25000)
threading.Thread(target=hold, name="worker", daemon=True).start()
ready.wait()
lost = [Record(i) for i in range(300)]  # @lost
ctypes.pythonapi.Py_IncRef(ctypes.py_object(lost))
del lost
objs = [Record(i) for i in range(200)]  # @weak
REFS = [weakref.ref(o) for o in objs]  # first in __main__: a weak path would be the shortest
STRONG = {"a": objs}
del objs
with open(sys.argv[1], "w") as f:
    f.write(str(memlens.retained_size(KEEP)))
print("done")
"""


def test_holders_are_the_graphs(script, capture, tmp_path):
    prog = script(HOLDERS)
    truth = tmp_path / "retained.txt"
    path, proc = capture(prog, str(truth), opts=("--heap-at-exit",))
    assert proc.stdout == "done\n"
    doc = json.loads(memlens("leaks", path, "--json", "--top", "0").stdout)
    rows = doc["leaks"]
    rec = _group(rows, "__main__.Record", prog.line("record"))
    assert rec["count"] == 25000
    assert rec["holder"]["path"] == ["module __main__", ".KEEP", "(list)", "[i]"]
    assert rec["holder_retained_bytes"] == rec["holder"]["retained"] == int(truth.read_text())
    batch = _group(rows, "__main__.Record", prog.line("batch"))
    assert batch["count"] == 1000
    assert batch["holder"]["path"] == [
        "thread worker, frame hold() in %s:%d, local 'batch'" % (prog.path, prog.line("wait")), "(list)", "[i]"]
    lost = _group(rows, "__main__.Record", prog.line("lost"))
    assert lost["holder"]["path"] == ["held by C code", "(list)", "[i]"]
    weak = _group(rows, "__main__.Record", prog.line("weak"))
    assert weak["holder"]["path"] == ["module __main__", ".STRONG", "(dict)", "['a']", "(list)", "[i]"]
    for r in rows:  # a weak reference is never an edge: from one, a path goes on only to its callback
        hops = r["holder"]["path"] if r["holder"] else []
        for i, hop in enumerate(hops[:-1]):
            if hop.startswith("(weakref."):
                assert hops[i + 1] == ".__callback__", hops
    text = memlens("why", path, "%s:%d" % (os.path.basename(prog.path), prog.line("record"))).stdout
    from memlens import fmt
    assert ("25,000 __main__.Record (%s) made at build():%d -- held by module __main__ .KEEP (list) [i] "
            "(retains %s)" % (fmt.human_bytes(rec["bytes"]), prog.line("record"),
                              fmt.human_bytes(int(truth.read_text())))) in text, text


# ---- the records themselves: golden file, capfile, corrupt records ----

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")


def heap_at_exit_scenario(tail=None):
    """tests/c/gen_golden.c's v2-heap-at-exit scenario, through capfile
    (from the spec). `tail(cap)`, when given, replaces the snapshot (for
    corrupt variants)."""
    import capfile
    cap = capfile.Capture(version=2)
    cap.thread_def(1, 4242, "MainThread")
    cap.switch_thread(1)
    cap.code_def("demo.py", "build", 1, [(0, 1), (10, 5)])
    cap.frame_def(0, 1, 12)
    cap.type_def("list")
    cap.type_def("<PyMem buffer>", capfile.TYPEF_BUFFER)
    cap.type_def("Record")
    cap.time(100)
    cap.alloc(1, 1, 56, capfile.OBJ)
    cap.alloc(1, 2, 64, capfile.MEM)
    for _ in range(3):
        cap.alloc(1, 3, 48, capfile.OBJ)
    cap.time(900)
    if tail:
        tail(cap)
    else:
        cap.snapshot(capfile.SNAP_EXIT)
        cap.type_def("list (items)", capfile.TYPEF_BUFFER)
        cap.owner(2, 1, 4)
        keep = ["module __main__", ".KEEP", "(list)", "[i]"]
        cap.holder(1, keep[:2], 216)
        cap.held(1, [1, 2])
        cap.holder(2, keep, 216)
        cap.held(2, [3, 4])
        cap.holder(3, ["held by C code"], 48)
        cap.held(3, [5])
        cap.snapshot(capfile.SNAP_END, 5, 1234)
    cap.trailer([5, 0, 0, 0, 0])
    return cap


def test_golden_heap_at_exit_bytes_events_and_report(tmp_path):
    from memlens import _engine
    cap = heap_at_exit_scenario()
    golden = os.path.join(GOLDEN, "v2-heap-at-exit.mlens")
    with open(golden, "rb") as f:
        assert cap.data() == f.read()
    got = _engine.read_events(golden)
    assert got["events"] == cap.events and got["truncated"] is False
    doc = json.loads(memlens("leaks", golden, "--json").stdout)
    assert doc["heap_at_exit"]["kind"] == "exit" and doc["heap_at_exit"]["objects"] == 5
    rows = {r["type"]: r for r in doc["leaks"]}
    assert set(rows) == {"list", "list (items)", "Record"}  # the buffer named by its OWNER
    rec = rows["Record"]
    assert (rec["count"], rec["bytes"]) == (3, 144)
    # two of the three Records are KEEP's: that holder reaches most bytes
    assert rec["holder"] == {"path": ["module __main__", ".KEEP", "(list)", "[i]"], "retained": 216,
                             "bytes": 96, "count": 2}
    assert rec["holder_retained_bytes"] == 216
    assert rows["list (items)"]["holder"]["path"] == ["module __main__", ".KEEP"]
    # a version-1 file with the same records is corrupt
    v1 = tmp_path / "v1.mlens"
    data = bytearray(cap.data())
    data[4:8] = (1).to_bytes(4, "little")
    v1.write_bytes(bytes(data))
    r = memlens("leaks", str(v1))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


def test_owners_only_snapshot_reads(tmp_path):
    """SNAPSHOT kind 4 (the default pass at exit, owners only) with an
    OWNERS record: the golden file writer.c makes is what the independent
    encoder makes; the buffers take their OWNERS names, no row has a
    holder, and the report says which pass it was."""
    import capfile

    def tail(cap):
        cap.snapshot(capfile.SNAP_OWNERS)
        cap.type_def("list (items)", capfile.TYPEF_BUFFER)
        cap.type_def("Record (values)", capfile.TYPEF_BUFFER)
        # OWNERS, walk order: seq deltas +4 then -2, owner distances -1 then +1
        cap.owners([(4, 5, 5), (2, 1, 4)])
        cap.snapshot(capfile.SNAP_END, 5, 321)
    cap = heap_at_exit_scenario(tail)
    p = os.path.join(GOLDEN, "v2-owners.mlens")  # made by writer.c (tests/c/gen_golden.c)
    with open(p, "rb") as f:
        assert cap.data() == f.read()
    from memlens import _engine
    assert _engine.read_events(str(p))["events"] == cap.events
    doc = json.loads(memlens("leaks", str(p), "--json").stdout)
    assert doc["heap_at_exit"] is None
    assert doc["owners_at_exit"] == {"objects": 5, "duration_us": 321}
    rows = {r["type"]: r for r in doc["leaks"]}
    assert set(rows) == {"list", "list (items)", "Record", "Record (values)"}
    assert (rows["Record"]["count"], rows["Record (values)"]["count"]) == (2, 1)
    assert all(r.get("holder") is None for r in doc["leaks"])
    events = [e for e in _engine.read_events(str(p))["events"] if e["kind"] == "owners"]
    assert [(e["seqs"], e["owner_seqs"], e["types"]) for e in events] == [([4, 2], [5, 1], [5, 4])]


def _corrupt(tmp_path, name, tail):
    p = tmp_path / (name + ".mlens")
    p.write_bytes(heap_at_exit_scenario(tail).data())
    r = memlens("leaks", str(p))
    assert r.returncode == 2, (name, r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, (name, r.stderr)
    return r.stderr


def test_corrupt_heap_at_exit_records_fail_cleanly(tmp_path):
    import capfile
    from capfile import uv, sv, string

    def raw(*parts):
        return lambda cap: cap.raw(b"".join(parts))
    H = bytes([capfile.TAG_HOLDER])
    D = bytes([capfile.TAG_HELD])
    O = bytes([capfile.TAG_OWNERS])
    cases = {
        "snapshot_kind": raw(bytes([capfile.TAG_SNAPSHOT]), uv(5)),
        "owner_seq_0": raw(bytes([capfile.TAG_OWNER]), uv(0), uv(1), uv(1)),
        "owner_past_last": raw(bytes([capfile.TAG_OWNER]), uv(6), uv(1), uv(1)),
        "owner_type_undefined": raw(bytes([capfile.TAG_OWNER]), uv(2), uv(1), uv(99)),
        "holder_id_0": raw(H, uv(0), uv(1), string("x"), uv(0)),
        "holder_too_many_hops": raw(H, uv(1), uv(65), string("x") * 65, uv(0)),
        "holder_huge_hop_count": raw(H, uv(1), uv(2 ** 62)),  # must not allocate for it
        "holder_hop_oversize": raw(H, uv(1), uv(1), uv(10 ** 9), b"ab"),
        "held_too_many": raw(D, uv(1), uv(4097)),
        "held_huge_count": raw(D, uv(1), uv(2 ** 62)),
        "held_not_ascending": raw(H, uv(1), uv(1), string("x"), uv(0), D, uv(1), uv(2), uv(3), uv(0)),
        "held_past_last": raw(H, uv(1), uv(1), string("x"), uv(0), D, uv(1), uv(2), uv(3), uv(3)),
        # OWNERS: n x (sv seq delta, sv owner distance, uv type); 5 blocks, 3 types
        "owners_empty": raw(O, uv(0)),
        "owners_too_many": raw(O, uv(4097)),
        "owners_huge_count": raw(O, uv(2 ** 62)),  # must not allocate for it
        "owners_seq_past_last": raw(O, uv(1), sv(6), sv(0), uv(1)),
        "owners_seq_0": raw(O, uv(2), sv(2), sv(0), uv(1), sv(-2), sv(0), uv(1)),
        "owners_seq_below_0": raw(O, uv(1), sv(-1), sv(0), uv(1)),
        "owners_owner_below_0": raw(O, uv(1), sv(2), sv(3), uv(1)),
        "owners_owner_past_last": raw(O, uv(1), sv(2), sv(-4), uv(1)),
        "owners_type_0": raw(O, uv(1), sv(2), sv(1), uv(0)),
        "owners_type_undefined": raw(O, uv(1), sv(2), sv(1), uv(99)),
        "owners_huge_delta": raw(O, uv(1), uv(2 ** 64 - 1), sv(0), uv(1)),
    }
    for name, tail in cases.items():
        _corrupt(tmp_path, name, tail)
    # cut short at the end of the file: read as a capture that ends early
    # (docs/FORMAT.md), the records before the cut reported, no holder made up
    cut = {
        "holder_truncated_hops": raw(H, uv(1), uv(3), string("a"), string("b")),
        "held_truncated": raw(H, uv(1), uv(1), string("x"), uv(0), D, uv(1), uv(3), uv(1)),
    }
    for name, tail in cut.items():
        p = tmp_path / (name + ".mlens")
        data = heap_at_exit_scenario(tail).data()
        p.write_bytes(data[:data.rindex(bytes([capfile.TAG_TRAILER]))])  # the trailer off: cut there
        r = memlens("leaks", str(p), "--json")
        assert r.returncode == 0 and "Traceback" not in r.stderr, (name, r.stderr)
        doc = json.loads(r.stdout)
        assert doc["capture"]["truncated"] is True, name
        assert all(row.get("holder") is None for row in doc["leaks"]), name


MANY = """
class Item:
    def __init__(self, i):
        self.name = "item %d" % i
        self.tags = [i]


KEEP = [Item(i) for i in range(300000)]  # @items
print("done")
"""


def test_pass_records_span_many_writer_buffers(script, capture):
    # the pass's records (some MB: ~3 bytes of OWNERS per attribute table
    # and item array, a seq per held block: ~1.2 M blocks) fill the writer's
    # 1 MiB buffers several times over; a thread compresses them beside the
    # pass, and every one must reach the file whole and in order (compressed
    # or not)
    prog = script(MANY)
    for opts in (("--heap-at-exit", "--exact"), ("--heap-at-exit", "--exact", "--no-compress")):
        path, proc = capture(prog, opts=opts)
        assert proc.stdout == "done\n"
        rows = report("leaks", path)
        items = _group(rows, "__main__.Item", prog.line("items"))
        assert items["count"] == 300000
        assert items["holder"]["path"] == ["module __main__", ".KEEP", "(list)", "[i]"]
        assert items["holder"]["count"] == 300000
        tags = [r for r in rows if r["type"] == "list" and r["holder"] and r["holder"]["path"][-1] == ".tags"]
        assert sum(r["holder"]["count"] for r in tags) == 300000, [(r["type"], r["holder"]) for r in rows]
        names = [r for r in rows if r["type"] == "str" and r["holder"] and r["holder"]["path"][-1] == ".name"]
        assert sum(r["holder"]["count"] for r in names) == 300000
        arrays = [r for r in rows if r["type"] == "list (items)" and r["holder"]
                  and r["holder"]["path"][-1] == ".tags"]
        assert sum(r["count"] for r in arrays) == 300000
        os.unlink(path)


def test_deque_items_are_named_as_items(script, capture):
    prog = script("""
import collections
class Job:
    pass
QUEUE = collections.deque(Job() for _ in range(3000))  # @jobs
""")
    path, proc = capture(prog, opts=("--heap-at-exit", "--exact"))
    assert proc.returncode == 0, proc.stderr
    rows = report("leaks", path)
    jobs = _group(rows, "__main__.Job", prog.line("jobs"))
    assert jobs["count"] == 3000
    assert jobs["holder"]["path"] == ["module __main__", ".QUEUE", "(collections.deque)", "[i]"]
    assert jobs["holder"]["count"] == 3000

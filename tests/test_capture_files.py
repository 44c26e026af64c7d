"""Format compatibility (golden files) and bad capture files through the CLI."""
import json
import os
import pathlib
import struct
import subprocess
import sys

import pytest

import capfile
from capfile import MEM, OBJ, RAW, Capture
from memlens import _engine

GOLDEN = pathlib.Path(__file__).parent / "golden"
COMMANDS = ["summary", "types", "leaks"]
TRUNCATED_LINE = "warning: capture ends early (the process was killed?); reporting what it holds"


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "memlens"] + [str(a) for a in args],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def expected():
    with open(GOLDEN / "v1-basic.expected.json") as f:
        return json.load(f)


def test_golden_basic_decodes_exactly(expected):
    got = _engine.read_events(str(GOLDEN / "v1-basic.mlens"))
    assert got["events"] == expected["events"]
    got_codes = [dict(c, linemap=[list(p) for p in c["linemap"]]) for c in got["codes"]]
    assert got_codes == expected["codes"]
    assert got["frames"] == expected["frames"]
    assert got["types"] == expected["types"]
    assert got["trailer"] == expected["trailer"]
    assert got["truncated"] is False
    assert json.loads(_engine.read_meta(str(GOLDEN / "v1-basic.mlens"))["json"]) == expected["meta"]


def test_golden_truncated_holds_all_but_the_cut_record(expected):
    path = GOLDEN / "v1-truncated.mlens"
    assert path.stat().st_size == expected["truncated_file"]["size"]
    got = _engine.read_events(str(path))
    n = expected["truncated_file"]["events_dropped_at_end"]
    assert got["events"] == expected["events"][:-n]
    assert got["truncated"] is True
    assert got["trailer"] == [0, 0, 0, 0, 0]


def golden_scenario():
    """The scenario of tests/c/gen_golden.c, through capfile (from the spec)."""
    cap = Capture()
    cap.thread_def(1, 4242, "MainThread")
    cap.switch_thread(1)
    cap.code_def("demo.py", "<module>", 1, [(0, 1), (10, 3), (20, 5)])
    cap.code_def("demo.py", "make", 7, [(0, 7), (8, 8), (16, 0)])
    cap.frame_def(0, 1, 12)
    cap.frame_def(1, 2, 10)
    cap.type_def("list")
    cap.type_def("type", capfile.TYPEF_METATYPE)
    cap.type_def("<dict keys>", capfile.TYPEF_BUFFER)
    cap.time(100)
    cap.alloc(2, 1, 56)
    cap.alloc(2, 1, 56)
    cap.alloc(2, 0, 1000, domain=MEM)
    cap.alloc(0, 0, 4096, domain=RAW)
    cap.time(50)
    cap.memory(10485760, 5208)
    cap.context_stack(1)
    cap.free(3)
    cap.reuse(1)
    cap.mark(capfile.MARK_ENTER, "phase 1")
    cap.note(capfile.NOTE_WARNING, "something was lost")
    for i in range(70):
        cap.alloc(1, 3, 24 + i, domain=MEM)
    cap.free(2)
    cap.time(300)
    cap.fork(4321)
    cap.thread_def(2, 4243, "worker")
    cap.switch_thread(2)
    last = cap.alloc(1, 2, 900)
    cap.free(last)
    cap.switch_thread(1)
    cap.free(74)
    cap.switch_thread(2)
    cap.alloc(1, 2, 1 << 20)
    cap.switch_thread(1)
    cap.trailer([76, 4, 0, 0, 0])
    return cap


def test_independent_encoder_matches_golden_bytes(expected):
    """capfile.py (written from format.h) and writer.c agree byte for byte."""
    cap = golden_scenario()
    assert cap.data() == (GOLDEN / "v1-basic.mlens").read_bytes()
    assert cap.events == expected["events"]


def test_golden_reports(expected):
    from memlens import reports
    d = reports.summary(GOLDEN / "v1-basic.mlens")
    # heap: 56+56+1000+4096 = 5208, -1000, +sum(24..93) = 8303, -56, +900 -900, -93,
    # then the last 1 MiB block: the peak is the end
    end = 5208 - 1000 + sum(24 + i for i in range(70)) - 56 - 93 + (1 << 20)
    assert d["peak_bytes"] == end and d["end_bytes"] == end
    assert d["peak_time_s"] == pytest.approx(450e-6)
    assert d["allocations"] == 76 and d["frees"] == 4
    assert d["top_end"][0]["function"] == "<module>" and d["top_end"][0]["line"] == 3
    types = {r["type"]: r for r in reports.types(GOLDEN / "v1-basic.mlens")["types"]}
    assert types["list"]["allocs"] == 3 and types["list"]["frees"] == 2  # 2 allocs + 1 reuse
    assert types["<dict keys>"]["allocs"] == 70 and types["<dict keys>"]["alive"] == 69


@pytest.mark.parametrize("command", COMMANDS)
def test_truncated_capture_reports_with_one_warning(command):
    r = run_cli(command, GOLDEN / "v1-truncated.mlens", "--json")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0] == TRUNCATED_LINE
    json.loads(r.stdout)


def test_truncated_summary_counts_what_it_holds():
    r = run_cli("summary", GOLDEN / "v1-truncated.mlens", "--json")
    d = json.loads(r.stdout)
    assert d["capture"]["truncated"] is True and d["allocations"] == 75 and d["frees"] == 4


# ---- bad files: one line on stderr, exit status 2, no traceback ----

def header(version=1, meta=b"{}"):
    return capfile.MAGIC + struct.pack("<II", version, len(meta)) + meta


def corrupt_double_free():
    cap = Capture()
    s = cap.alloc(0, 0, 10)
    cap.free(s)
    cap.raw(b"\x40")           # FREE of block 1 again
    return cap.data()


def corrupt_domain3():
    cap = Capture()
    cap.raw(b"\xff\x00\x00\x08")
    return cap.data()


BAD = {
    "empty": (b"", "empty file, not a memlens capture"),
    "text": (b"this is not a capture\n", "not a memlens capture"),
    "short-header": (capfile.MAGIC[:5], "cut short inside its header"),
    "cut-json": (header(meta=b'{"python": "3.12"}')[:-4], "cut short inside its header"),
    "newer": (header(version=7),
              "capture format version 7 is newer than this memlens supports (2); upgrade memlens"),
    "double-free": (corrupt_double_free(), "which is not allocated"),
    "domain3": (corrupt_domain3(), "domain 3"),
    "bad-tag": (header(version=2) + b"\x30", "unknown record tag 0x30"),
    "v2-tag-in-v1": (header(version=1) + b"\x0e", "record tag 0x0e is not in format version 1"),
}


def check_one_line_error(r, must_contain):
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert must_contain in lines[0]
    assert r.stdout == ""


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_file(tmp_path, command, case):
    data, message = BAD[case]
    path = tmp_path / ("%s.mlens" % case)
    path.write_bytes(data)
    r = run_cli(command, path)
    check_one_line_error(r, message)
    assert str(path) in r.stderr


def test_corrupt_message_names_the_byte_offset(tmp_path):
    data = corrupt_double_free()
    path = tmp_path / "c.mlens"
    path.write_bytes(data)
    r = run_cli("summary", path)
    check_one_line_error(r, "corrupt capture at byte %d:" % (len(data) - 1))


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_file(tmp_path, command):
    r = run_cli(command, tmp_path / "nope.mlens")
    check_one_line_error(r, "No such file or directory")


def test_directory(tmp_path):
    check_one_line_error(run_cli("summary", tmp_path), "Is a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable(tmp_path):
    path = tmp_path / "locked.mlens"
    path.write_bytes(golden_scenario().data())
    path.chmod(0)
    check_one_line_error(run_cli("summary", path), "Permission denied")


@pytest.mark.parametrize("flag", [["--top", "-1"], ["--top", "x"], ["--sort", "nope"]])
def test_bad_flags(tmp_path, flag):
    path = golden_scenario().save(tmp_path / "g.mlens") if False else GOLDEN / "v1-basic.mlens"
    r = run_cli("types", path, *flag)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1


def test_zero_filled_tail_is_a_cut_not_corruption(tmp_path):
    cap = Capture()
    cap.alloc(0, 0, 10)
    path = tmp_path / "z.mlens"
    path.write_bytes(cap.data() + bytes(4096))
    r = run_cli("summary", path, "--json")
    assert r.returncode == 0 and r.stderr.splitlines() == [TRUNCATED_LINE]
    assert json.loads(r.stdout)["end_bytes"] == 10


def test_random_corruption_never_crashes(tmp_path):
    """Byte flips in a real capture: exit 0 or 2, never a crash or traceback,
    for every mutated file (the CLI ran only on the last one). The seeded fuzz
    test of every report command is tests/test_fuzz_reader.py."""
    import random
    rnd = random.Random(1234)
    base = bytearray(golden_scenario().data())
    for k in range(40):
        data = bytearray(base)
        for _ in range(rnd.randint(1, 4)):
            data[rnd.randrange(len(data))] = rnd.randrange(256)
        path = tmp_path / ("f%02d.mlens" % k)
        path.write_bytes(bytes(data))
        for fn in (_engine.read_summary, _engine.read_types, _engine.read_leaks):
            try:
                fn(str(path))
            except ValueError as exc:
                assert "\n" not in str(exc)
        # file names are printed as the file system has their bytes: a flip
        # may make them invalid UTF-8
        r = subprocess.run([sys.executable, "-m", "memlens", "leaks", str(path)],
                           capture_output=True, text=True, errors="replace")
        assert r.returncode in (0, 2) and "Traceback" not in r.stderr, (k, r.stderr)
        if r.returncode == 2:
            assert len(r.stderr.splitlines()) == 1, (k, r.stderr)

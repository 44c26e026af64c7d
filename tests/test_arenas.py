"""Arenas kept by few objects (issue 14, "my RSS never goes down"): the
ARENA / ARENA_BLOCKS records written at the end of a capture, and the
section of `memlens rss` that names the (site, type) groups keeping
mostly-empty pymalloc arenas alive.

Ground truth: a program makes 200,000 small instances of a class at a known
line, keeps every 1000th in a list made at another line and frees the rest,
and writes the addresses (id()) of the 200 it kept. The report's arenas
are compared with those addresses: every kept instance that lies in a
listed mostly-empty arena is counted in the group of that line and type,
and nothing else is. A program that keeps all it makes has no such group.
"""
import json
import pathlib

import capfile
from conftest import memlens
from test_rss import UNDER_ASAN

PIN = """
    import json, sys

    class Pin:
        __slots__ = ("i",)

    def make(n):
        out = []
        for i in range(n):
            out.append(Pin())          # line 9: the pinning site
        return out

    objs = make(200_000)
    keep = objs[::KEEP_EVERY]           # line 13: the list that keeps them
    del objs
    with open(sys.argv[1], "w") as f:
        json.dump({"ids": [id(o) for o in keep], "size": sys.getsizeof(keep[0])}, f)
"""


def _arenas(path, *args):
    proc = memlens("rss", path, "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["arenas"]


def test_sparse_arenas_name_the_pinning_site(script, capture, tmp_path):
    prog = script(PIN.replace("KEEP_EVERY", "1000"))
    ids_file = tmp_path / "ids.json"
    path, _ = capture(prog, str(ids_file))
    doc = json.loads(ids_file.read_text())
    kept, size = doc["ids"], doc["size"]
    assert len(kept) == 200
    a = _arenas(path, "--top", "0")
    assert a["threshold_pct"] == 25 and a["arenas"] >= 9
    sparse = a["mostly_empty"]
    # 200,000 instances of 40 bytes (48 in pymalloc) fill about 9 arenas of 1 MiB; each keeps
    # about 22 of them (0.1% used)
    inside = [i for i in kept
              if any(e["base"] <= i < e["base"] + e["size"] for e in sparse["list"])]
    assert len(inside) >= 180, (len(inside), sparse["arenas"])
    pin_arenas = [e for e in sparse["list"]
                  if any(e["base"] <= i < e["base"] + e["size"] for i in kept)]
    assert len(pin_arenas) >= 8
    for e in pin_arenas:
        assert e["used"] * 4 <= e["size"]
    # those the loop filled alone: about 0.1% used (the first may share)
    assert sum(e["used"] <= e["size"] // 100 for e in pin_arenas) >= len(pin_arenas) - 2
    groups = [g for g in a["groups"] if g["file"] == prog.path]
    pin = [g for g in groups if g["type"].endswith("Pin")]
    assert len(pin) == 1, groups
    g = pin[0]
    # the exact count: the kept instances that lie in the listed arenas
    assert (g["line"], g["blocks"]) == (9, len(inside)), g
    assert g["bytes"] == size * len(inside)
    assert g["arenas"] == len(pin_arenas)
    # the biggest group of all
    assert a["groups"][0] == g
    # the text report
    text = memlens("rss", path).stdout
    assert "Arenas kept by few objects (used <= 25%)" in text
    line = [ln for ln in text.splitlines() if ":9 make" in ln]
    assert line and line[0].split()[0] == "{:,}".format(len(inside)), text


def test_threshold_is_settable(script, capture, tmp_path):
    prog = script(PIN.replace("KEEP_EVERY", "1000"))
    path, _ = capture(prog, str(tmp_path / "ids.json"))
    none = _arenas(path, "--arena-threshold", "0")
    assert none["threshold_pct"] == 0 and none["groups"] == [] or all(
        e["used"] == 0 for e in none["mostly_empty"]["list"])
    wide = _arenas(path, "--arena-threshold", "50")
    default = _arenas(path)
    assert wide["mostly_empty"]["arenas"] >= default["mostly_empty"]["arenas"] >= 8
    bad = memlens("rss", path, "--arena-threshold", "60")
    assert bad.returncode == 2 and "0-50" in bad.stderr and "Traceback" not in bad.stderr


def test_no_pattern_lists_no_site_of_the_program(script, capture, tmp_path):
    prog = script(PIN.replace("KEEP_EVERY", "1"))  # keeps them all: full arenas
    path, _ = capture(prog, str(tmp_path / "ids.json"))
    a = _arenas(path)
    assert a["arenas"] >= 9
    # the full arenas are not listed: Pins can only be in the arena the last
    # of them started to fill (mostly empty when few landed there: seen on
    # 3.13), never in the 9+ arenas they fill; the program's other few
    # objects, such as its last list of ids, may lie in one too
    pins = [g for g in a["groups"] if g["type"].endswith("Pin")]
    arena_size = a["size"] // a["arenas"]
    assert pins == [] or (len(pins) == 1 and pins[0]["arenas"] == 1
                          and pins[0]["bytes"] <= arena_size // 4), (arena_size, a["groups"])


def test_old_capture_has_no_arena_records(tmp_path):
    cap = capfile.Capture(version=2)
    path = tmp_path / "none.mlens"
    cap.save(str(path))
    a = _arenas(str(path))
    assert a["arenas"] == 0 and a["groups"] == [] and a["mostly_empty"]["list"] == []
    assert "no arena records" in memlens("rss", str(path)).stdout


GOLDEN = pathlib.Path(__file__).parent / "golden" / "v2-arenas.mlens"


def golden_by_capfile():
    """The scenario of tests/c/gen_golden.c gen_v2_arenas, by the independent
    encoder."""
    cap = capfile.Capture({"python": "3.12.1", "pid": 1234, "argv": ["prog.py"],
                           "start_time_us": 1700000000000000, "options": {}}, version=2)
    cap.thread_def(1, 4242, "MainThread")
    cap.switch_thread(1)
    cap.code_def("prog.py", "make", 1, [(0, 1), (10, 9), (20, 13)])
    cap.frame_def(0, 1, 12)
    cap.frame_def(0, 1, 22)
    cap.type_def("Pin")
    cap.type_def("tuple")
    cap.time(100)
    for _ in range(4):
        cap.alloc(1, 1, 40)
    cap.alloc(2, 2, 56)
    cap.free(2)
    cap.arena(0x7F0000000000, 1 << 20, 1 << 20, 63, 3, 1056)
    cap.arena(0x7F0000100000, 1 << 20, 1 << 20, 63, 63, 900_000)
    cap.arena_blocks(0, [1, 3, 5])
    cap.trailer([5, 1, 0, 0, 0])
    return cap


def test_encoder_matches_golden_bytes():
    assert golden_by_capfile().data() == GOLDEN.read_bytes()


def test_golden_report_by_hand():
    a = _arenas(str(GOLDEN))
    # arena 0: 1,056 of 1 MiB used (0.1%): mostly empty; arena 1: 86%
    assert (a["arenas"], a["size"], a["used"]) == (2, 2 << 20, 901_056)
    m = a["mostly_empty"]
    assert (m["arenas"], m["resident"], m["used"], m["blocks"], m["bytes"]) == (1, 1 << 20, 1056, 3, 136)
    assert m["list"] == [{"base": 0x7F0000000000, "size": 1 << 20, "resident": 1 << 20, "used": 1056,
                          "blocks": 3, "bytes": 136}]
    # Pins 1 and 3 (2 was freed) at line 9, the tuple at line 13
    assert [(g["type"], g["line"], g["function"], g["blocks"], g["bytes"], g["arenas"])
            for g in a["groups"]] == [("Pin", 9, "make", 2, 80, 1), ("tuple", 13, "make", 1, 56, 1)]
    assert _arenas(str(GOLDEN), "--arena-threshold", "0")["mostly_empty"]["arenas"] == 0


NATIVE = """
    import ctypes
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    p = libc.malloc(50_000_003)           # the native block: 50 MB, kept to the end
    ctypes.memset(p, 1, 50_000_003)       # written: resident
    junk = [bytes(1000) for i in range(1000)]
"""


def test_native_traced_band(script, capture):
    """With --native, a 50 MB block that ctypes mallocs is in its own part
    (native_traced), not in the traced C heap; without it, in the untraced
    C heap. The parts add up to the RSS within 1% either way."""
    prog = script(NATIVE)
    with_native, _ = capture(prog, opts=("--native",))
    without, _ = capture(prog)
    ends = {}
    for name, path in (("native", with_native), ("plain", without)):
        doc = json.loads(memlens("rss", path, "--json").stdout)
        end = doc["end"]
        parts = end["parts"]
        assert sum(parts.values()) == end["rss_bytes"]
        if not UNDER_ASAN:  # test_rss.ASAN_REASON
            assert abs(parts["unexplained"]) <= 0.01 * end["rss_bytes"], parts
        ends[name] = end
    n, p = ends["native"]["parts"], ends["plain"]["parts"]
    # the block (and the few KB other libraries keep), not more
    nf = ends["native"]["fields"]["native_traced"]
    assert 50_000_003 <= nf <= 50_000_003 + (4 << 20), n
    assert n["traced_c_heap"] < 8 << 20, n
    # the part is the count, as the block is resident (under ASan the parts
    # are capped at an anonymous RSS that ASan's own mappings distort)
    assert UNDER_ASAN or n["native_traced"] == nf
    assert p["native_traced"] == 0
    assert UNDER_ASAN or p["c_heap_untraced"] >= 50_000_003, p  # ASan: mallinfo2 sees no C heap
    text = memlens("rss", with_native).stdout
    assert "native heap traced with --native" in text
    summ = json.loads(memlens("summary", with_native, "--json").stdout)
    assert summ["rss"]["end"]["parts"]["native_traced"] == n["native_traced"]

"""`memlens run --native`: the C allocator calls of extension modules and
libraries, recorded at the Python line that made them, typed by library.

Ground truth: a C extension built here with gcc (tests/native/mlnat.c)
makes blocks of known sizes with each function, from known lines; a plain
library (tests/native/mlnat2.c) is loaded with ctypes after tracking has
started; ctypes calls libc's malloc directly."""
import os
import subprocess
import sys
import sysconfig

import pytest

from memlens import _engine

import capfile

HERE = os.path.dirname(os.path.abspath(__file__))
EXT = "mlnat" + sysconfig.get_config_var("EXT_SUFFIX")

# sizes chosen to be unique in the capture; mmap's is whole pages
SIZES = {"malloc": 1_000_001, "calloc": 1_000_008, "realloc": 1_000_003, "posix_memalign": 1_000_004,
         "aligned_alloc": 1_000_064, "memalign": 1_000_128, "valloc": 1_000_192, "mmap": 245 * 4096}
KIND = {name: i for i, name in enumerate(SIZES)}  # mlnat.c's make() switch


def gcc(*args):
    subprocess.run(["gcc", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    """The test extension and the plain library, built with gcc."""
    d = tmp_path_factory.mktemp("native")
    inc = sysconfig.get_paths()["include"]
    gcc("-shared", "-fPIC", "-O1", "-I" + inc, os.path.join(HERE, "native", "mlnat.c"), "-o",
        str(d / EXT), "-pthread")
    gcc("-shared", "-fPIC", "-O1", os.path.join(HERE, "native", "mlnat2.c"), "-o", str(d / "libmlnat2.so"))
    return d


def run(libs, source, *opts, name="prog.py"):
    """Write `source` beside the libraries, run it under memlens; returns
    (capture path, line numbers of its '# @tag' lines)."""
    prog = libs / name
    prog.write_text(source)
    lines = {t.split("# @", 1)[1].strip(): no for no, t in enumerate(source.splitlines(), 1) if "# @" in t}
    cap = libs / (name + ".mlens")
    if cap.exists():
        cap.unlink()
    r = subprocess.run([sys.executable, "-m", "memlens", "run", "-q", "-o", str(cap), *opts, str(prog)],
                       capture_output=True, text=True, cwd=str(libs), timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    return str(cap), lines, r


class Capture:
    """The events of a capture with names: type, innermost line, and the
    seq of each alloc (to match frees)."""

    def __init__(self, path):
        d = _engine.read_events(path)
        self.types = [t["name"] for t in d["types"]]
        self.frames = d["frames"]
        self.codes = d["codes"]
        self.trailer = d["trailer"]
        self.allocs, self.freed = [], set()
        for e in d["events"]:
            if e["kind"] == "alloc":
                self.allocs.append(e)
            elif e["kind"] == "free":
                self.freed.add(e["seq"])

    def type_of(self, e):
        return self.types[e["type"] - 1] if e["type"] else None

    def line_of(self, e):
        """(file name, line) of the innermost frame, or None without a stack."""
        if not e["stack"]:
            return None
        f = self.frames[e["stack"] - 1]
        return os.path.basename(self.codes[f["code"] - 1]["file"]), f["line"]

    def sized(self, size):
        return [e for e in self.allocs if e["size"] == size]


PROG_EACH = """\
import mlnat
mlnat.alloc(0, {malloc_k}, {malloc})  # @malloc
mlnat.alloc(1, {calloc_k}, {calloc})  # @calloc
mlnat.alloc(2, {realloc_k}, {realloc})  # @realloc
mlnat.alloc(3, {posix_memalign_k}, {posix_memalign})  # @posix_memalign
mlnat.alloc(4, {aligned_alloc_k}, {aligned_alloc})  # @aligned_alloc
mlnat.alloc(5, {memalign_k}, {memalign})  # @memalign
mlnat.alloc(6, {valloc_k}, {valloc})  # @valloc
mlnat.alloc(7, {mmap_k}, {mmap})  # @mmap
mlnat.release(0)
mlnat.release(7)
keep = bytearray(5_000_001)  # @python
"""


def each_source():
    return PROG_EACH.format(**SIZES, **{k + "_k": v for k, v in KIND.items()})


def test_each_function_at_its_line(libs):
    cap, lines, _ = run(libs, each_source(), "--native")
    c = Capture(cap)
    for fn, size in SIZES.items():
        got = c.sized(size)
        assert len(got) == 1, (fn, got)
        e = got[0]
        assert c.type_of(e) == "<native: %s>" % EXT, fn
        assert c.line_of(e) == ("prog.py", lines[fn]), fn
        assert e["domain"] == 0
    # free and munmap free their blocks; the others stay alive
    assert c.sized(SIZES["malloc"])[0]["seq"] in c.freed
    assert c.sized(SIZES["mmap"])[0]["seq"] in c.freed
    assert c.sized(SIZES["calloc"])[0]["seq"] not in c.freed
    # realloc: the 16-byte block it grew is freed
    small = [e for e in c.sized(16) if c.type_of(e) == "<native: %s>" % EXT]
    assert small and all(e["seq"] in c.freed for e in small)
    # CPython's own allocation is counted once, by the PyMem hooks, not as native
    py = [e for e in c.allocs if e["size"] >= 5_000_001 and e["size"] < 5_000_200]
    assert len(py) == 1 and not c.type_of(py[0]).startswith("<native")
    assert c.line_of(py[0]) == ("prog.py", lines["python"])


def test_types_report_shows_the_library(libs):
    cap, _, _ = run(libs, each_source(), "--native")
    r = subprocess.run([sys.executable, "-m", "memlens", "types", cap, "--json"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    import json
    rows = {t["type"]: t for t in json.loads(r.stdout)["types"]}
    row = rows["<native: %s>" % EXT]
    # alive at the end: calloc, realloc, posix_memalign, aligned_alloc, memalign, valloc
    alive = sum(SIZES[k] for k in ("calloc", "realloc", "posix_memalign", "aligned_alloc", "memalign", "valloc"))
    assert row["alive_bytes"] == alive
    assert row["allocs"] == 9 and row["frees"] == 3  # 8 + realloc's 16 bytes; free, munmap, realloc


def test_off_unless_asked(libs):
    cap, _, _ = run(libs, each_source())
    c = Capture(cap)
    assert not [t for t in c.types if t.startswith("<native")]
    assert not c.sized(SIZES["malloc"])


PROG_THREADS = """\
import threading
import mlnat

def worker():
    mlnat.alloc_nogil(1, 0, 2_000_002)  # @worker

t = threading.Thread(target=worker)
t.start()
t.join()
mlnat.alloc_nogil(0, 0, 2_000_001)  # @main
mlnat.alloc_cthread(2, 2_000_003)  # @cthread
"""


def test_threads_without_the_gil(libs):
    cap, lines, _ = run(libs, PROG_THREADS, "--native")
    c = Capture(cap)
    kind = "<native: %s>" % EXT
    for size, tag in ((2_000_001, "main"), (2_000_002, "worker")):
        (e,) = c.sized(size)
        assert c.type_of(e) == kind and c.line_of(e) == ("prog.py", lines[tag]), tag
    # a thread with no Python frames at all: recorded, with no stack
    (e,) = c.sized(2_000_003)
    assert c.type_of(e) == kind and e["stack"] == 0
    assert c.trailer[3] >= 1  # NOSTACK


PROG_LATER = """\
import ctypes, os
lib = ctypes.CDLL(os.path.abspath("libmlnat2.so"))  # loaded after tracking started
lib.mlnat2_alloc.restype = ctypes.c_void_p
p = lib.mlnat2_alloc(3_000_001)  # @dlopened
lib.mlnat2_free(ctypes.c_void_p(p))
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
q = libc.malloc(3_000_002)  # @ctypes
libc.free(ctypes.c_void_p(q))
import _ctypes
_ctypes.dlclose(lib._handle)  # unloaded, then loaded again (a fresh GOT)
lib = ctypes.CDLL(os.path.abspath("libmlnat2.so"))
lib.mlnat2_alloc.restype = ctypes.c_void_p
r = lib.mlnat2_alloc(3_000_003)  # @reloaded
"""


def test_dlopened_library_and_ctypes(libs):
    cap, lines, _ = run(libs, PROG_LATER, "--native")
    c = Capture(cap)
    (e,) = c.sized(3_000_001)
    assert c.type_of(e) == "<native: libmlnat2.so>"
    assert c.line_of(e) == ("prog.py", lines["dlopened"]) and e["seq"] in c.freed
    (e,) = c.sized(3_000_002)
    assert c.type_of(e).startswith("<native: ")
    assert c.line_of(e) == ("prog.py", lines["ctypes"]) and e["seq"] in c.freed
    (e,) = c.sized(3_000_003)
    assert c.type_of(e) == "<native: libmlnat2.so>" and c.line_of(e) == ("prog.py", lines["reloaded"])


PROG_FORK = """\
import os
import mlnat
pid = os.fork()
if pid == 0:
    mlnat.alloc(0, 0, 4_000_002)  # @child
    os._exit(0)
os.waitpid(pid, 0)
mlnat.alloc(0, 0, 4_000_001)  # @parent
print(pid)
"""


def test_follow_fork(libs):
    cap, lines, r = run(libs, PROG_FORK, "--native", "--follow-fork")
    child = "%s.%s" % (cap, r.stdout.strip())
    c = Capture(cap)
    (e,) = c.sized(4_000_001)
    assert c.line_of(e) == ("prog.py", lines["parent"])
    assert not c.sized(4_000_002)
    k = Capture(child)
    (e,) = k.sized(4_000_002)
    assert k.type_of(e) == "<native: %s>" % EXT and k.line_of(e) == ("prog.py", lines["child"])
    os.unlink(child)


def test_golden_v2_native(tmp_path):
    """tests/golden/v2-native.mlens (writer.c, via tests/c/gen_golden.c) is
    byte for byte what the spec's encoder makes, and decodes as such."""
    meta = dict(capfile.DEFAULT_META, options={"native": True})
    cap = capfile.Capture(meta=meta, version=2)
    cap.thread_def(1, 4242, "MainThread")
    cap.switch_thread(1)
    code = cap.code_def("demo.py", "<module>", 1, [(0, 1), (10, 3)])
    frame = cap.frame_def(0, code, 12, line=3)
    lib, unknown = cap.native_kind("libdemo.so.1"), cap.native_kind("unknown")
    cap.time(100)
    at_line = cap.alloc(frame, lib, 1_000_001, domain=capfile.RAW)
    cap.alloc(0, unknown, 4096, domain=capfile.RAW)  # a thread without Python frames
    cap.free(at_line)
    cap.trailer([2, 1, 0, 1, 0])
    golden = os.path.join(HERE, "golden", "v2-native.mlens")
    with open(golden, "rb") as f:
        assert f.read() == cap.data()
    got = _engine.read_events(golden)
    assert got["events"] == cap.events
    assert [t["name"] for t in got["types"]] == ["<native: libdemo.so.1>", "<native: unknown>"]
    assert got["frames"][0]["line"] == 3 and got["trailer"] == [2, 1, 0, 1, 0]


def test_numpy_data_counted_once_with_native(libs):
    """NumPy's array data is recorded once, as `numpy.ndarray (data)` (the
    NumPy allocator hook, docs/NUMPY.md), not a second time as the malloc
    of _multiarray_umath that --native patches."""
    pytest.importorskip("numpy")
    n = 1_000_003  # float64 elements: 8,000,024 bytes of data each
    cap, lines, _ = run(libs, "import numpy as np\nkeep = [np.ones(%d) for _ in range(5)]  # @arrays\n" % n,
                        "--native", name="npprog.py")
    c = Capture(cap)
    big = c.sized(8 * n)
    assert [c.type_of(e) for e in big] == ["numpy.ndarray (data)"] * 5, [c.type_of(e) for e in big]
    # no native block of the size of an array's data (any alignment slack)
    assert not [e for e in c.allocs if 8 * n <= e["size"] <= 8 * n + 4096
                and (c.type_of(e) or "").startswith("<native")]


PROG_RSS = """\
import ctypes, json, sys
import memlens, mlnat
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
def rollup():
    return [int(l.split()[1]) * 1024 for l in open("/proc/self/smaps_rollup") if l.startswith("Rss:")][0]
before = memlens.rss()
p = libc.malloc(50_000_003)  # @ctypes
ctypes.memset(p, 1, 50_000_003)
mlnat.alloc(0, 0, 20_000_001)  # @ext
mlnat.touch(0)
held = memlens.rss()
held_rollup = rollup()
libc.free(ctypes.c_void_p(p))
mlnat.release(0)
freed = memlens.rss()
q = libc.malloc(30_000_005)  # @end
ctypes.memset(q, 1, 30_000_005)
end = memlens.rss()
json.dump({"before": before, "held": held, "held_rollup": held_rollup, "freed": freed, "end": end},
          sys.stdout)
"""


def _live_native(cap):
    """Ground truth from the capture's events: bytes of the live blocks
    typed <native: ...> (what `memlens rss FILE` counts)."""
    c = Capture(cap)
    return sum(e["size"] for e in c.allocs
               if e["seq"] not in c.freed and (c.type_of(e) or "").startswith("<native: "))


def test_rss_in_process_splits_the_native_band(libs):
    """memlens.rss() under --native: a ctypes malloc of 50,000,003 bytes and
    the test extension's malloc of 20,000,001 are in native_traced exactly
    (the in-process count follows each native block to its free), out of
    traced_c_heap, and the parts add up to smaps_rollup's RSS within 1%.
    At the end it equals what `memlens rss FILE` says of the last sample."""
    import json
    cap, lines, r = run(libs, PROG_RSS, "--native", name="rssprog.py")
    doc = json.loads(r.stdout)
    nat = {k: doc[k]["fields"]["native_traced"] for k in ("before", "held", "freed", "end")}
    assert nat["held"] - nat["before"] == 50_000_003 + 20_000_001, nat
    assert nat["held"] - nat["freed"] == 50_000_003 + 20_000_001, nat
    assert nat["end"] - nat["freed"] == 30_000_005, nat
    held = doc["held"]
    parts = held["parts"]
    assert sum(parts.values()) == held["rss"]
    assert abs(held["rss"] - doc["held_rollup"]) <= 0.01 * doc["held_rollup"]
    from test_rss import UNDER_ASAN
    if not UNDER_ASAN:  # test_rss.ASAN_REASON: the C heap's parts come from glibc's mallinfo2
        # resident (written), so the part is the count itself, not capped
        assert parts["native_traced"] == nat["held"]
        assert parts["traced_c_heap"] < 8 << 20, parts  # not counted twice
        assert abs(parts["unexplained"]) <= 0.01 * held["rss"], parts
    # the capture at the end: the same native heap as the events say, and
    # as memlens.rss() said as the program's last statement
    rep = json.loads(subprocess.run([sys.executable, "-m", "memlens", "rss", cap, "--json"],
                                    capture_output=True, text=True, check=True).stdout)
    assert rep["end"]["fields"]["native_traced"] == _live_native(cap) == nat["end"]


PROG_REMAP = """\
import memlens, mlnat
mlnat.alloc(0, 7, 245 * 4096)  # @mmap
mlnat.touch(0)
mid = memlens.rss()["fields"]["native_traced"]
mlnat.remap(0, 400 * 4096)  # @grow
mlnat.touch(0)
grown = memlens.rss()["fields"]["native_traced"]
mlnat.remap(0, 100 * 4096)  # @shrink
small = memlens.rss()["fields"]["native_traced"]
print(grown - mid, small - mid)
"""


def test_mremap_frees_the_old_mapping_and_records_the_new(libs):
    """mremap (grown, so it may move; then shrunk in place): each is the
    free of the mapping it was given and an allocation of the new length
    at the line that called it, typed by the library; memlens.rss()'s
    native band follows (+155 pages, then -145 pages against the first)."""
    cap, lines, r = run(libs, PROG_REMAP, "--native", name="remap.py")
    c = Capture(cap)
    kind = "<native: %s>" % EXT
    (first,) = c.sized(245 * 4096)
    (grown,) = c.sized(400 * 4096)
    (small,) = c.sized(100 * 4096)
    for e, tag in ((first, "mmap"), (grown, "grow"), (small, "shrink")):
        assert c.type_of(e) == kind and c.line_of(e) == ("remap.py", lines[tag]), tag
    assert first["seq"] in c.freed and grown["seq"] in c.freed and small["seq"] not in c.freed
    assert r.stdout.split() == [str(155 * 4096), str(-145 * 4096)]

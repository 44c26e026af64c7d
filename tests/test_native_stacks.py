"""`memlens run --native-stacks`: the native frames of each native
allocation, symbolised at report time, under the Python line in `tree`.

Ground truth: a C extension built here with gcc (tests/native/mlnstk.c,
-O0 -fno-omit-frame-pointer -fno-inline) whose module function outer()
calls the static middle(), which calls inner_alloc(), which mallocs 1 MiB,
called from a known Python line."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig

import pytest

from memlens import _engine

HERE = os.path.dirname(os.path.abspath(__file__))
EXT = "mlnstk" + sysconfig.get_config_var("EXT_SUFFIX")
MIB = 1 << 20

PROG = """\
import mlnstk
def work():
    for _ in range(2):
        mlnstk.outer()  # @outer
work()
x = bytearray(3_000_003)  # @python
"""


def build(d):
    inc = sysconfig.get_paths()["include"]
    subprocess.run(["gcc", "-shared", "-fPIC", "-O0", "-g0", "-fno-omit-frame-pointer", "-fno-inline",
                    "-I" + inc, os.path.join(HERE, "native", "mlnstk.c"), "-o", str(d / EXT), "-pthread"],
                   check=True, capture_output=True)


@pytest.fixture
def ext(tmp_path):
    build(tmp_path)
    return tmp_path


def run(d, *opts, source=PROG):
    prog = d / "prog.py"
    prog.write_text(source)
    line = next(no for no, t in enumerate(source.splitlines(), 1) if "# @outer" in t)
    cap = d / "prog.mlens"
    r = subprocess.run([sys.executable, "-m", "memlens", "run", "-q", "-f", "-o", str(cap), *opts, str(prog)],
                       capture_output=True, text=True, cwd=str(d), timeout=300)
    assert r.returncode == 0, r.stderr
    return str(cap), line


def memlens(*args):
    r = subprocess.run([sys.executable, "-m", "memlens", *args], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    return r.stdout


def tree_rows(cap, view="end"):
    return json.loads(memlens("tree", "--json", "--view", view, "--min-share", "0", cap))["nodes"]


def chain_under(rows, line):
    """The native frames under the Python node of prog.py:line, outermost
    first: [(function, file, bytes, count), ...] along the heaviest child."""
    start = [r for r in rows if not r["native"] and os.path.basename(r["file"]) == "prog.py"
             and r["line"] == line]
    assert len(start) == 1, start
    out, node = [], start[0]
    while True:
        kids = [r for r in rows if r["parent"] == node["id"]]
        if not kids:
            return out
        node = max(kids, key=lambda r: r["bytes"])
        assert node["native"], node
        out.append((node["function"], node["file"], node["bytes"], node["count"]))


def test_tree_shows_outer_middle_inner(ext):
    cap, line = run(ext, "--native-stacks")
    rows = tree_rows(cap)
    chain = chain_under(rows, line)
    assert [c[0] for c in chain] == ["outer", "middle", "inner_alloc"], chain
    assert all(c[1] == EXT for c in chain)
    # the two calls from that line: 2 blocks of 1 MiB, all at inner_alloc
    assert chain[-1][2:] == (2 * MIB, 2)
    assert chain[0][2:] == (2 * MIB, 2)
    inner = [r for r in rows if r["function"] == "inner_alloc"][0]
    assert inner["types"][0]["type"] == "<native: %s>" % EXT
    # the Python allocation stays a Python leaf (no native frames)
    py = [r for r in rows if not r["native"] and r["line"] == line + 2 and r["function"] == "<module>"]
    assert py and not [r for r in rows if r["parent"] == py[0]["id"]]
    # the text form
    text = memlens("tree", "--view", "end", "--min-share", "0", cap)
    names = [ln.split("[native] ", 1)[1].split("  [")[0].strip() for ln in text.splitlines() if "[native] " in ln]
    for f in ("outer", "middle", "inner_alloc"):
        assert "%s (%s)" % (f, EXT) in names, text


def test_capture_records(ext):
    cap, _ = run(ext, "--native-stacks")
    d = _engine.read_native_stacks(cap)
    # one distinct chain for the two calls, innermost first
    ours = [s for s in d["stacks"] if s and s[0]["function"] == "inner_alloc"]
    assert len(ours) == 1, d["stacks"]
    assert [f["function"] for f in ours[0]] == ["inner_alloc", "middle", "outer"]
    assert d["native_allocs"] >= 2
    paths = {m["path"] for m in d["mappings"]}
    assert str(ext / EXT) in paths
    # the build-id of the loaded extension (gcc adds one by default) is recorded
    assert [m for m in d["mappings"] if m["path"] == str(ext / EXT) and m["build_id"]]


def test_without_native_stacks_no_records(ext):
    for opts in ((), ("--native",)):
        cap, line = run(ext, *opts)
        d = _engine.read_native_stacks(cap)
        assert d["stacks"] == [] and d["mappings"] == [] and d["native_allocs"] == 0, opts
        assert not [r for r in tree_rows(cap) if r["native"]]


def test_library_deleted_before_report(ext, tmp_path_factory):
    cap, line = run(ext, "--native-stacks")
    os.unlink(ext / EXT)
    chain = chain_under(tree_rows(cap), line)
    # every frame of the library is ?? now, with the library's name
    assert chain and all(c[0] == "??" and c[1] == EXT for c in chain), chain
    assert chain[-1][2:] == (2 * MIB, 2)


def test_library_replaced_before_report(ext):
    """Another file at the path (a rebuild): its build-id differs, so its
    symbols are not used."""
    cap, line = run(ext, "--native-stacks")
    src = ext / "other.c"
    src.write_text("int other(void) { return 1; }\nint other2(void) { return 2; }\n")
    subprocess.run(["gcc", "-shared", "-fPIC", str(src), "-o", str(ext / EXT)], check=True)
    chain = chain_under(tree_rows(cap), line)
    assert chain and all(c[0] == "??" for c in chain), chain


def test_golden_v2_native_stacks(tmp_path):
    """tests/golden/v2-native-stacks.mlens (writer.c, via tests/c/gen_golden.c)
    is byte for byte what the spec's encoder makes; its native frames hang
    under the Python line, as ?? with the library's name (the files do not
    exist), the unknown libraries' frames merged by address."""
    import capfile
    meta = dict(capfile.DEFAULT_META, options={"native": True, "native_stacks": True})
    cap = capfile.Capture(meta=meta, version=2)
    cap.thread_def(1, 4242, "MainThread")
    cap.switch_thread(1)
    code = cap.code_def("demo.py", "<module>", 1, [(0, 1), (10, 3)])
    frame = cap.frame_def(0, code, 12, line=3)
    lib = cap.native_kind("libdemo.so")
    cap.mapping(0x1000, 0x2000, 0x1000, "/nonexistent/libdemo.so", bytes.fromhex("deadbeef"))
    cap.mapping(0x5000, 0x6000, 0, "/nonexistent/libother.so")
    s1 = cap.native_stack([0x1100, 0x1200, 0x5010])
    cap.time(100)
    for size in (1000, 2000):
        cap.native_alloc(s1)
        cap.alloc(frame, lib, size, domain=capfile.RAW)
    s2 = cap.native_stack([0x1300, 0x5010])
    cap.native_alloc(s2)
    cap.alloc(frame, lib, 4000, domain=capfile.RAW)
    cap.alloc(frame, lib, 8000, domain=capfile.RAW)
    cap.trailer([4, 0, 0, 0, 0])
    golden = os.path.join(HERE, "golden", "v2-native-stacks.mlens")
    with open(golden, "rb") as f:
        assert f.read() == cap.data()
    d = _engine.read_native_stacks(golden)
    assert d["native_allocs"] == 3 and d["allocs"] == 4
    assert [[f["address"] for f in s] for s in d["stacks"]] == [[0x1100, 0x1200, 0x5010], [0x1300, 0x5010]]
    assert [(f["function"], f["lib"]) for f in d["stacks"][0]] == [
        (None, "libdemo.so"), (None, "libdemo.so"), (None, "libother.so")]
    assert d["stacks"][0][0]["offset"] == 0x1100 - 1 - 0x1000 + 0x1000
    assert d["mappings"][0]["build_id"] == bytes.fromhex("deadbeef")
    rows = tree_rows(golden)
    py = [r for r in rows if r["function"] == "<module>"][0]
    assert py["bytes"] == 15000 and not py["native"]
    kids = [r for r in rows if r["parent"] == py["id"]]
    # libother's 0x5010 is the outermost native frame of both native stacks
    assert [(k["function"], k["file"], k["bytes"], k["native"]) for k in kids] == [
        ("??", "libother.so", 7000, True)]
    under = sorted((r["bytes"], r["count"]) for r in rows if r["parent"] == kids[0]["id"])
    assert under == [(3000, 2), (4000, 1)]


PROG_THREADS = """\
import mlnstk
mlnstk.outer_nogil()  # @outer
mlnstk.outer_thread()
"""


def test_without_the_gil_and_in_a_c_thread(ext):
    """A block made with the GIL released has the Python line it was
    released at and its native frames; one made by a thread that has no
    Python frames hangs under <no Python stack> with its native frames."""
    cap, line = run(ext, "--native-stacks", source=PROG_THREADS)
    rows = tree_rows(cap)
    chain = chain_under(rows, line)
    assert [c[0] for c in chain] == ["outer_nogil", "middle", "inner_alloc"], chain
    assert chain[-1][2:] == (MIB, 1)
    nostack = [r for r in rows if r["function"] == "<no Python stack>"]
    assert len(nostack) == 1
    frames, node = [], nostack[0]
    while True:
        kids = [r for r in rows if r["parent"] == node["id"] and r["bytes"] >= MIB]
        if not kids:
            break
        node = kids[0]
        frames.append(node["function"])
    # the thread's outermost frames are the C library's (start_thread, clone)
    assert frames[-3:] == ["thread_main", "middle", "inner_alloc"], frames
    assert node["bytes"] == MIB and node["count"] == 1


def test_flame_page_data_marks_native_frames(ext):
    """The flame graph page's data: the native frames are listed in NATIVE
    (drawn in their own colours), Python frames are not."""
    from memlens import flamegraph
    cap, line = run(ext, "--native-stacks")
    data = flamegraph.page_data(cap, view="end")
    S, F = data["S"], data["F"]
    names = {i: S[F[3 * i]] for i in range(len(F) // 3)}
    native = {names[i] for i in data["NATIVE"]}
    assert {"outer", "middle", "inner_alloc"} <= native
    assert "work" not in native and "<module>" not in native
    assert all(S[F[3 * i + 1]] == EXT or S[F[3 * i + 1]].startswith("lib") for i in data["NATIVE"])
    # the page itself is made
    out = ext / "flame.html"
    memlens("flamegraph", "-o", str(out), cap)
    assert '"NATIVE"' in out.read_text()


def test_flame_page_in_browser(ext):
    """In Chromium: the native frames are boxes labelled [native], in
    blue-grey hues (195-225), 2 MiB wide like the Python line above them."""
    sys.path.insert(0, HERE)
    from test_plot import _browser
    sync_playwright, exe = _browser()
    cap, line = run(ext, "--native-stacks")
    out = ext / "flame.html"
    memlens("flamegraph", "-f", "--view", "end", "-o", str(out), cap)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto("file://" + str(out))
            boxes = page.evaluate("memlensFlame.boxes()")
            assert not errors, errors
        finally:
            browser.close()
    native = {b["label"]: b for b in boxes if b["label"].startswith("[native] ")}
    for f in ("outer", "middle", "inner_alloc"):
        b = native["[native] %s %s" % (f, EXT)]
        assert b["bytes"] == 2 * MIB and b["blocks"] == 2
        hue = int(b["colour"].split("(")[1].split(",")[0])
        assert 195 <= hue < 225, b
    work = [b for b in boxes if b["label"].startswith("work prog.py")]
    assert work and int(work[0]["colour"].split("(")[1].split(",")[0]) < 55  # Python: warm hues


PROG_FORK = """\
import os
import mlnstk
def work():
    mlnstk.outer()  # @before
work()
pid = os.fork()
if pid == 0:
    for _ in range(2):
        mlnstk.outer()  # @child
    mlnstk.outer_nogil()  # @child_nogil
    os._exit(0)
os.waitpid(pid, 0)
mlnstk.outer_nogil()  # @parent
print(pid)
"""


def test_follow_fork_child_has_its_own_chains(ext):
    """--native-stacks --follow-fork: the child's native blocks, with their
    native frames, are in the child's capture (its chains and mappings
    written again there, the chain made before the fork included), the
    parent's in the parent's; neither has the other's lines."""
    prog = ext / "prog.py"
    prog.write_text(PROG_FORK)
    lines = {t.split("# @", 1)[1].strip(): no for no, t in enumerate(PROG_FORK.splitlines(), 1) if "# @" in t}
    cap = ext / "prog.mlens"
    r = subprocess.run([sys.executable, "-m", "memlens", "run", "-q", "-f", "-o", str(cap), "--native-stacks",
                        "--follow-fork", str(prog)], capture_output=True, text=True, cwd=str(ext), timeout=300)
    assert r.returncode == 0, r.stderr
    child = "%s.%s" % (cap, r.stdout.strip())
    assert os.path.exists(child)
    parent_rows, child_rows = tree_rows(str(cap)), tree_rows(child)
    chain = chain_under(parent_rows, lines["before"])
    assert [c[0] for c in chain] == ["outer", "middle", "inner_alloc"] and chain[-1][2:] == (MIB, 1), chain
    chain = chain_under(parent_rows, lines["parent"])
    assert [c[0] for c in chain] == ["outer_nogil", "middle", "inner_alloc"] and chain[-1][2:] == (MIB, 1), chain
    chain = chain_under(child_rows, lines["child"])
    assert [c[0] for c in chain] == ["outer", "middle", "inner_alloc"] and chain[-1][2:] == (2 * MIB, 2), chain
    assert all(c[1] == EXT for c in chain)
    chain = chain_under(child_rows, lines["child_nogil"])
    assert [c[0] for c in chain] == ["outer_nogil", "middle", "inner_alloc"] and chain[-1][2:] == (MIB, 1), chain
    for rows, absent in ((parent_rows, ("child", "child_nogil")), (child_rows, ("before", "parent"))):
        for tag in absent:
            assert not [r for r in rows if not r["native"] and os.path.basename(r["file"]) == "prog.py"
                        and r["line"] == lines[tag]], tag
    # the child's capture holds the mappings and the chains it names
    d = _engine.read_native_stacks(child)
    assert str(ext / EXT) in {m["path"] for m in d["mappings"]}
    assert d["native_allocs"] >= 3
    os.unlink(child)

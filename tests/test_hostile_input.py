"""Hostile and unusual input to the reader (issue 9, "Safe on hostile input").

Resource bounds (a million thread ids, a zlib bomb), captures from pipes,
FIFOs and devices, non-UTF-8 paths, Ctrl-C and SIGTERM during a long read,
header JSON that is not an object, and a seeded fuzz test of every report
command. Ground truth comes from captures built here with tests/capfile.py
(an encoder written from the spec) or from programs run under memlens.
"""
import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import time
import zlib

import pytest

import capfile
from capfile import OBJ, RAW, Capture

REPORTS = ["summary", "types", "leaks", "lines", "timeline", "plot"]
ZMAGIC = b"MLENSZ\0\n"
SANITIZED = "asan" in os.environ.get("LD_PRELOAD", "")


def cli(*args, input=None, env=None, timeout=120, limits=None, **kw):
    """`python -m memlens ARGS` (bytes in and out). limits: {RLIMIT_*: value}."""
    e = dict(os.environ)
    e.pop("MEMLENS_DEBUG", None)
    e.update(env or {})

    def preexec():
        import resource
        for what, value in (limits or {}).items():
            resource.setrlimit(what, (value, value))

    argv = [sys.executable, "-m", "memlens"] + [os.fsencode(a) for a in args]
    return subprocess.run(argv, input=input, capture_output=True, env=e, timeout=timeout,
                          preexec_fn=preexec if limits else None, **kw)


def report_args(command, path, out_dir):
    """The arguments that run `command` on `path` and print JSON where it can."""
    if command == "plot":
        out = os.path.join(out_dir, "plot-%d.svg" % len(os.listdir(out_dir)))
        return ["plot", path, "-o", out, "--json"]
    if command == "lines":
        return ["lines", path, "--file", "/tmp/app.py", "--json"]
    return [command, path, "--json"]


def field(data, key):
    """data[key], also when a report wraps its rows in an envelope (the JSON
    of the reports is being unified: look in nested objects too)."""
    if isinstance(data, dict):
        if key in data:
            return data[key]
        for v in data.values():
            if isinstance(v, dict):
                found = field(v, key)
                if found is not None:
                    return found
    return None


def rows(data, key):
    """The rows of a report: the list itself, or the list under `key`."""
    return data if isinstance(data, list) else field(data, key)


def one_line_error(r, must_contain):
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2, (r.returncode, err)
    assert "Traceback" not in err and "internal error" not in err, err
    assert len(err.splitlines()) == 1, err
    assert must_contain in err, err


def compress(data):
    return ZMAGIC + zlib.compress(data, 1)


def small_capture():
    """Two sites, two types, 30 blocks allocated, 10 freed, a sample, a mark."""
    cap = Capture()
    a = cap.site("/tmp/app.py", "load", 10)
    b = cap.site("/tmp/app.py", "parse", 20, parent=a)
    t_list, t_str = cap.type_def("list"), cap.type_def("str")
    seqs = []
    for i in range(30):
        cap.time(100)
        seqs.append(cap.alloc(a if i % 2 else b, t_list if i % 3 else t_str, 100 + i, OBJ))
    cap.memory(1 << 20, 5000)
    cap.mark(1, "load")
    for s in seqs[:10]:
        cap.free(s)
    cap.mark(2, "load")
    cap.trailer()
    return cap.data()


# ---- resource bounds ----

def test_a_million_thread_ids_read_in_linear_time(tmp_path):
    """400,000 distinct thread ids, one allocation each. The reader looked
    each THREAD record's id up by a linear scan (27 s for 200,000; minutes
    here); with a hash the read takes about a second, far inside the bound."""
    cap = Capture()
    site = cap.site("/tmp/app.py", "work", 5)
    t = cap.type_def("bytes")
    n = 400000
    for i in range(n):
        cap.switch_thread(5000 + i * 7)
        cap.alloc(site, t, 8)
    cap.trailer()
    path = tmp_path / "threads.mlens"
    path.write_bytes(cap.data())
    r = cli("summary", path, "--json", timeout=90)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert field(data, "end_count") == n and field(data, "end_bytes") == 8 * n
    top = field(data, "top_end")
    assert top[0]["line"] == 5 and top[0]["count"] == n


def bomb(raw_mb):
    """A compressed capture: 50 blocks of 100 B at line 10, then raw_mb MB of
    TIME records that add nothing (a zlib bomb: ~1000x), then a TRAILER."""
    cap = Capture()
    site = cap.site("/tmp/app.py", "load", 10)
    t = cap.type_def("list")
    for _ in range(50):
        cap.alloc(site, t, 100)
    z = zlib.compressobj(9)
    out = [ZMAGIC, z.compress(cap.data())]
    chunk = b"\x01\x00" * (1 << 19)  # 1 MiB of TIME 0
    for _ in range(raw_mb):
        out.append(z.compress(chunk))
    tail = Capture()
    tail.last_seq = 50
    tail.trailer([50, 0, 0, 0, 0])
    out.append(z.compress(bytes(tail.body)))
    out.append(z.flush())
    return b"".join(out)


@pytest.mark.skipif(SANITIZED, reason="address-space limits do not apply under ASan")
def test_zlib_bomb_reads_in_bounded_memory_without_a_temporary_file(tmp_path):
    """700 MB of raw capture in a 0.7 MB container. It used to be decompressed
    into a temporary file of the raw size and mapped (2.1 GB of memory for a
    1.5 GB bomb); now it streams through a 1 MiB window: the report runs with
    a 512 MiB address space, may not write a byte to any file, and leaves
    TMPDIR empty."""
    import resource
    data = bomb(700)
    assert len(data) < 1 << 20
    path = tmp_path / "bomb.mlens"
    path.write_bytes(data)
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    limits = {resource.RLIMIT_AS: 512 << 20, resource.RLIMIT_FSIZE: 0}
    for command in ("summary", "types"):
        r = cli(command, path, "--json", env={"TMPDIR": str(tmp)}, limits=limits, timeout=300)
        assert r.returncode == 0, r.stderr
        data = json.loads(r.stdout)
        if command == "summary":
            assert field(data, "end_count") == 50 and field(data, "end_bytes") == 5000
            assert not field(data, "truncated")
        else:
            assert [(t["type"], t["alive"]) for t in rows(data, "types")] == [("list", 50)]
        assert os.listdir(tmp) == []


# ---- pipes, FIFOs and devices ----

@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    raw = small_capture()
    paths = {"raw": d / "s.mlens", "compressed": d / "s.z.mlens"}
    paths["raw"].write_bytes(raw)
    paths["compressed"].write_bytes(compress(raw))
    return paths


def _strip(command, out):
    """JSON output, without the capture's path (the envelope names the path
    the report was given: /dev/stdin, /dev/fd/N or the file)."""
    data = json.loads(out)
    if isinstance(data.get("capture"), dict):
        data["capture"].pop("path", None)
    return data


@pytest.mark.parametrize("form", ["raw", "compressed"])
@pytest.mark.parametrize("command", REPORTS)
def test_capture_from_a_pipe_reads_as_from_the_file(tmp_path, small, form, command):
    """`cat f | memlens CMD /dev/stdin` and `memlens CMD <(cat f)` give what
    the file gives (the magic check used to consume the pipe)."""
    want = cli(*report_args(command, small[form], str(tmp_path)))
    assert want.returncode == 0, want.stderr
    expected = _strip(command, want.stdout)
    assert expected  # the capture holds 30 blocks: every report has rows
    got = cli(*report_args(command, "/dev/stdin", str(tmp_path)),
              input=small[form].read_bytes())
    assert got.returncode == 0, got.stderr
    assert _strip(command, got.stdout) == expected
    # process substitution: bash gives memlens a /dev/fd/N pipe
    args = [shlex.quote(str(a)) for a in report_args(command, "X", str(tmp_path))]
    args[1] = "<(cat %s)" % shlex.quote(str(small[form]))
    cmd = ["bash", "-c", " ".join([shlex.quote(sys.executable), "-m", "memlens"] + args)]
    proc = subprocess.run(cmd, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert _strip(command, proc.stdout) == expected


def test_capture_from_a_fifo_with_a_writer(tmp_path, small):
    """A FIFO: memlens waits for a writer (as cat does), then reads it."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    want = json.loads(cli("leaks", small["compressed"], "--json").stdout)
    proc = subprocess.Popen([sys.executable, "-m", "memlens", "leaks", str(fifo), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with open(fifo, "wb") as w:  # returns once memlens has opened the FIFO
        w.write(small["compressed"].read_bytes())
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    got = json.loads(out)
    assert got["capture"].pop("path") == str(fifo) and want["capture"].pop("path")
    assert got == want


@pytest.mark.parametrize("command", REPORTS)
def test_endless_or_foreign_input_is_refused_at_once(tmp_path, command):
    """/dev/zero used to be read until memory ran out; an endless pipe of
    text likewise. Both fail from their first bytes."""
    r = cli(*report_args(command, "/dev/zero", str(tmp_path)), timeout=60)
    one_line_error(r, "/dev/zero: not a memlens capture (no MLENS header)")
    yes = subprocess.Popen(["yes"], stdout=subprocess.PIPE)
    try:
        r = cli(*report_args(command, "/dev/stdin", str(tmp_path)), stdin=yes.stdout, timeout=60)
    finally:
        yes.kill()
        yes.wait()
        yes.stdout.close()
    one_line_error(r, "/dev/stdin: not a memlens capture (no MLENS header)")


# ---- non-UTF-8 paths ----

def test_non_utf8_script_and_capture_paths(tmp_path):
    """A script and a capture whose paths hold bytes that are not UTF-8
    broke lines, timeline and plot ('utf-8' codec can't decode). The bytes
    go through as the file system encoding has them: the lines table finds
    the main script, and every report names the script by its real path."""
    d = os.fsencode(tmp_path) + b"/dir\xff"
    os.mkdir(d)
    script = d + b"/pr\xfeog.py"
    with open(script, "wb") as f:
        f.write(textwrap.dedent("""\
            def make():
                return [bytearray(1000) for _ in range(100)]
            keep = make()  # @keep
            """).encode())
    cap = d + b"/c\xff.mlens"
    r = cli("run", "-q", "-o", cap, script)
    assert r.returncode == 0, r.stderr
    name = os.fsdecode(script)
    for command in REPORTS:
        args = report_args(command, cap, os.fsdecode(tmp_path))
        if command == "lines":
            args = ["lines", cap, "--json"]  # the main script, found by its bytes
        if command == "plot":
            args[3] = os.fsencode(tmp_path) + b"/p\xff.svg"
        r = cli(*args)
        assert r.returncode == 0, (command, r.stderr)
        data = json.loads(r.stdout)
        if command == "lines":
            found = [row for row in rows(data, "lines") if row["line"] == 3]
            assert found and found[0]["file"] == name
            assert found[0]["allocated_bytes"] >= 100 * 1000
        elif command == "summary":
            assert field(data, "top_end")[0]["file"] == name
        elif command == "timeline":
            assert field(data, "peak")["site"]["file"] == name
    # the text tables too: the undecodable bytes shown escaped (terminal-safe)
    r = cli("lines", cap)
    assert r.returncode == 0
    assert script.replace(b"\xff", b"\\xff").replace(b"\xfe", b"\\xfe") in r.stdout


# ---- signals ----

def long_capture(path, pairs, compressed=False):
    """50 blocks kept at line 10, then `pairs` ALLOC+FREE pairs (3 bytes per
    pair, written in chunks), then a TRAILER."""
    cap = Capture()
    site = cap.site("/tmp/app.py", "load", 10)
    t = cap.type_def("list")
    for _ in range(50):
        cap.alloc(site, t, 100)
    slot = capfile.slot_of(site, t)
    chunk = bytes([0x80 | OBJ << 5 | slot, 56, 0x40]) * (1 << 20)
    z = zlib.compressobj(1) if compressed else None
    with open(path, "wb") as f:
        def put(b):
            f.write(z.compress(b) if z else b)
        if z:
            f.write(ZMAGIC)
        put(cap.data())
        for _ in range(pairs >> 20):
            put(chunk)
        cap.last_seq += pairs
        tail = Capture()
        tail.trailer([cap.last_seq, pairs, 0, 0, 0])
        put(bytes(tail.body))
        if z:
            f.write(z.flush())


@pytest.fixture(scope="module")
def long_captures(tmp_path_factory):
    d = tmp_path_factory.mktemp("long")
    raw, comp = d / "long.mlens", d / "long.z.mlens"
    long_capture(raw, 80 << 20)
    long_capture(comp, 80 << 20, compressed=True)
    return {"raw": raw, "compressed": comp}


def wait_until_reading(proc, path, deadline=120):
    """Until process `proc` has `path` mapped or open (the read has started)."""
    path = os.path.realpath(path)
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            return  # it ended: the caller sees how
        try:
            with open("/proc/%d/maps" % proc.pid) as f:
                if path in f.read():
                    return
            for fd in os.listdir("/proc/%d/fd" % proc.pid):
                try:
                    if os.readlink("/proc/%d/fd/%s" % (proc.pid, fd)) == path:
                        return
                except OSError:
                    pass
        except OSError:
            pass  # between fork and exec /proc may refuse: not started yet
        time.sleep(0.005)  # polling for the marker, not a synchronisation
    raise AssertionError("the read of %s never started" % path)


@pytest.fixture(scope="module")
def endless(tmp_path_factory):
    """A raw capture whose read would take minutes of CPU: 30 blocks, then a
    sparse tail of 64 GiB of zeros (what a crash can leave; read as the
    end of a truncated capture, scanned to its last byte)."""
    path = tmp_path_factory.mktemp("sparse") / "sparse.mlens"
    data = small_capture()
    path.write_bytes(data[:data.rindex(bytes([capfile.TAG_TRAILER]))])
    os.truncate(path, 64 << 30)
    return path


@pytest.mark.skipif(SANITIZED, reason="the CPU-time bound does not fit a sanitized run")
@pytest.mark.parametrize("command", ["summary", "lines", "timeline", "plot"])
def test_ctrl_c_stops_a_long_read(tmp_path, endless, command):
    """SIGINT once the C reader has the capture mapped: the report stops with
    `interrupted` and status 130. The C loops used to run to the end first
    (minutes here), which the child's CPU-time limit of 20 s turns into a
    failure (SIGXCPU) instead of a wait."""
    import resource

    def child_setup():
        resource.setrlimit(resource.RLIMIT_CPU, (20, 20))
        # a user's Ctrl-C: the default action, also when this suite runs as a
        # background job (which starts with SIGINT ignored, inherited)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    proc = subprocess.Popen([sys.executable, "-m", "memlens"]
                            + report_args(command, str(endless), str(tmp_path)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=child_setup)
    wait_until_reading(proc, endless)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, (proc.returncode, err)
    assert err.decode().splitlines() == ["memlens %s: interrupted" % command]
    assert out == b""


def test_sigterm_leaves_nothing_behind(tmp_path, long_captures):
    """SIGTERM while a compressed capture is read: nothing is left in TMPDIR
    (the decompressed temporary copy used to stay)."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    path = long_captures["compressed"]
    env = dict(os.environ, TMPDIR=str(tmp))
    proc = subprocess.Popen([sys.executable, "-m", "memlens", "timeline", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    wait_until_reading(proc, path)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGTERM
    assert os.listdir(tmp) == []


# ---- header JSON ----

def with_meta(meta_bytes):
    body = Capture()
    site = body.site("/tmp/app.py", "load", 10)
    body.alloc(site, 0, 10)
    body.trailer()
    return capfile.MAGIC + (1).to_bytes(4, "little") + len(meta_bytes).to_bytes(4, "little") \
        + meta_bytes + bytes(body.body)


@pytest.mark.parametrize("meta,message", [
    (b"[1, 2]", "its metadata is not a JSON object"),
    (b'"text"', "its metadata is not a JSON object"),
    (b'{"deep": ' + b"[" * 100000 + b"]" * 100000 + b"}", "its metadata is nested too deep"),
    (b'{"argv": ["a"}', "its metadata is not valid JSON"),
    (b'{"argv": 5}', 'its "argv" is not a list of strings'),
    (b'{"script": 7}', 'its "script" is not a string'),
])
@pytest.mark.parametrize("command", REPORTS)
def test_header_json_that_is_not_an_object(tmp_path, command, meta, message):
    """lines and plot printed `internal error` for a JSON list; JSON nested
    100,000 deep raised RecursionError. Every report: one line, status 2."""
    path = tmp_path / "h.mlens"
    path.write_bytes(with_meta(meta))
    r = cli(*report_args(command, str(path), str(tmp_path)))
    one_line_error(r, "%s: corrupt capture header: %s" % (path, message))


# ---- the timeline's series is bounded ----

@pytest.mark.skipif(SANITIZED, reason="address-space limits do not apply under ASan")
def test_timeline_of_millions_of_samples_is_bounded(tmp_path):
    """8,000,000 MEMORY samples (a 40 MB raw capture in a container of less
    than 1 MB). The timeline kept one point per sample (a bomb of samples
    took memory in proportion to its raw size); now the series is halved
    past 2^20 points, keeping the highest heap of each merged interval: the
    one sample of 10^9 bytes at 4,000,000 stays the maximum, the last point
    ends at the capture's end, and it all fits a 1 GiB address space."""
    import resource
    n = 8000000
    chunk = b"".join(b"\x01\x0a\x07\x05" + bytes([i % 128]) for i in range(128))
    z = zlib.compressobj(9)
    parts = [ZMAGIC, z.compress(Capture().data())]
    per_chunk = 128
    for k in range(n // per_chunk):
        if k == (n // 2) // per_chunk:
            big = Capture()
            big.memory(5, 10 ** 9)
            parts.append(z.compress(b"\x01\x0a" + bytes(big.body)))
        parts.append(z.compress(chunk))
    tail = Capture()
    tail.trailer([0, 0, 0, 0, 0])
    parts.append(z.compress(bytes(tail.body)))
    parts.append(z.flush())
    path = tmp_path / "samples.mlens"
    path.write_bytes(b"".join(parts))
    assert path.stat().st_size < 1 << 20
    code = ("import json, sys; from memlens import _engine, capfile\n"
            "tl = _engine.timeline(capfile.raw_path(sys.argv[1]))\n"
            "print(json.dumps([len(tl['points']), max(tl['heap_max']), tl['points'][-1][0],"
            " tl['end_us'], all(a[0] < b[0] for a, b in zip(tl['points'], tl['points'][1:]))]))")

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                       preexec_fn=limit, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    npoints, top, last_t, end_us, increasing = json.loads(r.stdout)
    assert (1 << 19) <= npoints <= (1 << 20)
    assert top == 10 ** 9
    assert last_t == end_us == (n + 1) * 10 and increasing


def test_a_deep_stack_is_cut_in_report_rows(tmp_path):
    """A chain of 10,000 frames (memlens writes at most 4,096: --max-frames):
    a report row lists the innermost 4,096, so rows x depth stays bounded."""
    cap = Capture()
    code = cap.code_def("/tmp/app.py", "rec", 1, [(0, 1)])
    parent = 0
    for i in range(10000):
        parent = cap.frame_def(parent, code, 0)
    t = cap.type_def("list")
    cap.alloc(parent, t, 64)
    cap.trailer()
    path = tmp_path / "deep.mlens"
    path.write_bytes(cap.data())
    r = cli("leaks", path, "--json")
    assert r.returncode == 0, r.stderr
    (row,) = rows(json.loads(r.stdout), "leaks")
    assert row["count"] == 1 and row["bytes"] == 64
    assert len(row["stack"]) == 4096
    assert all(f["function"] == "rec" and f["line"] == 1 for f in row["stack"])


@pytest.mark.parametrize("command", REPORTS)
def test_compressed_capture_without_libz_in_the_engine(tmp_path, small, command):
    """Where the engine cannot load libz (MEMLENS_NO_ZLIB=1, the tests'
    switch), Python's zlib reads the container: the same reports."""
    want = cli(*report_args(command, small["raw"], str(tmp_path)))
    got = cli(*report_args(command, small["compressed"], str(tmp_path)),
              env={"MEMLENS_NO_ZLIB": "1"})
    assert want.returncode == got.returncode == 0, got.stderr
    assert _strip(command, got.stdout) == _strip(command, want.stdout)

"""The CLI as one tool: the same flags and JSON envelope in every command,
one-line errors naming the command, terminal-safe text, thousands
separators, progress only on a terminal (issue 9, "One tool, not nine")."""
import json
import os
import pty
import subprocess
import sys
import textwrap

import pytest

import capfile
from capfile import NOTE_WARNING, Capture
from memlens import __version__, fmt

REPORTS = ("summary", "types", "leaks", "lines", "timeline")


def run_cli(*args, cwd=None, text=True):
    return subprocess.run([sys.executable, "-m", "memlens"] + [os.fsdecode(a) for a in args],
                          capture_output=True, text=text, cwd=cwd, timeout=180)


def small_capture(path, script="/src/app.py", truncated=False):
    """3 x 1,000 B of bytearray at app.py:10 (function load), one freed; a
    MEMORY sample; the capture's script is app.py."""
    cap = Capture(meta=dict(capfile.DEFAULT_META, script=script, argv=[script, "x"]))
    s = cap.site(script, "load", 10)
    t = cap.type_def("bytearray")
    cap.time(1000)
    seqs = [cap.alloc(s, t, 1000) for _ in range(3)]
    cap.memory(1 << 20, 3000)
    cap.context_stack(s)  # freed at app.py:10 too
    cap.free(seqs[0])
    cap.time(1000)
    return cap.save(path, trailer=not truncated)


# ---- flags: one name and one meaning ----

def test_no_arguments_prints_the_help():
    r = run_cli()
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.startswith("usage: memlens") and "summary" in r.stdout


@pytest.mark.parametrize("command", REPORTS + ("plot",))
def test_every_report_names_its_argument_capture(command):
    r = run_cli(command, "--help")
    assert r.returncode == 0
    usage, positional = r.stdout.split("positional arguments:\n")
    assert usage.split("\n\n")[0].rstrip().endswith(" CAPTURE")
    assert positional.split()[0] == "CAPTURE"


@pytest.mark.parametrize("command", ("summary", "types", "leaks", "lines"))
def test_top_everywhere(command, tmp_path):
    path = small_capture(tmp_path / "a.mlens")
    r = run_cli(command, path, "--top", "1", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_heap_top_and_the_old_limit():
    for flag in ("--top", "--limit"):
        r = run_cli("heap", flag, "2", "-c", "pass")
        assert r.returncode == 0, r.stderr
        assert "more types" in r.stdout.splitlines()[5]  # title, header, rule, 2 rows
    assert "--limit" not in run_cli("heap", "--help").stdout


def test_f_means_force_only(tmp_path):
    path = small_capture(tmp_path / "a.mlens")
    assert "-f, --force" in run_cli("run", "--help").stdout
    r = run_cli("lines", path, "-f", "load")
    assert r.returncode == 2 and "memlens lines: error:" in r.stderr


@pytest.mark.parametrize("args, what", [
    (["leaks", "CAP", "--bogus"], "memlens leaks: error: unrecognized arguments: --bogus"),
    (["summary", "CAP", "--top", "99999999999999999999"], "memlens summary: error: argument --top"),
    (["lines", "CAP", "--function", "nosuch"], "memlens lines: error: no function 'nosuch'"),
    (["lines", "CAP", "--top", "-1"], "memlens lines: error: argument --top"),
])
def test_bad_input_one_line_naming_the_command(args, what, tmp_path):
    path = small_capture(tmp_path / "a.mlens")
    r = run_cli(*[str(path) if a == "CAP" else a for a in args], cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith(what), r.stderr
    assert "internal error" not in r.stderr


@pytest.mark.parametrize("command", REPORTS + ("plot",))
def test_bad_capture_says_the_path_once(command, tmp_path):
    bad = tmp_path / "bad.mlens"
    bad.write_bytes(b"not a capture at all")
    extra = ["-o", str(tmp_path / "o.svg")] if command == "plot" else []
    r = run_cli(command, bad, *extra)
    assert r.returncode == 2
    assert r.stderr.startswith("memlens %s: error: " % command)
    assert r.stderr.count(str(bad)) == 1, r.stderr
    assert not (tmp_path / "o.svg").exists()


def test_help_texts():
    run_help = run_cli("run", "--help").stdout
    assert "when the program ends" not in run_help
    plot_help = run_cli("plot", "--help").stdout
    out_help = plot_help.split("--output OUT.svg|OUT.html", 1)[1].split("--json")[0]
    assert ".svg" in out_help and ".html" in out_help


# ---- JSON: one envelope ----

def _json_of(command, path, tmp_path):
    extra = ["-o", str(tmp_path / "o.svg")] if command == "plot" else []
    r = run_cli(command, path, "--json", *extra, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("command", REPORTS + ("plot",))
@pytest.mark.parametrize("truncated", (False, True))
def test_one_envelope(command, truncated, tmp_path):
    path = small_capture(tmp_path / "a.mlens", truncated=truncated)
    doc = _json_of(command, path, tmp_path)
    assert doc["memlens"] == __version__
    assert doc["capture"] == {"path": str(path), "python": "3.12.1", "argv": ["/src/app.py", "x"],
                              "truncated": truncated, "warnings": []}


def test_same_names_for_the_same_things(tmp_path):
    path = small_capture(tmp_path / "a.mlens")
    tl = _json_of("timeline", path, tmp_path)
    csv_header = run_cli("timeline", path, "--csv").stdout.splitlines()[0].split(",")
    assert [list(p) for p in tl["points"]] == [csv_header]
    assert tl["points"][0]["rss_bytes"] == 1 << 20 and tl["points"][0]["heap_bytes"] == 3000
    assert tl["peak"] == {"bytes": 3000, "count": 3, "time_s": 0.001,
                          "site": {"function": "load", "file": "/src/app.py", "line": 10,
                                   "bytes": 3000, "count": 3}}
    assert _json_of("plot", path, tmp_path) == tl
    summary = _json_of("summary", path, tmp_path)
    assert set(summary["top_peak"][0]) >= {"bytes", "count"}
    lines = _json_of("lines", path, tmp_path)
    assert lines["lines"] == [{"function": "load", "file": "/src/app.py", "line": 10,
                               "heap_bytes": 2000, "increment_bytes": 2000,
                               "allocated_bytes": 3000, "allocations": 3, "source": ""}]


PRINTING = textwrap.dedent("""\
    import sys
    print("hello from the program")
    @profile
    def f():
        keep = [bytearray(1000) for _ in range(10)]
        return keep
    kept = f()
    print("bye", file=sys.stdout)
""")


@pytest.mark.parametrize("command", ("heap", "profile"))
def test_json_of_a_program_that_prints(command, tmp_path):
    script = tmp_path / "p.py"
    script.write_text(PRINTING if command == "profile" else PRINTING.replace("@profile", ""))
    r = run_cli(command, "--json", script, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)  # standard output is the JSON alone
    assert doc["memlens"] == __version__ and doc["capture"] is None
    assert doc["program"]["argv"] == [str(script)]
    assert r.stderr.splitlines()[:2] == ["hello from the program", "bye"]
    if command == "profile":
        assert [f["function"] for f in doc["functions"]] == ["f"]
    else:
        assert doc["total_count"] > 0


# ---- numbers ----

def test_thousands_separators_everywhere():
    assert fmt.human_count(999) == "999" and fmt.human_count(1000) == "1,000"
    assert fmt.human_count(9204) == "9,204" and fmt.human_count(-1234, signed=True) == "-1,234"
    assert fmt.human_bytes(5784.2) == "5.6 KiB" and fmt.human_bytes(56.5) == "56.5 B"


def test_types_counts_have_separators(tmp_path):
    cap = Capture()
    s = cap.site("app.py", "f", 1)
    t = cap.type_def("float")
    for _ in range(1234):
        cap.alloc(s, t, 24)
    path = cap.save(tmp_path / "f.mlens")
    row = next(l for l in run_cli("types", path).stdout.splitlines() if l.startswith("float"))
    assert row.split()[:2] == ["float", "1,234"]


def test_heap_average_in_human_units():
    r = run_cli("heap", "-c", "kept = [bytearray(5000) for _ in range(50)]")
    row = next(l for l in r.stdout.splitlines() if l.startswith("bytearray "))
    assert row.split()[4:6] == ["4.9", "KiB"], row  # 5,057 B average: never "5057.0 B"


# ---- terminal safety ----

EVIL = "\x1b]0;pwned\x07\x1b[2J\rX\x9b1m\x85\u202e"


def hostile_capture(path):
    """Every name a report prints holds terminal control sequences: file,
    function, type, argv, marks and notes (and bytes that are not UTF-8)."""
    bad = b"\xff\xfe"
    script = "/src/ev" + EVIL + "il.py"
    cap = Capture(meta=dict(capfile.DEFAULT_META, script=script, argv=[script, EVIL]))
    code = cap.code_def(script, ("fn" + EVIL).encode() + bad, 1, [(0, 1), (2, 2)])
    frame = cap.frame_def(0, code, 2, 2)
    t = cap.type_def(("Ty" + EVIL).encode() + bad)
    cap.note(NOTE_WARNING, "note" + EVIL)
    cap.time(1000)
    cap.mark(capfile.MARK_ENTER, "call" + EVIL)
    seqs = [cap.alloc(frame, t, 100) for _ in range(3)]
    cap.memory(1 << 20, 300)
    cap.free(seqs[0])
    cap.mark(capfile.MARK_EXIT, "call" + EVIL)
    cap.time(1000)
    return cap.save(path), script


def assert_terminal_safe(data):
    text = data.decode("utf-8")  # no byte that is not UTF-8 either
    for c in text:
        assert c == "\n" or not (ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or c == "\u202e"), \
            (repr(c), text)


@pytest.mark.parametrize("args", [
    ["summary"], ["types"], ["leaks"], ["lines"], ["timeline"], ["plot", "-o", "OUT"],
    ["summary", "--json"], ["leaks", "--json"], ["lines", "--json"], ["timeline", "--json"],
])
def test_no_control_character_reaches_the_terminal(args, tmp_path):
    path, _ = hostile_capture(tmp_path / "h.mlens")
    args = [str(tmp_path / "o.svg") if a == "OUT" else a for a in args]
    r = run_cli(args[0], path, *args[1:], text=False)
    assert r.returncode == 0, r.stderr
    assert_terminal_safe(r.stdout)
    assert_terminal_safe(r.stderr)
    if "--json" not in args and args[0] != "plot":
        assert b"\\x1b]0;pwned\\x07" in r.stdout + r.stderr  # shown, escaped


def test_errors_are_escaped(tmp_path):
    r = run_cli("summary", str(tmp_path / ("gone" + EVIL + ".mlens")), text=False)
    assert r.returncode == 2
    assert_terminal_safe(r.stderr)
    r = run_cli("types", str(tmp_path), "--sort", EVIL, text=False)
    assert r.returncode == 2
    assert_terminal_safe(r.stderr)


def test_safe():
    assert fmt.safe("a\x1b[2Jb\x07\r\n\x9b\udcff") == "a\\x1b[2Jb\\x07\\r\\n\\x9b\\xff"
    assert fmt.safe("x\ny\x1b", keep="\n") == "x\ny\\x1b"
    assert fmt.safe("naïve ünïcode") == "naïve ünïcode"


# ---- progress: on a terminal only ----

BIG = "keep = []\nfor i in range(700000):\n    keep.append([i])\n    keep.pop()\n"


@pytest.fixture(scope="module")
def big_capture(tmp_path_factory):
    """A compressed capture of more than a million events (progress is
    reported every 2**20 events)."""
    d = tmp_path_factory.mktemp("big")
    script = d / "big.py"
    script.write_text(BIG)
    path = d / "big.mlens"
    r = run_cli("run", "-q", "-o", path, script)
    assert r.returncode == 0, r.stderr
    with open(path, "rb") as f:
        assert f.read(8) == b"MLENSZ\0\n"  # compressed
    return str(path)


def _stderr_on_a_pty(args, env=None):
    """Run memlens with stderr on a pseudo-terminal; returns (status, stderr)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "memlens"] + args, stdout=subprocess.DEVNULL,
                            stderr=slave, stdin=subprocess.DEVNULL,
                            env=dict(os.environ, **(env or {})))
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=180), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize("command", ["summary", "types", "leaks", "lines", "timeline", "plot"])
def test_progress_on_a_terminal_only(command, big_capture, tmp_path):
    extra = ["-o", str(tmp_path / "o.svg"), "--force"] if command == "plot" else []
    status, err = _stderr_on_a_pty([command, big_capture] + extra)
    assert status == 0, err
    # the engine inflates the container as it reads: one phase
    assert "reading capture:" in err and "decompressing" not in err, repr(err)
    # where it cannot load libz, Python's zlib decompresses first: two phases
    status, err = _stderr_on_a_pty([command, big_capture] + extra, env={"MEMLENS_NO_ZLIB": "1"})
    assert status == 0, err
    assert "decompressing capture:" in err and "reading capture:" in err, repr(err)
    r = run_cli(command, big_capture, *extra)
    assert r.returncode == 0, r.stderr
    assert "capture:" not in r.stderr and "\r" not in r.stderr

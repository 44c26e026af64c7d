"""Every file memlens writes is a new file (issue 9, "Output files").

For `run -o` (the C writer), the children of `run --follow-fork`, `plot -o`,
`heap -o` and `profile -o`: whatever already stands at the output path (a
symbolic link, dangling or to a victim file, a file, a FIFO, a directory)
is never written through, truncated or followed. Without --force the
command stops with one line and exit status 2 and leaves it untouched;
with --force a file or a link is replaced (the link itself: its target is
never written), a FIFO or a directory never. A missing or unwritable
folder is one line and exit status 2 too.
"""
import json
import os
import stat

import pytest

from conftest import memlens

PROG = "x = [bytes(100) for _ in range(1000)]\nprint('ran')\n"
VICTIM = "the victim's content\n"


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    d = tmp_path_factory.mktemp("outcap")
    (d / "prog.py").write_text(PROG)
    cap = str(d / "c.mlens")
    proc = memlens("run", "-q", "-o", cap, str(d / "prog.py"))
    assert proc.returncode == 0, proc.stderr
    return cap


def _command(kind, capture, prog, out, force):
    """argv of the command `kind` writing to out."""
    f = ["--force"] if force else []
    if kind == "run":
        return ["run", "-q"] + f + ["-o", out, prog]
    if kind in ("plot", "flamegraph"):
        return [kind, capture, "-o", out] + f
    if kind == "heap":
        return ["heap", "--json"] + f + ["-o", out, prog]
    return ["profile"] + f + ["-o", out, prog]


def _check_written(kind, out):
    """out is a regular file holding what the command writes."""
    st = os.lstat(out)
    assert stat.S_ISREG(st.st_mode)
    data = open(out, "rb").read()
    if kind == "run":
        assert data.startswith((b"MLENS\0\r\n", b"MLENSZ\0\n"))
    elif kind in ("plot", "flamegraph"):
        assert data.startswith(b"<!DOCTYPE html>")
    elif kind == "heap":
        assert json.loads(data)  # the census, as --json prints it
    # profile: no decorated function ran, the file is empty


KINDS = ["run", "plot", "heap", "profile", "flamegraph"]


def _paths(tmp_path, kind):
    prog = tmp_path / "prog.py"
    prog.write_text(PROG)
    out = tmp_path / ("out.html" if kind in ("plot", "flamegraph") else "out.txt")
    return str(prog), str(out)


def _one_line_error(proc, *words):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for w in words:
        assert w in lines[0], lines[0]
    assert "ran" not in proc.stdout  # refused before the program ran


@pytest.mark.parametrize("kind", KINDS)
def test_symlink_to_a_victim(kind, capture, tmp_path):
    prog, out = _paths(tmp_path, kind)
    victim = tmp_path / "victim"
    victim.write_text(VICTIM)
    os.symlink(str(victim), out)
    proc = memlens(*_command(kind, capture, prog, out, force=False))
    _one_line_error(proc, out, "symbolic link", "--force")
    assert victim.read_text() == VICTIM and os.readlink(out) == str(victim)
    # --force replaces the link by a file of its own; the victim is untouched
    proc = memlens(*_command(kind, capture, prog, out, force=True))
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == VICTIM
    _check_written(kind, out)


@pytest.mark.parametrize("kind", KINDS)
def test_dangling_symlink(kind, capture, tmp_path):
    prog, out = _paths(tmp_path, kind)
    victim = tmp_path / "victim"  # does not exist: writing through the link would create it
    os.symlink(str(victim), out)
    proc = memlens(*_command(kind, capture, prog, out, force=False))
    _one_line_error(proc, out, "symbolic link")
    assert not os.path.lexists(str(victim)) and os.path.islink(out)
    proc = memlens(*_command(kind, capture, prog, out, force=True))
    assert proc.returncode == 0, proc.stderr
    assert not os.path.lexists(str(victim))
    _check_written(kind, out)


@pytest.mark.parametrize("kind", KINDS)
def test_existing_file(kind, capture, tmp_path):
    prog, out = _paths(tmp_path, kind)
    with open(out, "w") as f:
        f.write(VICTIM)
    proc = memlens(*_command(kind, capture, prog, out, force=False))
    _one_line_error(proc, out, "exists", "--force")
    assert open(out).read() == VICTIM
    proc = memlens(*_command(kind, capture, prog, out, force=True))
    assert proc.returncode == 0, proc.stderr
    _check_written(kind, out)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("force", [False, True])
def test_fifo_and_directory_are_never_replaced(kind, force, capture, tmp_path):
    prog, out = _paths(tmp_path, kind)
    os.mkfifo(out)  # opening it for writing would block: the command must not
    proc = memlens(*_command(kind, capture, prog, out, force), timeout=60)
    _one_line_error(proc, out, "FIFO")
    assert stat.S_ISFIFO(os.lstat(out).st_mode)
    os.unlink(out)
    os.mkdir(out)
    (tmp_path / out / "inside").write_text(VICTIM)
    proc = memlens(*_command(kind, capture, prog, out, force), timeout=60)
    _one_line_error(proc, out, "directory")
    assert (tmp_path / out / "inside").read_text() == VICTIM


@pytest.mark.parametrize("kind", KINDS)
def test_missing_or_unwritable_folder(kind, capture, tmp_path):
    prog, _ = _paths(tmp_path, kind)
    name = "out.html" if kind in ("plot", "flamegraph") else "out.txt"
    out = str(tmp_path / "no" / "such" / name)
    proc = memlens(*_command(kind, capture, prog, out, force=False))
    _one_line_error(proc, out, "no such directory")
    assert not os.path.exists(str(tmp_path / "no"))
    if os.geteuid() == 0:
        # root writes into any folder of a normal file system; sysfs refuses
        # to create files even for root
        out = "/sys/memlens-test-" + name
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        out = str(ro / name)
    proc = memlens(*_command(kind, capture, prog, out, force=True))
    _one_line_error(proc, out, "ermission denied")
    assert not os.path.exists(out)


@pytest.mark.parametrize("kind", ["heap", "profile"])
def test_failed_start_leaves_no_file(kind, capture, tmp_path):
    """The report file is created before the program runs (so a bad path
    fails first); a program that cannot start leaves nothing behind."""
    out = str(tmp_path / "out.txt")
    argv = ["heap", "-o", out] if kind == "heap" else ["profile", "-o", out]
    proc = memlens(*argv, "-m", "no_such_module_anywhere")
    _one_line_error(proc, "no_such_module_anywhere")
    assert not os.path.lexists(out)


def test_report_file_is_written_in_the_first_folder(capture, tmp_path):
    """A program that changes its folder does not move the report (heap -o)
    or the capture (run -o) to another one."""
    (tmp_path / "elsewhere").mkdir()
    prog = tmp_path / "prog.py"
    prog.write_text("import os\nx = [bytes(100) for _ in range(1000)]\nos.chdir('elsewhere')\n")
    proc = memlens("heap", "--json", "-o", "h.json", str(prog), cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert json.load(open(str(tmp_path / "h.json")))
    assert not os.path.exists(str(tmp_path / "elsewhere" / "h.json"))
    proc = memlens("run", "-o", "r.mlens", str(prog), cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "summary unavailable" not in proc.stderr
    assert os.path.getsize(str(tmp_path / "r.mlens")) > 0
    assert os.listdir(str(tmp_path / "elsewhere")) == []


# ---- --follow-fork children: FILE.<pid> ----

FORK_PROG = """\
import os
pid = os.fork()
if pid == 0:
    x = [bytes(100) for _ in range(1000)]
    print("child", os.getpid(), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
print("parent")
"""


def _trap_next_pids(out, make, n=5000):
    """Put make(path) at out.<pid> for the next n pids (the child's pid
    cannot be known in advance; n covers whatever this machine forks in the
    meantime). No process is started here, so no pid is used up."""
    last = int(open("/proc/sys/kernel/ns_last_pid").read())
    pid_max = int(open("/proc/sys/kernel/pid_max").read())
    made = set()
    for i in range(1, n + 1):
        pid = last + i
        if pid >= pid_max:
            pid = 300 + pid - pid_max  # the kernel wraps around to 300
        make("%s.%d" % (out, pid))
        made.add(pid)
    return made


def _run_fork(tmp_path, force, make):
    prog = tmp_path / "fork.py"
    prog.write_text(FORK_PROG)
    out = str(tmp_path / "f.mlens")
    trapped = _trap_next_pids(out, make)
    argv = ["run", "-q", "--follow-fork"] + (["--force"] if force else []) + ["-o", out, str(prog)]
    proc = memlens(*argv)
    assert proc.returncode == 0, proc.stderr
    child = int(proc.stdout.split("child ")[1].split()[0])
    assert proc.stdout == "child %d\nparent\n" % child  # the program's output, unchanged
    assert child in trapped, "the child's pid %d came after the %d trapped ones" % (child, len(trapped))
    return out, child, proc


def _child_recorded(path):
    assert stat.S_ISREG(os.lstat(path).st_mode)
    proc = memlens("leaks", path, "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    rows = rows if isinstance(rows, list) else next(v for v in rows.values() if isinstance(v, list))
    assert any(r["type"] == "bytes" and r["count"] >= 1000 for r in rows)


@pytest.mark.parametrize("force", [False, True])
def test_fork_child_file_symlink_to_a_victim(force, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text(VICTIM)
    out, child, proc = _run_fork(tmp_path, force, lambda p: os.symlink(str(victim), p))
    assert victim.read_text() == VICTIM
    mine = "%s.%d" % (out, child)
    if force:
        _child_recorded(mine)  # the link was replaced by the child's capture
    else:
        assert os.readlink(mine) == str(victim)
        warning = [l for l in proc.stderr.splitlines() if "not recorded" in l]
        assert len(warning) == 1 and mine in warning[0] and "symbolic link" in warning[0]
        assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr


def test_fork_child_file_dangling_symlink(tmp_path):
    victim = tmp_path / "victim"
    out, child, proc = _run_fork(tmp_path, False, lambda p: os.symlink(str(victim), p))
    assert not os.path.lexists(str(victim))
    assert os.path.islink("%s.%d" % (out, child))


@pytest.mark.parametrize("force", [False, True])
def test_fork_child_file_existing(force, tmp_path):
    def stale(p):
        with open(p, "w") as f:
            f.write(VICTIM)
    out, child, proc = _run_fork(tmp_path, force, stale)
    mine = "%s.%d" % (out, child)
    if force:
        _child_recorded(mine)
    else:
        assert open(mine).read() == VICTIM  # not truncated
        assert any("not recorded" in l and "exists" in l for l in proc.stderr.splitlines())


def test_compress_temp_file_is_not_followed(tmp_path):
    """Where zlib cannot be loaded by the engine, `run` compresses the capture
    at the end through FILE.z-tmp: a link left there is not written through;
    the capture stays raw (and readable), with one line saying so."""
    prog = tmp_path / "prog.py"
    prog.write_text(PROG)
    out = str(tmp_path / "z.mlens")
    victim = tmp_path / "victim"
    victim.write_text(VICTIM)
    os.symlink(str(victim), out + ".z-tmp")
    proc = memlens("run", "-q", "-o", out, str(prog), env={"MEMLENS_NO_ZLIB": "1"})
    assert proc.returncode == 0 and proc.stdout == "ran\n", proc.stderr
    assert victim.read_text() == VICTIM and os.path.islink(out + ".z-tmp")
    assert open(out, "rb").read(8) == b"MLENS\0\r\n"  # raw, whole
    lines = [l for l in proc.stderr.splitlines() if "uncompressed" in l]
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert memlens("leaks", out, "--json").returncode == 0

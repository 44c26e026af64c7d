"""memlens run must not change the program: sys.path, warnings, object lifetimes.

Each test compares the program under `memlens run` with the same program under
plain `python` (the ground truth), or with what the program itself knows
(weak references, id() reuse).
"""
import json
import os
import subprocess
import sys

import pytest

from conftest import memlens

PRINT_PATH = "import json, sys; print(json.dumps(sys.path))\n"


def _python(args, cwd, env=None):
    e = dict(os.environ)
    e.pop("PYTHONSAFEPATH", None)
    e.update(env or {})
    return subprocess.run([sys.executable] + list(args), capture_output=True, text=True, cwd=cwd,
                          env=e, timeout=120)


def _memlens_run(args, cwd, env=None, launcher="module"):
    e = dict(os.environ)
    e.pop("PYTHONSAFEPATH", None)
    e.update(env or {})
    if launcher == "module":
        cmd = [sys.executable, "-m", "memlens"]
    else:  # the console script: its own folder is what python prepends
        cmd = [os.path.join(os.path.dirname(sys.executable), "memlens")]
    out = os.path.join(cwd, "cap-%d.mlens" % len([f for f in os.listdir(cwd) if f.endswith(".mlens")]))
    return subprocess.run(cmd + ["run", "-q", "-o", out] + list(args), capture_output=True, text=True,
                          cwd=cwd, env=e, timeout=120)


def _kinds(tmp_path):
    sub = tmp_path / "pkgdir"
    sub.mkdir()
    (sub / "showpath.py").write_text(PRINT_PATH)
    (tmp_path / "mymod.py").write_text(PRINT_PATH)
    os.symlink(str(sub / "showpath.py"), str(tmp_path / "linked.py"))
    return {
        "script": [os.path.join("pkgdir", "showpath.py")],
        "symlinked script": ["linked.py"],
        "module": ["-m", "mymod"],
        "code": ["-c", PRINT_PATH],
    }


CONSOLE = os.path.join(os.path.dirname(sys.executable), "memlens")
LAUNCHERS = ["module"] + (["console"] if os.path.exists(CONSOLE) else [])
SAFE = [{}] + ([{"PYTHONSAFEPATH": "1"}] if sys.version_info >= (3, 11) else [])


@pytest.mark.parametrize("launcher", LAUNCHERS)
@pytest.mark.parametrize("env", SAFE, ids=lambda e: "safe" if e else "default")
def test_sys_path_is_as_python_puts_it(tmp_path, launcher, env):
    """sys.path seen by the program under memlens run equals the one under
    python for a script (also through a symlink), -m and -c; memlens' own
    entry (the current folder of `python -m memlens`, the console script's
    folder) is not left in it."""
    for kind, args in _kinds(tmp_path).items():
        plain = _python(args, str(tmp_path), env)
        ran = _memlens_run(args, str(tmp_path), env, launcher)
        if env and kind == "module":  # safe path: the current folder is not searched
            assert "No module named mymod" in plain.stderr and "No module named mymod" in ran.stderr
            continue
        assert plain.returncode == 0, (kind, plain.stderr)
        assert ran.returncode == 0, (kind, ran.stderr)
        assert json.loads(ran.stdout) == json.loads(plain.stdout), kind


def test_run_module_from_current_folder(tmp_path):
    """`memlens run -m mymod` finds mymod.py in the current folder, as `python -m mymod` does,
    also when memlens is started by its console script (whose folder python puts first)."""
    (tmp_path / "mymod.py").write_text("print('mymod ran')\n")
    for launcher in LAUNCHERS:
        ran = _memlens_run(["-m", "mymod"], str(tmp_path), launcher=launcher)
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout == "mymod ran\n"


# the rows key of each report's JSON envelope (docs/REPORTS.md)
ROWS = {"leaks": "leaks", "lines": "lines"}


def _report(name, cap, *args):
    proc = memlens(name, cap, "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)[ROWS[name]]


CODES_ALIVE = """\
import gc, weakref
refs = []
for i in range(2000):
    ns = {}
    exec("def f%d(x):\\n    return [x] * 3\\n" % i, ns)
    ns["f%d" % i](i)
    refs.append(weakref.ref(ns["f%d" % i].__code__))
    del ns
gc.collect()
print(sum(r() is not None for r in refs))
"""


def test_code_objects_are_not_kept_alive(tmp_path):
    """2,000 exec'd functions, each called once and dropped: after gc.collect()
    no code object is alive under memlens run, as under python."""
    prog = tmp_path / "codes.py"
    prog.write_text(CODES_ALIVE)
    plain = _python([str(prog)], str(tmp_path))
    assert plain.stdout == "0\n", plain.stderr
    ran = _memlens_run([str(prog)], str(tmp_path))
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "0\n"


REUSE = """\
import gc
keep, ids = [], []
for i in range(N):
    # function i allocates 40,000 + i bytes at line i + 2 of gen.py: same
    # byte code every time, so its code object is the same size and the
    # allocator hands it the address of an earlier, dead one
    ns = {}
    exec(compile("\\n" * i + "def f():\\n    return bytearray(40000 + %d)\\n" % i, GEN, "exec"), ns)
    keep.append(ns["f"]())
    ids.append(id(ns["f"].__code__))
    del ns
    gc.collect()
print(len(ids) - len(set(ids)))
"""


def test_reused_code_addresses_charge_the_right_line(tmp_path):
    """Code objects die and new ones take their addresses (the program sees
    id() repeat): every allocation is still charged to its own line, so the
    capture never confuses a new function with a dead one."""
    n = 150
    gen = str(tmp_path / "gen.py")
    prog = tmp_path / "reuse.py"
    prog.write_text("N, GEN = %d, %r\n" % (n, gen) + REUSE)
    cap = str(tmp_path / "reuse.mlens")
    proc = memlens("run", "-q", "-o", cap, str(prog))
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) > n // 2  # addresses were reused, as under python
    sites = {}
    for r in _report("leaks", cap, "--top", "100000"):
        if r["file"] == gen:
            sites.setdefault(r["line"], []).append(r["bytes"])
    for i in range(n):
        # bytearray(k) asks for k + 1 bytes of data (its object is a row of its own)
        assert 40000 + i + 1 in sites.get(i + 2, []), (i, sites.get(i + 2))
    assert len(sites) == n


DEAD_MODULE = """\
def grow():
    data = bytearray(300000)  # @big
    more = [0] * 50000  # @list
    return len(data) + len(more)
"""


def test_lines_resolves_code_that_died(tmp_path):
    """`lines` shows the lines of a function whose code object died long
    before the end of the run (its module was dropped and collected)."""
    (tmp_path / "deadmod.py").write_text(DEAD_MODULE)
    prog = tmp_path / "main.py"
    prog.write_text("import gc, sys, weakref\n"
                    "import deadmod\n"
                    "deadmod.grow()\n"
                    "ref = weakref.ref(deadmod.grow.__code__)\n"
                    "del sys.modules['deadmod'], deadmod\n"
                    "gc.collect()\n"
                    "print(ref() is None)\n")
    cap = str(tmp_path / "dead.mlens")
    proc = memlens("run", "-q", "-o", cap, str(prog), cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "True\n"  # the code object is gone
    rows = {r["line"]: r for r in _report("lines", cap, "--file", str(tmp_path / "deadmod.py"))
            if r["function"] == "grow"}
    assert rows[2]["allocated_bytes"] >= 300000
    assert rows[2]["source"].strip().startswith("data = bytearray")
    assert rows[3]["allocated_bytes"] >= 50000 * 8 and rows[3]["source"].strip().startswith("more = [0]")


THREAD_REUSE = """\
import gc, threading
out = [None] * N
slot = [None]
go = [threading.Lock() for _ in range(N)]
done = threading.Lock()  # plain locks: acquiring and releasing allocate nothing
for lock in go + [done]:
    lock.acquire()

def worker():
    for i in range(N):
        go[i].acquire()
        slot[0]()        # the same call site every time: the same frame address
        done.release()   # nothing allocated between the call and the next one

def make(i):
    # function i stores a bytearray of 40,000 + i bytes at line i + 2 of
    # gen.py; same byte code every time, so its code object is the size of
    # the dead one before it and usually gets its address
    ns = {"out": out}
    src = "\\n" * i + "def f():\\n    out[%d] = bytearray(40000 + %d)\\n" % (i, i)
    exec(compile(src, GEN, "exec"), ns)
    return ns["f"]

ids = []
t = threading.Thread(target=worker)
t.start()
for i in range(N):
    slot[0] = make(i)
    ids.append(id(slot[0].__code__))
    go[i].release()
    done.acquire()
    slot[0] = None  # function i and its code die here
    gc.collect()
t.join()
print(len(ids) - len(set(ids)))
"""


def test_code_address_reused_under_another_threads_cached_stack(tmp_path):
    """A thread's last stack is cached (frame addresses and positions): it
    ran function i, which died on another thread; function i + 1's code took
    its address, and runs in a frame at the same address at the same
    instruction. Its allocation is charged to its own line, not to the dead
    function's (the cache notices the code's death)."""
    n = 60
    gen = str(tmp_path / "gen.py")
    prog = tmp_path / "threads.py"
    prog.write_text("N, GEN = %d, %r\n" % (n, gen) + THREAD_REUSE)
    cap = str(tmp_path / "threads.mlens")
    proc = memlens("run", "-q", "-o", cap, str(prog))
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) > n // 2  # addresses were reused
    sites = {}
    for r in _report("leaks", cap, "--top", "100000"):
        if r["file"] == gen:
            sites.setdefault(r["line"], []).append(r["bytes"])
    for i in range(n):
        assert 40000 + i + 1 in sites.get(i + 2, []), (i, sites.get(i + 2))


FORKS = """\
import os
before = [bytearray(100) for _ in range(1000)]  # @before
after = []
for k in range(3):
    pid = os.fork()
    if pid == 0:
        child = [bytearray(200) for _ in range(500)]  # @child
        os._exit(0)
    after += [bytearray(300) for _ in range(400)]  # @after
    os.waitpid(pid, 0)
print("parent", len(before), len(after))
"""


@pytest.mark.parametrize("warnings", [None, "error::DeprecationWarning"])
def test_fork_prints_what_python_prints(tmp_path, warnings):
    """os.fork() under memlens run: the program's stderr is python's (3.12+
    warns when a multi-threaded process forks: memlens' sampler thread is
    not there when the fork counts threads), and the capture stays exact
    across the forks, in the parent and, with --follow-fork, the children."""
    prog = tmp_path / "forks.py"
    prog.write_text(FORKS)
    lines = {t.split("# @")[1]: n for n, t in enumerate(FORKS.splitlines(), 1) if "# @" in t}
    flags = ["-W", warnings] if warnings else []
    plain = subprocess.run([sys.executable] + flags + [str(prog)], capture_output=True, text=True,
                           cwd=str(tmp_path), timeout=120)
    cap = str(tmp_path / "forks.mlens")
    ran = subprocess.run([sys.executable] + flags + ["-m", "memlens", "run", "-q", "--follow-fork",
                         "-o", cap, str(prog)], capture_output=True, text=True, cwd=str(tmp_path),
                         timeout=120)
    assert plain.returncode == 0 and plain.stdout == "parent 1000 1200\n", plain.stderr
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == plain.stdout
    assert plain.stderr == "" and ran.stderr == ""  # python prints nothing: neither may memlens
    count = {}
    for r in _report("leaks", cap, "--top", "0"):
        if r["file"] == str(prog) and r["type"] == "bytearray":
            count[r["line"]] = count.get(r["line"], 0) + r["count"]
    assert count == {lines["before"]: 1000, lines["after"]: 1200}
    children = sorted(p for p in os.listdir(str(tmp_path)) if p.startswith("forks.mlens."))
    assert len(children) == 3
    for child in children:
        rows = _report("leaks", str(tmp_path / child), "--top", "0")
        assert sum(r["count"] for r in rows
                   if r["line"] == lines["child"] and r["type"] == "bytearray") == 500


def _package_dir():
    out = subprocess.run([sys.executable, "-c", "import memlens, os; print(memlens.__path__[0] + os.sep)"],
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _run_raw(tmp_path, prog, expect_status=0):
    """memlens run, capture left raw: its bytes hold every file name it defines."""
    cap = str(tmp_path / (os.path.basename(str(prog)) + ".mlens"))
    proc = memlens("run", "-q", "--no-compress", "-o", cap, str(prog))
    assert proc.returncode == expect_status, proc.stderr
    with open(cap, "rb") as f:
        return cap, proc, f.read()


RAISES = """\
def build():
    return [bytearray(1000) for _ in range(300)]  # @build

data = build()
raise ValueError("boom")  # @raise
"""


def test_script_that_raises_shows_only_the_program(tmp_path):
    """The traceback is printed as python prints it, and what memlens does to
    print it (its runner, the traceback machinery it calls) is not in the
    capture: the top site at the peak is the program's line, and no file of
    the memlens package is named anywhere in the capture."""
    prog = tmp_path / "raises.py"
    prog.write_text(RAISES)
    cap, proc, raw = _run_raw(tmp_path, prog, expect_status=1)
    assert "ValueError: boom" in proc.stderr
    assert _package_dir().encode() not in raw
    proc = memlens("summary", cap, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    top = summary["top_peak"]
    assert (top[0]["file"], top[0]["line"]) == (str(prog), 2)


PROFILED = """\
import memlens

@memlens.profile
def work():
    keep = [bytearray(500) for _ in range(400)]  # @work
    return keep

out = work()  # @call
"""


def test_profile_decorator_frames_and_allocations_left_out(tmp_path):
    """@memlens.profile under memlens run: the decorated function's
    allocations are charged to its line, called from the program's line (the
    wrapper's frame is not in the stack), and nothing of memlens' own code
    (the wrapper, its bookkeeping, the table printed at exit) is in the capture."""
    prog = tmp_path / "profiled.py"
    prog.write_text(PROFILED)
    cap, proc, raw = _run_raw(tmp_path, prog)
    assert _package_dir().encode() not in raw
    rows = [r for r in _report("leaks", cap, "--top", "0") if r["type"] == "bytearray"]
    assert sum(r["count"] for r in rows if r["line"] == 5) == 400
    at = next(r for r in rows if r["line"] == 5)
    # work() called from line 8; 3.10/3.11 run the comprehension in a frame of its own
    inner = [(str(prog), 5)] * (2 if sys.version_info < (3, 12) else 1)
    assert [(f["file"], f["line"]) for f in at["stack"]] == inner + [(str(prog), 8)]


CELL = """\
import json
from IPython.core.interactiveshell import InteractiveShell
import memlens.magics as magics
ip = InteractiveShell.instance()
tl = magics.cell_summary("x = [bytes(10) for _ in range(50)]\\n", ip.user_ns)
print(json.dumps([s["file"] for s in tl["top_sites"]]))
"""


def test_memlens_cell_shows_only_the_cell():
    """%%memlens: the top sites are the cell's; magics.py (compiling the cell,
    running it, stopping the capture) and IPython's frames are not in them."""
    pytest.importorskip("IPython")
    proc = subprocess.run([sys.executable, "-c", CELL], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    files = json.loads(proc.stdout.strip().splitlines()[-1])
    assert files and files[0] == "<memlens-cell>"
    assert not [f for f in files if f.startswith(_package_dir())]
    assert set(files) <= {"<memlens-cell>", ""}

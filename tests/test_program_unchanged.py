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

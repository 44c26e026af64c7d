"""Helpers for integration tests: run programs under `memlens run` and read reports.

Ground truth comes from the test scripts themselves: a line tagged with a
comment `# @name` is found by tag, so assertions name the exact line.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(ROOT, "test-artifacts")


class Script:
    """A test program written to disk, with its tagged lines."""

    def __init__(self, path, source):
        self.path = path
        self.source = source
        self.lines = {}
        for no, text in enumerate(source.splitlines(), 1):
            if "# @" in text:
                self.lines[text.split("# @", 1)[1].strip()] = no

    def line(self, tag):
        return self.lines[tag]


def memlens(*args, input=None, timeout=300, env=None, cwd=None):
    """Run `python -m memlens ARGS` and return the CompletedProcess."""
    e = dict(os.environ)
    e.pop("MEMLENS_DEBUG", None)
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "memlens"] + list(args), capture_output=True,
                          text=True, input=input, timeout=timeout, env=e, cwd=cwd)


@pytest.fixture
def script(tmp_path):
    """script(source, name='prog.py') -> Script written under tmp_path."""

    def make(source, name="prog.py"):
        source = textwrap.dedent(source).lstrip("\n")
        path = tmp_path / name
        path.write_text(source)
        return Script(str(path), source)

    return make


@pytest.fixture
def capture(tmp_path):
    """capture(script, *args, opts=()) -> (capture path, CompletedProcess); asserts it ran."""

    def run(prog, *args, opts=(), expect_status=0):
        out = str(tmp_path / ("cap-%d.mlens" % len(list(tmp_path.glob("cap-*.mlens")))))
        proc = memlens("run", "-q", "-o", out, *opts, prog.path, *args)
        assert proc.returncode == expect_status, proc.stderr
        assert "Traceback" not in proc.stderr or expect_status, proc.stderr
        return out, proc

    return run


ROWS_KEY = {"types": "types", "leaks": "leaks", "lines": "lines"}


def report(name, path, *args):
    """`memlens NAME PATH --json ARGS` parsed; asserts exit status 0.

    Returns the report's rows (types, leaks, lines: the list under their key
    in the JSON envelope), or for the others the object with the capture's
    facts (truncated, warnings, python, argv) at the top, as the Python API
    (memlens.reports) gives them."""
    proc = memlens(name, path, "--json", *args)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    if name in ROWS_KEY:
        return doc[ROWS_KEY[name]]
    capture = doc.pop("capture") or {}
    doc.update({k: v for k, v in capture.items() if k != "path"})
    return doc

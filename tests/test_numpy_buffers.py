"""NumPy array data as its own kind, "numpy.ndarray (data)", placed at the
Python line that made the array (issue 14, capture/numpybuf.c).

Ground truth: arrays of known nbytes made at tagged lines (ones: malloc,
zeros: calloc, resize: realloc, one made in another thread) and kept; one
made and dropped. The leaks report must hold exactly those blocks at
exactly those lines, `types` must count them under the kind, the summary
must name the lines, and the heap census and deep_size must count an
array's owned data."""
import subprocess
import sys

import pytest

from conftest import memlens, report

KIND = "numpy.ndarray (data)"

pytestmark = pytest.mark.skipif(
    subprocess.run([sys.executable, "-c", "import numpy"], capture_output=True).returncode != 0,
    reason="numpy is in the test extras; not installed here")

PROGRAM = """
    import threading
    import numpy as np
    keep = {}
    keep["ones"] = np.ones(1_000_000, dtype=np.float64)  # @ones
    keep["zeros"] = np.zeros((300, 400), dtype=np.int32)  # @zeros
    keep["empty"] = np.empty(70_001, dtype=np.uint8)  # @empty
    r = np.arange(1000, dtype=np.int64)
    r.resize(5000, refcheck=False)  # @resize
    keep["resize"] = r
    def worker():
        keep["thread"] = np.full(123_457, 7, dtype=np.int16)  # @thread
    t = threading.Thread(target=worker)
    t.start(); t.join()
    gone = np.ones(2_000_000, dtype=np.float64)  # @gone
    del gone
"""

EXPECTED = {"ones": 8_000_000, "zeros": 480_000, "empty": 70_001, "resize": 40_000,
            "thread": 246_914}


@pytest.fixture
def captured(script, capture):
    prog = script(PROGRAM)
    path, _ = capture(prog)
    return prog, path


def _program_line(row, prog):
    """The line of the program in a row's stack (np.ones and np.full are
    Python functions of numpy: the innermost frame is theirs)."""
    for f in row["stack"]:
        if f["file"] == prog.path:
            return f["line"]
    return None


def test_leaks_place_array_data_at_the_line_that_made_it(captured):
    prog, path = captured
    rows = [r for r in report("leaks", path, "--top", "0") if r["type"] == KIND]
    by_line = {}
    for r in rows:
        by_line.setdefault(_program_line(r, prog), []).append(r)
    for tag, nbytes in EXPECTED.items():
        got = by_line.get(prog.line(tag), [])
        assert [(r["count"], r["bytes"]) for r in got] == [(1, nbytes)], (tag, got, rows)
    assert prog.line("gone") not in by_line  # made and freed: not alive at the end


def test_types_count_the_kind(captured):
    prog, path = captured
    rows = [r for r in report("types", path, "--top", "0") if r["type"] == KIND]
    assert len(rows) == 1, rows
    row = rows[0]
    # every array's data the program made (numpy's own import made some too)
    assert row["allocated_bytes"] >= sum(EXPECTED.values()) + 16_000_000 + 8000
    assert row["alive_bytes"] >= sum(EXPECTED.values()), row


def test_summary_names_the_line_of_the_peak(captured):
    prog, path = captured
    doc = report("summary", path)
    top = doc["top_peak"][0]
    # the peak is with `gone` alive: np.ones' line, called from `gone`'s, holds the most
    assert top["bytes"] >= 16_000_000 + 8_000_000, top
    ends = {(r["file"], r["line"]): r["bytes"] for r in doc["top_end"]}
    # np.zeros and np.empty are C: the innermost frame is the program's line,
    # which holds the data and the array object
    assert 480_000 <= ends[(prog.path, prog.line("zeros"))] < 480_000 + 1024
    assert 70_001 <= ends[(prog.path, prog.line("empty"))] < 70_001 + 1024


def test_census_and_deep_size_count_owned_data(tmp_path):
    code = """
import numpy as np, memlens
a = np.ones(250_000, dtype=np.float64)          # owns 2,000,000 bytes
v = a[::2]                                      # a view: owns nothing
holder = {"a": a, "v": v}
print(memlens.deep_size(a), memlens.deep_size(v), memlens.deep_size(holder))
snap = memlens.heap()
print(snap.bytes_of("numpy.ndarray"), snap.count_of("numpy.ndarray"))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    (da, dv, dh), (census_bytes, census_count) = [list(map(int, l.split())) for l in out.stdout.split("\n")[:2]]
    assert 2_000_000 <= da < 2_000_000 + 1000
    assert dh >= 2_000_000 and dh < 2_000_000 + 10_000  # the data counted once
    assert census_bytes >= 2_000_000 and census_count >= 2

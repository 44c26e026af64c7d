"""%load_ext memlens in a real IPython shell: %memit and %%memlens.

Each test runs IPython in a fresh interpreter (the tracker is process-wide).
"""
import json
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("IPython")

# 3.10 gives every code object it runs a frame object and keeps it with the
# code for reuse (a "zombie" frame): the statement's code is alive when %memit
# reads the counters, so that frame (about 400 bytes) is in the increment.
FRAME_SLACK = 512 if sys.version_info[:2] == (3, 10) else 0


def run(source):
    proc = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


SHELL = textwrap.dedent('''\
    import json, sys
    from IPython.core.interactiveshell import InteractiveShell
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "memlens")
    ip.user_ns["x"] = None   # the key exists: storing x does not grow the namespace
    bytes(0)                 # 3.10 builds bytes()'s argument parser on first use
''')


def test_memit_known_sizes():
    out = run(SHELL + textwrap.dedent('''\
        keep = ip.run_line_magic("memit", "-o x = bytes(5 << 20)")
        temp = ip.run_line_magic("memit", "-o len(bytes(8 << 20))")
        print("RESULT", json.dumps({"keep": vars(keep), "temp": vars(temp),
                                    "size5": sys.getsizeof(bytes(5 << 20)),
                                    "size8": sys.getsizeof(bytes(8 << 20))}))
    '''))
    data = json.loads(out.split("RESULT ", 1)[1])
    keep, temp = data["keep"], data["temp"]
    # x = bytes(5 MiB): that object is kept, exactly
    assert 0 <= keep["increment"] - data["size5"] <= FRAME_SLACK
    assert keep["peak"] >= data["size5"]
    # allocated and freed within the statement: no increment, a peak of 8 MiB
    assert 0 <= temp["increment"] <= FRAME_SLACK
    assert data["size8"] <= temp["peak"] < data["size8"] + 4096
    assert "peak memory: +5.0 MiB, increment: +5.0 MiB" in out
    assert "peak memory: +8.0 MiB, increment: +" in out


def test_memlens_cell_summary():
    out = run(SHELL + textwrap.dedent('''\
        ip.run_cell_magic("memlens", "", "big = bytes(30 << 20)\\ndel big\\nsmall = [bytes(100) for _ in range(1000)]\\n")
        print("SMALL", len(ip.user_ns["small"]))
    '''))
    assert "Peak of the traced heap during the cell: 30.0 MiB" in out
    assert "Top sites at the peak:" in out and "Top types at the peak:" in out
    site_line = next(l for l in out.splitlines() if "<memlens-cell>" in l)
    assert site_line.split()[0:2] == ["30.0", "MiB"] and "<memlens-cell>:1" in site_line
    types = out.split("Top types at the peak:")[1]
    first_type_row = types.strip().splitlines()[2]
    assert first_type_row.split()[-1] == "bytes"
    assert "SMALL 1000" in out  # the cell ran in the user namespace


def test_memit_after_cell_and_usage():
    out = run(SHELL + textwrap.dedent('''\
        ip.run_cell_magic("memlens", "", "y = bytes(1000)\\n")
        r = ip.run_line_magic("memit", "-o x = bytes(3 << 20)")
        print("RESULT", r.increment, sys.getsizeof(bytes(3 << 20)))
        ip.run_line_magic("memit", "")
    '''))
    inc, size = out.split("RESULT ", 1)[1].split()[:2]
    assert 0 <= int(inc) - int(size) <= FRAME_SLACK
    assert "usage: %memit" in out

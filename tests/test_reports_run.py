"""Smoke test through the real tracker: `memlens run`, then the reports find
the allocations a script makes at known lines."""
import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""\
    class Marker:
        pass

    def make():
        return [Marker() for _ in range(5000)]

    keep = make()
    blob = bytearray(10_000_000)
    temp = bytearray(30_000_000)
    del temp
""")
MAKE_LINE, BLOB_LINE, TEMP_LINE = 5, 8, 9


def memlens(*args, cwd):
    return subprocess.run([sys.executable, "-m", "memlens"] + [str(a) for a in args],
                          capture_output=True, text=True, cwd=cwd)


def test_run_then_reports(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(SCRIPT)
    cap = tmp_path / "prog.mlens"
    r = memlens("run", "-o", cap, script, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # the end-of-run summary: peak (>= the 30 MB temporary), the path
    assert "memlens: peak heap" in r.stderr and str(cap) in r.stderr

    r = memlens("summary", cap, "--json", "--top", "5", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["capture"]["truncated"] is False and d["capture"]["path"] == str(cap)
    assert d["peak_bytes"] >= 40_000_000
    assert d["allocated_bytes"] >= 40_000_000 + 5000 * 16
    at_peak = {(row["file"], row["line"]): row for row in d["top_peak"]}
    assert 30_000_000 <= at_peak[(str(script), TEMP_LINE)]["bytes"] < 30_001_000
    assert 10_000_000 <= at_peak[(str(script), BLOB_LINE)]["bytes"] < 10_001_000
    at_end = {(row["file"], row["line"]): row for row in d["top_end"]}
    assert (str(script), TEMP_LINE) not in at_end
    assert 10_000_000 <= at_end[(str(script), BLOB_LINE)]["bytes"] < 10_001_000
    # before 3.12 a list comprehension is a function of its own
    make = at_end[(str(script), MAKE_LINE)]
    assert make["function"] in ("make", "<listcomp>", "make.<locals>.<listcomp>")
    assert {"function": "<module>", "file": str(script), "line": 7} in make["stack"]

    r = memlens("types", cap, "--json", "--top", "0", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    marker = [row for row in json.loads(r.stdout)["types"] if row["type"].endswith("Marker")]
    assert len(marker) == 1
    assert marker[0]["allocs"] == 5000 and marker[0]["alive"] == 5000 and marker[0]["frees"] == 0

    r = memlens("leaks", cap, "--json", "--top", "0", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    leaks = json.loads(r.stdout)["leaks"]
    mk = [row for row in leaks if row["type"].endswith("Marker")]
    assert [(row["line"], row["count"]) for row in mk] == [(MAKE_LINE, 5000)]

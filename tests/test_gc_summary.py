"""The collector in `summary` and `timeline` (docs/GC.md, docs/REPORTS.md):
summary's heap-at-the-end line says how much of it was unreachable garbage
at exit (`garbage_at_exit`, the same totals as `leaks`), and `timeline
--json` lists the collections.

Ground truth: a program that turns the collector off, runs exactly three
collections (generations 0, 1, 2) whose return values it prints, and ends
with 40 self-referencing Node dropped (garbage at exit)."""
import json
import os

from conftest import memlens, report

PROG = """
    import gc
    gc.disable()


    class Node:
        def __init__(self):
            self.me = self


    for i in range(10):
        Node()
    got = [gc.collect(0), gc.collect(1), gc.collect(2)]
    for i in range(40):
        Node()  # @garbage
    print(got)
"""


def test_summary_says_garbage_at_exit(script, capture):
    prog = script(PROG)
    path, _ = capture(prog, opts=("--exact",))
    doc = json.loads(memlens("summary", path, "--json").stdout)
    leaks = json.loads(memlens("leaks", path, "--json", "--top", "0").stdout)
    g = doc["garbage_at_exit"]
    assert g == leaks["garbage_at_exit"]
    # the 40 nodes (and what only they hold) are garbage, no more than the heap
    nodes = [r for r in leaks["leaks"] if r["type"] == "__main__.Node" and r["line"] == prog.line("garbage")]
    assert len(nodes) == 1 and nodes[0]["garbage_blocks"] == 40
    assert 40 <= g["blocks"] <= doc["end_count"] and g["bytes"] <= doc["end_bytes"]
    text = memlens("summary", path).stdout
    line = [ln for ln in text.splitlines() if "heap at the end" in ln]
    assert len(line) == 1 and "unreachable garbage at exit" in line[0]
    assert "{:,}".format(g["blocks"]) in line[0] or str(g["blocks"]) in line[0]


def test_summary_without_garbage_record(script, capture):
    prog = script(PROG)
    path, _ = capture(prog, opts=("--no-gc-at-exit",))
    doc = json.loads(memlens("summary", path, "--json").stdout)
    assert doc["garbage_at_exit"] is None
    assert "garbage at exit" not in memlens("summary", path).stdout


def test_timeline_json_lists_the_collections(script, capture):
    prog = script(PROG)
    path, proc = capture(prog)
    collected = json.loads(proc.stdout)
    doc = report("timeline", path)
    cols = doc["collections"]
    assert [c["generation"] for c in cols] == [0, 1, 2]
    assert [c["collected"] for c in cols] == collected
    assert all(c["complete"] and c["pause_s"] >= 0 and c["uncollectable"] == 0 for c in cols)
    times = [c["time_s"] for c in cols]
    assert times == sorted(times) and 0 <= times[0] and times[-1] <= doc["duration_s"]
    assert doc["collections_dropped"] == 0
    # the same marks as the plot's JSON
    svg = os.path.join(os.path.dirname(path), "plot.svg")
    assert json.loads(memlens("plot", path, "-o", svg, "--json").stdout)["collections"] == cols

"""How fast the call tree is built, against the summary on the same capture.

    python bench/bench_calltree.py [--events N] [--runs K] [--keep DIR]

Writes the synthetic capture of bench/bench_reader.py (bench/synthetic.c: N
events, default 20 million, four threads, hot and cold stacks) and times K
runs (default 5) of memlens._engine.read_summary and of read_calltree for
the views `memlens tree` and the flame graph read (peak; end; allocated;
temporary; all four in one pass). Prints the median wall and CPU seconds and
the ratio to the summary (the target: the same order of time), and the
size of the tree's JSON (what a flame graph page would embed).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_reader import build  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", metavar="DIR", help="keep the capture in DIR (reused if present)")
    args = ap.parse_args()
    from memlens import _engine

    workdir = args.keep or tempfile.mkdtemp(prefix="memlens-bench-")
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "synthetic-%d.mlens" % args.events)
    if not os.path.exists(path):
        exe = build(workdir)
        subprocess.check_call([exe, "gen", path, str(args.events)])
    cases = [
        ("summary", lambda: _engine.read_summary(path, top=10)),
        ("calltree peak", lambda: _engine.read_calltree(path, "peak")),
        ("calltree end", lambda: _engine.read_calltree(path, "end")),
        ("calltree allocated", lambda: _engine.read_calltree(path, "allocated")),
        ("calltree temporary", lambda: _engine.read_calltree(path, "temporary")),
        ("calltree 4 views", lambda: _engine.read_calltree(
            path, ("peak", "end", "allocated", "temporary"))),
    ]
    tree = _engine.read_calltree(path, ("peak", "end", "allocated", "temporary"))
    print("capture: %d events, %.1f MB; Python %s; %d runs each; tree: %d nodes, %d frames, "
          "JSON of 4 views %.2f MB" % (
              tree["events"], os.path.getsize(path) / 1e6, sys.version.split()[0], args.runs,
              len(tree["nodes"]["parent"]), len(tree["frames"]["line"]),
              len(json.dumps(tree, separators=(",", ":"))) / 1e6))
    base = None
    for name, fn in cases:
        wall, cpu = [], []
        for _ in range(args.runs):
            c, t = time.process_time(), time.perf_counter()
            fn()
            wall.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        w, c = statistics.median(wall), statistics.median(cpu)
        if base is None:
            base = c
        print("%-20s wall %6.2f s (%.2f-%.2f)  cpu %6.2f s  cpu ratio to summary %.2f" % (
            name, w, min(wall), max(wall), c, c / base))


if __name__ == "__main__":
    main()

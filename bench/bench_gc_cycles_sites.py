"""Cost of memlens.cycles() with the allocation lines (under `memlens run`).

A program makes a capture of about --events million events (one-item lists
of a fresh int made and dropped: two allocations and two frees each), then --cycles self-referencing objects dropped with the
collector off, and times memlens.cycles() --reps times: under `memlens run`
(the lines: the seqs from the block map, a flush, one pass over the capture
written so far) and under plain python (the same call without lines). The
difference of the medians is what the lines cost on a capture that size.
The garbage is made last, so the pass reads the whole capture (the worst
case: it stops at the last seq it needs).

  pip install . && python bench/bench_gc_cycles_sites.py [--events 10] [--cycles 10000] [--reps 5]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

PROG = """\
import gc, json, sys, time
import memlens
events, ncycles, reps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
class Node:
    def __init__(self):
        self.me = self
for i in range(1000, 1000 + events // 4):  # a list and an int: 2 ALLOCs, 2 FREEs
    x = [i]
gc.disable()
for i in range(ncycles):
    Node()
times = []
for _ in range(reps):
    t = time.perf_counter()
    c = memlens.cycles()
    times.append(time.perf_counter() - t)
g = [g for g in c if g.count("__main__.Node")][0]
print(json.dumps({"times": times, "lines": c.lines, "objects": c.objects,
                  "sites": sum(s["count"] for s in g.sites)}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=float, default=10, help="millions of events before the garbage")
    ap.add_argument("--cycles", type=int, default=10000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    n = int(args.events * 1e6)
    with tempfile.TemporaryDirectory() as d:
        prog = os.path.join(d, "prog.py")
        with open(prog, "w") as f:
            f.write(PROG)
        cap = os.path.join(d, "c.mlens")
        argv = [prog, str(n), str(args.cycles), str(args.reps)]
        under = json.loads(subprocess.run([sys.executable, "-m", "memlens", "run", "-q", "-o", cap] + argv,
                                          check=True, capture_output=True, text=True).stdout)
        plain = json.loads(subprocess.run([sys.executable] + argv, check=True, capture_output=True,
                                          text=True).stdout)
        summ = json.loads(subprocess.run([sys.executable, "-m", "memlens", "summary", "--json", "--top", "1",
                                          cap], check=True, capture_output=True, text=True).stdout)
        size = os.path.getsize(cap)
    m_under, m_plain = statistics.median(under["times"]), statistics.median(plain["times"])
    print("python %s; capture: %d allocations + %d frees (%.1f MB compressed); garbage: %d objects"
          % (sys.version.split()[0], summ["allocations"], summ["frees"], size / 1e6, under["objects"]))
    print("cycles() under memlens run (with lines): median %.3f s  %s"
          % (m_under, " ".join("%.3f" % t for t in under["times"])))
    print("cycles() under plain python (no lines):  median %.3f s  %s"
          % (m_plain, " ".join("%.3f" % t for t in plain["times"])))
    print("the lines cost %.3f s (lines found for %d of the %d Node)"
          % (m_under - m_plain, under["sites"], args.cycles))
    print("load average: %s" % " ".join("%.2f" % x for x in os.getloadavg()))


if __name__ == "__main__":
    main()

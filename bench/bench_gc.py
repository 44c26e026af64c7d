"""Cost of recording the garbage collector's collections under `memlens run`.

A GC-heavy workload (it makes many small reference cycles, so the collector
runs thousands of collections and frees most of the memory) runs under
`memlens run` (default mode: free lists on) with collections recorded (the
default) and without (MEMLENS_NO_GC_RECORD=1: the recorders are made, as in
every run, but not put into gc.callbacks), in alternation (either first, by
turns), several repetitions each; prints the median wall times, their
ratio (the recording's cost; target <= 1.02), the same for the CPU time of
the runs (steadier on a loaded machine) and for the CPU time of the
program's thread alone (the wall time follows it: the tracker's consumer
thread runs on another core), the median of the pairs' ratios with a
bootstrap interval, the load average, and how many collections the capture
holds. Also times `memlens gc` on the capture.

  pip install . && python bench/bench_gc.py [--reps 7] [--n 300000] [--layouts 5]
  python bench/bench_gc.py --in-process 5000 --n 2000000 --reps 5

Last, the fixed cost of recording one collection: gc.collect(0) of an empty
youngest generation, 100,000 times, recorded and not (the program thread's
CPU per collection).
"""
import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time

# one reference cycle per pair() call (the text of both cycle workloads)
CYCLE = """\
class Node:
    __slots__ = ("other", "payload", "__weakref__")
    def __init__(self):
        self.other = None
        self.payload = None
def pair():
    a, b = Node(), Node()
    a.other, b.other = b, a
    a.payload = [1, 2, 3]
"""

WORKLOAD = "import sys, time\n" + CYCLE + """\
n = int(sys.argv[1])
for i in range(n):
    pair()
# the CPU time of the program's thread (what the wall time follows: the
# tracker's consumer thread runs beside it on another core)
sys.stderr.write("main-thread-cpu %.6f\\n" % time.thread_time())
"""

# Collections that do more each: trees of 156 nodes (instances with a
# __dict__, a list of children, a back reference to the parent), one in 50
# kept, so the older generations grow and their collections walk them.
TREES = """\
import sys, time
class Node:
    def __init__(self, parent):
        self.parent = parent
        self.children = []
        if parent is not None:
            parent.children.append(self)
def tree(depth, fan):
    root = Node(None)
    level = [root]
    for _ in range(depth):
        level = [Node(p) for p in level for _ in range(fan)]
    return root
n = int(sys.argv[1])
keep = []
for i in range(n):
    t = tree(3, 5)
    if i % 50 == 0:
        keep.append(t)
sys.stderr.write("main-thread-cpu %.6f\\n" % time.thread_time())
"""

# The recording switched on and off inside one run (--in-process): the
# program takes the recorders out of gc.callbacks and puts them back every
# `chunk` cycles, and sums its thread's CPU time in each state, so both
# states share one process and one layout of its objects.
TOGGLE = "import gc, sys, time\n" + CYCLE + """\
n, chunk = int(sys.argv[1]), int(sys.argv[2])
recorders = list(gc.callbacks)
spent = [0.0, 0.0]
for k in range(n // chunk):
    gc.callbacks[:] = recorders if k % 2 else []
    t = time.thread_time()
    for i in range(chunk):
        pair()
    spent[k % 2] += time.thread_time() - t
gc.callbacks[:] = recorders
sys.stderr.write("in-process %.6f %.6f %d\\n" % (spent[1], spent[0], len(recorders)))
"""

# The fixed cost of recording one collection: collections of an empty
# youngest generation, so nothing else happens in them (no frees).
EMPTY = """\
import gc, sys, time
n = int(sys.argv[1])
t = time.thread_time()
for i in range(n):
    gc.collect(0)
sys.stderr.write("per-collection %.9f\\n" % ((time.thread_time() - t) / n))
"""

ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_once(script, n, cap, record):
    env = dict(ENV)
    if not record:
        env["MEMLENS_NO_GC_RECORD"] = "1"
    if os.path.exists(cap):
        os.unlink(cap)
    t = time.perf_counter()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    err = subprocess.run([sys.executable, "-m", "memlens", "run", "-q", "-o", cap, script, str(n)],
                         check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True).stderr
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    main = [float(x.split()[1]) for x in err.splitlines() if x.startswith("main-thread-cpu ")]
    return time.perf_counter() - t, cpu, main[-1]


EMPTY_N = 100000


def fixed_cost(d, reps):
    """Median microseconds per gc.collect(0) recorded and not, and their difference."""
    script = os.path.join(d, "gc_empty.py")
    with open(script, "w") as f:
        f.write(EMPTY)
    cap = os.path.join(d, "e.mlens")
    per = {False: [], True: []}
    for _ in range(reps):
        for record in (False, True):
            env = dict(ENV)
            if not record:
                env["MEMLENS_NO_GC_RECORD"] = "1"
            err = subprocess.run([sys.executable, "-m", "memlens", "run", "-q", "-f", "-o", cap, script,
                                  str(EMPTY_N)], check=True, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, text=True).stderr
            per[record].append(float([x for x in err.splitlines() if x.startswith("per-collection ")][-1]
                                     .split()[1]) * 1e6)
    on, off = statistics.median(per[True]), statistics.median(per[False])
    return on, off, on - off


def in_process(d, n, chunk, reps):
    """Per run, the program thread's CPU time with the recorders in
    gc.callbacks over the time without them (TOGGLE)."""
    script = os.path.join(d, "gc_toggle.py")
    with open(script, "w") as f:
        f.write(TOGGLE)
    ratios = []
    for _ in range(reps):
        err = subprocess.run([sys.executable, "-m", "memlens", "run", "-q", "-f", "-o", os.path.join(d, "t.mlens"),
                              script, str(n), str(chunk)], check=True, env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True).stderr
        on, off, nrec = [x for x in err.splitlines() if x.startswith("in-process ")][-1].split()[1:]
        if int(nrec) == 0:
            sys.exit("bench_gc: no recorder in gc.callbacks (MEMLENS_NO_GC_RECORD set?)")
        ratios.append(float(on) / float(off))
    return ratios


def paired(on, off, seed=1):
    """The median of the runs' pair ratios (each recorded run over the
    unrecorded run beside it, so a moment of load hits both) and its 95%
    bootstrap interval (2,000 resamples, fixed seed: the same runs give the
    same interval)."""
    ratios = [a / b for a, b in zip(on, off)]
    rng = random.Random(seed)
    boots = sorted(statistics.median(rng.choices(ratios, k=len(ratios))) for _ in range(2000))
    return statistics.median(ratios), boots[50], boots[1949]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--n", type=int, default=300000,
                    help="cycles the workload makes (--workload trees: trees, 156 nodes each)")
    ap.add_argument("--workload", choices=("cycles", "trees"), default="cycles",
                    help="cycles (default): two-object cycles, ~3,800 short collections per "
                         "million; trees: trees with parent links, one in 50 kept")
    ap.add_argument("--layouts", type=int, default=1,
                    help="run the workload from this many script paths of different lengths, "
                         "--reps times each, and pool the runs (the ratio depends on where the "
                         "interpreter's early objects land: 1.007-1.055 on 3.12 by path alone)")
    ap.add_argument("--in-process", type=int, metavar="CHUNK", default=0,
                    help="instead: one run per repetition that switches the recording on and off "
                         "every CHUNK cycles (e.g. 5000) and compares the two states' CPU time")
    args = ap.parse_args()
    if args.in_process:
        with tempfile.TemporaryDirectory() as d:
            r = in_process(d, args.n, args.in_process, args.reps)
        print("in-process (python %s, %d cycles, switched every %d): recorded / not recorded per run %s; "
              "median %.4f" % (sys.version.split()[0], args.n, args.in_process, " ".join("%.4f" % x for x in r),
                               statistics.median(r)))
        return
    with tempfile.TemporaryDirectory() as d:
        scripts = []
        for k in range(max(1, args.layouts)):
            sub = os.path.join(d, "p" * (1 + 5 * k))
            os.makedirs(sub)
            scripts.append(os.path.join(sub, "gc_heavy.py"))
            with open(scripts[-1], "w") as f:
                f.write(TREES if args.workload == "trees" else WORKLOAD)
        # the last recorded run's capture is read below; names of one length
        # (the argv strings are the program's first objects' neighbours)
        cap, cap_off = os.path.join(d, "on.mlens"), os.path.join(d, "of.mlens")
        on, off, on_cpu, off_cpu, on_main, off_main = [], [], [], [], [], []
        per_layout = []
        for script in scripts:
            first = len(on_main)
            for rep in range(args.reps):  # alternate, so drift hits both alike; either goes first
                for record in ((False, True) if rep % 2 == 0 else (True, False)):
                    w, c, m = run_once(script, args.n, cap if record else cap_off, record)
                    (on if record else off).append(w)
                    (on_cpu if record else off_cpu).append(c)
                    (on_main if record else off_main).append(m)
            per_layout.append(statistics.median(on_main[first:]) / statistics.median(off_main[first:]))
        empty = fixed_cost(d, args.reps)
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "memlens", "gc", "--json", cap], check=True,
                             capture_output=True, text=True, env=ENV).stdout
        t_report = time.perf_counter() - t
        doc = json.loads(out)
    m_on, m_off = statistics.median(on), statistics.median(off)
    print("workload: %d %s (python %s), %d repetitions each, from %d script path(s)"
          % (args.n, "trees of 156 nodes" if args.workload == "trees" else "reference cycles",
             sys.version.split()[0], args.reps, len(scripts)))
    if len(scripts) > 1:
        print("program thread ratio per script path: %s" % " ".join("%.3f" % x for x in per_layout))
    print("memlens run, collections not recorded: median %.3f s  %s"
          % (m_off, " ".join("%.3f" % x for x in off)))
    print("memlens run, collections recorded:     median %.3f s  %s"
          % (m_on, " ".join("%.3f" % x for x in on)))
    print("ratio recorded / not recorded: %.4f wall (target <= 1.02)" % (m_on / m_off))
    c_on, c_off = statistics.median(on_cpu), statistics.median(off_cpu)
    print("CPU time (user + sys of the run): median %.3f s not recorded, %.3f s recorded: ratio %.4f"
          % (c_off, c_on, c_on / c_off))
    m_on, m_off = statistics.median(on_main), statistics.median(off_main)
    print("CPU time of the program's thread: median %.3f s not recorded, %.3f s recorded: ratio %.4f"
          " (%.2f us per collection)" % (m_off, m_on, m_on / m_off, (m_on - m_off) * 1e6 / max(1, doc["collections"])))
    print("program thread, median of the %d pair ratios: %.4f (95%% bootstrap interval %.4f-%.4f)"
          % ((len(on_main),) + paired(on_main, off_main)))
    print("load average: %s" % " ".join("%.2f" % x for x in os.getloadavg()))
    print("fixed cost per collection (gc.collect(0) of an empty generation, %d each, median of %d): %.2f us "
          "recorded, %.2f us not: %.2f us for the recording" % ((EMPTY_N, args.reps) + empty))
    print("collections in the capture: %d (pauses %d, total %.3f s); `memlens gc`: %.3f s"
          % (doc["collections"], doc["pauses"]["count"], doc["pauses"]["total_s"], t_report))


if __name__ == "__main__":
    main()

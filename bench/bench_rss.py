"""Cost of the NumPy data hook and of the RSS breakdown samples (issue 14).

  python bench/bench_rss.py [--reps 5]

Three runs of each workload, `--reps` times each, median wall time:
  untracked   python WORKLOAD
  memlens     python -m memlens run -q WORKLOAD           (hook and samples on)
  A/B         the same with MEMLENS_NO_NUMPY_HOOK=1 (numpy workload) or
              MEMLENS_RSS_EVERY=0 (no RSS samples; the other workload)
and the cost of one breakdown measured in-process (memlens.rss(): smaps
parse, mincore of the arenas, pymalloc's statistics, mallinfo2).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

NUMPY = """
import numpy as np
keep = []
for i in range(200_000):
    a = np.empty(64)          # one data block each: the hook runs per array
    b = a + 1.0
    if i % 1000 == 0:
        keep.append(np.ones(100_000))
"""

OBJECTS = """
keep = []
for i in range(400_000):
    keep.append((str(i), [i, i + 1], {"k": i}))
    if len(keep) > 50_000:
        del keep[:25_000]
"""


def timed(argv, env):
    t = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def median_run(argv, reps, extra_env=None):
    env = dict(os.environ, **(extra_env or {}))
    return statistics.median(timed(argv, env) for _ in range(reps))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "cap.mlens")
        for name, src, knob in (("numpy arrays", NUMPY, {"MEMLENS_NO_NUMPY_HOOK": "1"}),
                                ("small objects", OBJECTS, {"MEMLENS_RSS_EVERY": "0"})):
            prog = os.path.join(d, "w.py")
            with open(prog, "w") as f:
                f.write(src)
            run = [py, "-m", "memlens", "run", "-q", "-f", "-o", out, prog]
            base = median_run([py, prog], args.reps)
            on = median_run(run, args.reps)
            off = median_run(run, args.reps, knob)
            k = ", ".join("%s=%s" % kv for kv in knob.items())
            print("%-14s untracked %.3f s  memlens %.3f s (x%.2f)  with %s %.3f s (x%.2f)  "
                  "on/off x%.3f" % (name, base, on, on / base, k, off, off / base, on / off))
    import memlens
    memlens.rss()
    n = 50
    t = time.perf_counter()
    for _ in range(n):
        memlens.rss()
    per = (time.perf_counter() - t) / n
    print("one breakdown (memlens.rss()) in this process: %.2f ms; at the default 100 ms "
          "interval: %.1f%% of a core" % (per * 1e3, per / 0.1 * 100))


if __name__ == "__main__":
    main()

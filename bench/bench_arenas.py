"""Cost of "arenas kept by few objects" (issue 14): the ARENA/ARENA_BLOCKS
records written when a capture stops, and reading them.

  python bench/bench_arenas.py [--reps 3] [--n 2000000]

Workload: N small instances made, one in 1,000 kept (about N / 22,000
mostly-empty arenas of 1 MiB; plus a full heap of N / 10 kept instances).
CPU times (user + sys of the child), median of --reps:
  capture     python -m memlens run -q WORKLOAD, and the same with
              MEMLENS_RSS_EVERY=0 (no RSS samples and no arena records)
  read        memlens summary CAPTURE (one pass) against memlens rss CAPTURE
              (one pass with the arena groups)
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile

WORKLOAD = """
class Pin:
    __slots__ = ("i",)
objs = [Pin() for _ in range({n})]
keep = objs[::1000]
full = [Pin() for _ in range({n} // 10)]
del objs
"""


def cpu(argv, env):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def median(argv, reps, extra=None):
    env = dict(os.environ, **(extra or {}))
    return statistics.median(cpu(argv, env) for _ in range(reps))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n", type=int, default=2_000_000)
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as d:
        prog = os.path.join(d, "w.py")
        with open(prog, "w") as f:
            f.write(WORKLOAD.format(n=args.n))
        out = os.path.join(d, "cap.mlens")
        run = [py, "-m", "memlens", "run", "-q", "-f", "-o", out, prog]
        off = median(run, args.reps, {"MEMLENS_RSS_EVERY": "0"})
        on = median(run, args.reps)
        print("capture  %d objects: no arena records %.3f s CPU, with them %.3f s (x%.3f)"
              % (args.n, off, on, on / off))
        summ = median([py, "-m", "memlens", "summary", out], args.reps)
        rss = median([py, "-m", "memlens", "rss", out], args.reps)
        arenas = subprocess.run([py, "-m", "memlens", "rss", "--json", out], capture_output=True,
                                text=True, check=True).stdout
        import json
        a = json.loads(arenas)["arenas"]
        print("read     summary %.3f s CPU, rss %.3f s (x%.2f); %d arenas, %d mostly empty, "
              "%d blocks in them" % (summ, rss, rss / summ, a["arenas"], a["mostly_empty"]["arenas"],
                                     a["mostly_empty"]["blocks"]))


if __name__ == "__main__":
    main()

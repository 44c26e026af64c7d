"""What memlens run's default pass at exit (the buffers named by their
owners) adds to the capture benchmark's bundled workloads.

Runs each workload plain, under `memlens run -q -f -o X` (the default) and
with `--no-heap-at-exit`, interleaved, REPS times; prints the wall-time
medians, the ratios to the plain run and the difference the pass makes.

    pip install . && python bench/ab_exit.py [REPS]
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = [("json_cargo", [os.path.join(HERE, "workloads", "json_cargo.py"), "20"]),
             ("small_objects", [os.path.join(HERE, "workloads", "small_objects.py"), "5"])]


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    py = sys.executable
    with tempfile.TemporaryDirectory() as d:
        cap = os.path.join(d, "c.mlens")
        run = [py, "-m", "memlens", "run", "-q", "-f", "-o", cap]
        for name, w in WORKLOADS:
            t = {"plain": [], "default": [], "noexit": []}
            for _ in range(reps):
                for k, cmd in (("plain", [py] + w), ("default", run + w),
                               ("noexit", run + ["--no-heap-at-exit"] + w)):
                    s = time.perf_counter()
                    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
                    t[k].append(time.perf_counter() - s)
            m = {k: statistics.median(v) for k, v in t.items()}
            print("%s: plain %.3f s, memlens run %.3f s (%.2fx), with --no-heap-at-exit %.3f s (%.2fx); "
                  "the pass %+.3f s" % (name, m["plain"], m["default"], m["default"] / m["plain"], m["noexit"],
                                         m["noexit"] / m["plain"], m["default"] - m["noexit"]))


if __name__ == "__main__":
    main()

"""Cost of memlens run's heap at exit, per million live objects.

Runs a program that keeps N live objects (N/2 instances of a class in a
module-level list, each with an int attribute) under `memlens run`, with
the heap at exit (the default; --heap-at-exit is passed for older engines)
and with --no-heap-at-exit, REPEAT times each; prints the median of the
snapshot's own duration (wall, from the capture) per million objects
walked, the median extra CPU time (user + sys of the run with it minus the
run without, per million objects walked: the figure that holds on a
loaded machine) and the median wall-time ratio of the two runs.

    python bench/bench_atexit.py [N] [REPEAT]
"""
import json
import resource
import os
import statistics
import subprocess
import sys
import tempfile
import time

PROG = """
class Item:
    __slots__ = ("v",)
    def __init__(self, v):
        self.v = v
KEEP = [Item(i + 1000) for i in range(%d)]
"""


def _cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(prog, out, extra):
    t0, c0 = time.perf_counter(), _cpu()
    subprocess.run([sys.executable, "-m", "memlens", "run", "-q", "-f", "-o", out] + extra + [prog],
                   check=True)
    return time.perf_counter() - t0, _cpu() - c0


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with tempfile.TemporaryDirectory() as d:
        prog = os.path.join(d, "prog.py")
        with open(prog, "w") as f:
            f.write(PROG % (n // 2))
        out = os.path.join(d, "c.mlens")
        per_m, cpu_m, ratios = [], [], []
        for _ in range(repeat):
            off, off_cpu = run(prog, out, ["--no-heap-at-exit"])
            on, on_cpu = run(prog, out, ["--heap-at-exit"])
            doc = json.loads(subprocess.run([sys.executable, "-m", "memlens", "leaks", out, "--json"],
                                            capture_output=True, text=True, check=True).stdout)
            h = doc["heap_at_exit"]
            per_m.append(h["duration_us"] / 1e6 / (h["objects"] / 1e6))
            cpu_m.append((on_cpu - off_cpu) / (h["objects"] / 1e6))
            ratios.append(on / off)
            print("objects walked %d, snapshot %.3f s wall, extra CPU %.3f s, wall on %.2f s / off %.2f s"
                  % (h["objects"], h["duration_us"] / 1e6, on_cpu - off_cpu, on, off), file=sys.stderr)
        print("heap at exit: %.3f s wall, %.3f s CPU per million objects walked (medians of %d); "
              "wall ratio on/off %.2fx" % (statistics.median(per_m), statistics.median(cpu_m), repeat,
                                           statistics.median(ratios)))


if __name__ == "__main__":
    main()

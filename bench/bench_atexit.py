"""Cost of memlens run's heap at exit, per million live objects.

Runs a program that keeps about N live objects under `memlens run`, with
the pass at exit and with --no-heap-at-exit, REPEAT times each; prints the
median of the pass's own duration (wall, from the capture) per million
objects walked, the median extra CPU time (user + sys of the run with it
minus the run without, per million objects walked: the figure that holds
on a loaded machine) and the median wall-time ratio of the two runs.

    python bench/bench_atexit.py [N] [REPEAT] [--heap slots|attrs|scattered] [--pass full|owners]

The passes (--pass, default full):
  full    --heap-at-exit: the reference graph, owners, holders, retained sizes;
  owners  the default of `memlens run`: one walk, the buffers named by owner.

The heaps (--heap, default slots):
  slots      N/2 `__slots__` instances in a module-level list, each with an int
             (no attribute tables: the cheapest heap per object);
  attrs      N/4 instances with three attributes (a str, an int, a one-item
             list), made in a row: attribute values (3.11+) or dicts (3.10),
             the list's item array: buffers with owners;
  scattered  the same instances, but 9 of every 10 made are dropped again
             (bench/workloads/small_objects.py's pattern): the survivors lie
             spread over ten times the memory, as in a program that ran a while.
"""
import json
import resource
import os
import statistics
import subprocess
import sys
import tempfile
import time

HEAPS = {
    "slots": ("""
class Item:
    __slots__ = ("v",)
    def __init__(self, v):
        self.v = v
KEEP = [Item(i + 1000) for i in range(%d)]
""", 2),
    "attrs": ("""
class Lesson:
    def __init__(self, i):
        self.title = "lesson %%d" %% i
        self.index = i + 1000
        self.tags = [i %% 7]
KEEP = [Lesson(i) for i in range(%d)]
""", 4),
    "scattered": ("""
import gc
gc.disable()  # the batches die by reference counting; this keeps the run short
class Lesson:
    def __init__(self, i):
        self.title = "lesson %%d" %% i
        self.index = i + 1000
        self.tags = [i %% 7]
KEEP = []
for r in range(max(1, %d // 10000)):
    batch = [Lesson(r * 100000 + i) for i in range(100000)]
    KEEP.extend(batch[::10])
""", 4),
}


def _cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(prog, out, extra):
    t0, c0 = time.perf_counter(), _cpu()
    subprocess.run([sys.executable, "-m", "memlens", "run", "-q", "-f", "-o", out] + extra + [prog],
                   check=True)
    return time.perf_counter() - t0, _cpu() - c0


def main():
    args = sys.argv[1:]
    heap = "slots"
    if "--heap" in args:
        i = args.index("--heap")
        heap = args[i + 1] if i + 1 < len(args) else ""
        del args[i:i + 2]
    if heap not in HEAPS:
        sys.exit("bench_atexit: --heap must be one of %s" % ", ".join(HEAPS))
    mode = "full"
    if "--pass" in args:
        i = args.index("--pass")
        mode = args[i + 1] if i + 1 < len(args) else ""
        del args[i:i + 2]
    if mode not in ("full", "owners"):
        sys.exit("bench_atexit: --pass must be full or owners")
    n = int(args[0]) if args else 1000000
    repeat = int(args[1]) if len(args) > 1 else 3
    with tempfile.TemporaryDirectory() as d:
        prog = os.path.join(d, "prog.py")
        text, per = HEAPS[heap]
        with open(prog, "w") as f:
            f.write(text % (n // per))
        out = os.path.join(d, "c.mlens")
        per_m, cpu_m, ratios = [], [], []
        for _ in range(repeat):
            off, off_cpu = run(prog, out, ["--no-heap-at-exit"])
            on, on_cpu = run(prog, out, ["--heap-at-exit"] if mode == "full" else [])
            doc = json.loads(subprocess.run([sys.executable, "-m", "memlens", "leaks", out, "--json"],
                                            capture_output=True, text=True, check=True).stdout)
            h = doc["heap_at_exit"] if mode == "full" else doc["owners_at_exit"]
            per_m.append(h["duration_us"] / 1e6 / (h["objects"] / 1e6))
            cpu_m.append((on_cpu - off_cpu) / (h["objects"] / 1e6))
            ratios.append(on / off)
            print("objects walked %d, snapshot %.3f s wall, extra CPU %.3f s, wall on %.2f s / off %.2f s"
                  % (h["objects"], h["duration_us"] / 1e6, on_cpu - off_cpu, on, off), file=sys.stderr)
        print("%s at exit (%s heap, python %s): %.3f s wall, %.3f s CPU per million objects walked "
              "(medians of %d); wall ratio on/off %.2fx"
              % ("heap" if mode == "full" else "owners", heap, sys.version.split()[0],
                 statistics.median(per_m), statistics.median(cpu_m), repeat, statistics.median(ratios)))


if __name__ == "__main__":
    main()

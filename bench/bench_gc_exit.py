"""Cost of the garbage-at-exit pass that every `memlens run` makes (docs/GC.md
"Garbage at exit"), per million objects the collector tracks.

A program under `memlens run` keeps N live instances (each in a list at
module level, with a str and an int attribute; a tenth of them are
self-referencing garbage left with gc.disable()), then calls the pass once
more itself (`_engine.gc_at_exit()`, the call `memlens run` makes when the
program ends) and prints its duration and the number of tracked objects
(`len(gc.get_objects())`). Median of REPEAT runs.

    python bench/bench_gc_exit.py [N] [REPEAT]
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile

PROG = """
import gc, json
gc.disable()
class Item:
    def __init__(self, v):
        self.v = v
        self.name = "item"
        if v %% 10 == 0:
            self.me = self
KEEP = [Item(i) for i in range(%d)]
for i in range(0, len(KEEP), 10):
    KEEP[i] = None  # garbage: a self-referencing Item
tracked = len(gc.get_objects())
from memlens import _engine
r = _engine.gc_at_exit()
print(json.dumps({"tracked": tracked, "garbage_objects": r["objects"], "blocks": r["blocks"],
                  "s": r["duration_us"] / 1e6}))
"""


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with tempfile.TemporaryDirectory() as d:
        prog = os.path.join(d, "prog.py")
        with open(prog, "w") as f:
            f.write(PROG % n)
        out = os.path.join(d, "c.mlens")
        per_m = []
        for _ in range(repeat):
            p = subprocess.run([sys.executable, "-m", "memlens", "run", "-q", "-f", "-o", out, prog],
                               check=True, capture_output=True, text=True)
            r = json.loads(p.stdout)
            per_m.append(r["s"] / (r["tracked"] / 1e6))
            print("tracked %d, garbage objects %d (%d blocks), pass %.3f s"
                  % (r["tracked"], r["garbage_objects"], r["blocks"], r["s"]), file=sys.stderr)
        print("garbage at exit: %.3f s per million tracked objects (median of %d)"
              % (statistics.median(per_m), repeat))


if __name__ == "__main__":
    main()

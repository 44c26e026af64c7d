"""Benchmark the reference graph (memlens.why, retained sizes, .heapsnapshot)
against objgraph, guppy3 and pympler on one heap.

    python bench/bench_graph.py [--objects 1000000] [--runs 5] [--peers]

Builds a heap of about --objects live objects (seed 001's cargo records,
as bench_heap.py), then times the median of --runs runs of:
  - retained sizes: memlens.retained_size(x) (graph + roots + dominator
    tree of the whole heap) and heap(retained=True)'s extra work, with and
    without the class leak suspects
  - memlens.why(x) of one record deep in the data
  - memlens.heap().save("x.heapsnapshot") (written to a temporary folder)
and reports the graph's memory per object. --peers also times, once (they
are slow), objgraph.find_backref_chain + show_backrefs (DOT output only),
guppy3 hpy().iso(x).domisize and .sp, and pympler's refbrowser (depth 3).
"""
import argparse
import gc
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_heap import cargo_records  # noqa: E402

import memlens  # noqa: E402
from memlens import _engine  # noqa: E402
from memlens.why import _SKIP  # noqa: E402


def median_time(fn, runs):
    """(median wall, min wall, max wall, median CPU) seconds: on a shared
    machine the CPU time of this process is the steadier figure."""
    times, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        del result
    return statistics.median(times), min(times), max(times), statistics.median(cpu)


def once(fn):
    """(wall, CPU) seconds of one run."""
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def peer(label, times, note=""):
    print("  %-44s        %7.3f s wall, %7.3f s CPU  %s" % (label, times[0], times[1], note))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--peers", action="store_true")
    args = ap.parse_args()

    global DATA  # a module global: every tool finds a path from a module
    base = memlens.heap(ids=False).total_count
    DATA = cargo_records(max(0, (args.objects - base) // 9))
    target = DATA[len(DATA) // 2]["product"]
    gc.collect()
    raw = _engine.graph_heap(_SKIP, 10, 0.1)
    n, edges, graph_bytes = raw["count"], raw["edges"], raw["graph_bytes"]
    del raw
    print("python %s; heap graph: %d objects, %d references; graph arrays %.1f bytes/object; "
          "load average %.1f" % (sys.version.split()[0], n, edges, graph_bytes / n, os.getloadavg()[0]))

    def row(label, stats):
        med, lo, hi, cpu = stats
        print("  %-44s median %7.3f s wall, %7.3f s CPU  (wall min %.3f, max %.3f; %d runs)"
              % (label, med, cpu, lo, hi, args.runs))

    row("retained_size(x)  [graph+roots+dominators]", median_time(lambda: memlens.retained_size(target), args.runs))
    row("heap(retained=True) retained part", median_time(lambda: _engine.graph_heap(_SKIP, 50, 0.01), args.runs))
    # the same without class suspects (no class reaches a share of 2): the
    # difference is what the class suspects cost (csrc/graph/suspects.c)
    row("  same, class suspects off", median_time(lambda: _engine.graph_heap(_SKIP, 50, 2.0), args.runs))
    row("why(x)", median_time(lambda: memlens.why(target), args.runs))
    row("backrefs(x, depth=3)", median_time(lambda: memlens.backrefs(target), args.runs))
    with tempfile.TemporaryDirectory() as tmp:
        k = [0]

        def save():
            k[0] += 1
            return memlens.heap(ids=False).save(os.path.join(tmp, "h%d.heapsnapshot" % k[0]))

        census = median_time(lambda: memlens.heap(ids=False), args.runs)
        med = median_time(save, args.runs)
        size = os.path.getsize(os.path.join(tmp, "h1.heapsnapshot"))
        row("heap().save(.heapsnapshot) (incl. census %.3f s)" % census[0], med)
        print("  .heapsnapshot file: %.1f MiB" % (size / 2 ** 20))

    if not args.peers:
        return
    print("peers (one run each):")
    try:
        import objgraph
        chain = []
        t = once(lambda: chain.append(objgraph.find_backref_chain(target, objgraph.is_proper_module)))
        peer("objgraph.find_backref_chain", t, "(chain of %d)" % len(chain[0]))
        del chain
        with tempfile.TemporaryDirectory() as tmp:
            t = once(lambda: objgraph.show_backrefs([target], max_depth=3,
                                                    filename=os.path.join(tmp, "b.dot")))
        peer("objgraph.show_backrefs(max_depth=3, .dot)", t)
    except ImportError:
        print("  objgraph not installed")
    try:
        import guppy
        hp = guppy.hpy()
        peer("guppy3 hpy().iso(x).domisize", once(lambda: hp.iso(target).domisize))
        peer("guppy3 hpy().iso(x).sp", once(lambda: str(hp.iso(target).sp)))
    except ImportError:
        print("  guppy3 not installed")
    try:
        from pympler import refbrowser
        peer("pympler refbrowser.get_tree(maxdepth=3)",
             once(lambda: refbrowser.ConsoleBrowser(target, maxdepth=3).get_tree()))
    except ImportError:
        print("  pympler not installed")


if __name__ == "__main__":
    main()

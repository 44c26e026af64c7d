"""Benchmark the reference graph (memlens.why, retained sizes, .heapsnapshot)
against objgraph, guppy3 and pympler on one heap.

    python bench/bench_graph.py [--objects 1000000] [--runs 5] [--peers]

Builds a heap of about --objects live objects (seed 001's cargo records,
as bench_heap.py), then times the median of --runs runs of:
  - retained sizes: memlens.retained_size(x) (graph + roots + dominator
    tree of the whole heap) and heap(retained=True)'s extra work
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
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        del result
    return statistics.median(times), min(times), max(times)


def once(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--peers", action="store_true")
    args = ap.parse_args()

    base = memlens.heap(ids=False).total_count
    data = cargo_records(max(0, (args.objects - base) // 9))
    target = data[len(data) // 2]["product"]
    gc.collect()
    raw = _engine.graph_heap(_SKIP, 10, 0.1)
    n, edges, graph_bytes = raw["count"], raw["edges"], raw["graph_bytes"]
    del raw
    print("python %s; heap graph: %d objects, %d references; graph arrays %.1f bytes/object"
          % (sys.version.split()[0], n, edges, graph_bytes / n))

    def row(label, stats):
        med, lo, hi = stats
        print("  %-44s median %7.3f s  (min %.3f, max %.3f; %d runs)" % (label, med, lo, hi, args.runs))

    row("retained_size(x)  [graph+roots+dominators]", median_time(lambda: memlens.retained_size(target), args.runs))
    row("heap(retained=True) retained part", median_time(lambda: _engine.graph_heap(_SKIP, 50, 0.1), args.runs))
    row("why(x)", median_time(lambda: memlens.why(target), args.runs))
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
        print("  objgraph.find_backref_chain                  %7.3f s  (chain of %d)" % (t, len(chain[0])))
        with tempfile.TemporaryDirectory() as tmp:
            t = once(lambda: objgraph.show_backrefs([target], max_depth=3,
                                                    filename=os.path.join(tmp, "b.dot")))
        print("  objgraph.show_backrefs(max_depth=3, .dot)    %7.3f s" % t)
        del chain
    except ImportError:
        print("  objgraph not installed")
    try:
        import guppy
        hp = guppy.hpy()
        t = once(lambda: hp.iso(target).domisize)
        print("  guppy3 hpy().iso(x).domisize                 %7.3f s" % t)
        t = once(lambda: str(hp.iso(target).sp))
        print("  guppy3 hpy().iso(x).sp                       %7.3f s" % t)
    except ImportError:
        print("  guppy3 not installed")
    try:
        from pympler import refbrowser
        t = once(lambda: refbrowser.ConsoleBrowser(target, maxdepth=3).get_tree())
        print("  pympler refbrowser.get_tree(maxdepth=3)      %7.3f s" % t)
    except ImportError:
        print("  pympler not installed")


if __name__ == "__main__":
    main()

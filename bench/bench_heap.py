"""Benchmark memlens.heap() and memlens.deep_size against pympler and guppy3.

    python bench/bench_heap.py [--objects 1000000] [--runs 5]
    python bench/bench_heap.py --own [--objects 1000000] [--runs 15]

Builds a heap of about --objects live objects (seed 001's cargo records:
nested dicts of str and int), then times, on that same process, the median
of --runs runs of:
  - memlens.heap()                                     (ids on: diff-ready)
  - pympler: summary.summarize(muppy.get_objects())
  - guppy3:  hpy().heap()
  - memlens.deep_size(data) vs pympler.asizeof.asizeof(data)
and prints the times and the ratios. Needs the [test] extra (pympler, guppy3).

--own: the cost of leaving memlens' own imports out (what `memlens heap
SCRIPT` does, docs/HEAP.md step 5) on that heap: CPU time (median of
--runs, alternating) of heap(ids=False) with the exclusion on and off, the
time of finding memlens' part alone, and its size.
"""
import argparse
import gc
import random
import statistics
import sys
import time

import memlens


def cargo_records(n, seed=1):
    rnd = random.Random(seed)
    names = ["Duper", "Elec's0il", "Cosmo", "Pirate"]
    return [{"id": rnd.randrange(10 ** 6, 2 * 10 ** 6),
             "product": {"name": rnd.choice(names), "uid": "elec%dui" % rnd.randrange(1000)},
             "quantity": {"value": rnd.randrange(1000, 2000), "id": "mt"},
             "dates": {"start": "2200-10-%02dT00:00:00" % rnd.randrange(1, 28),
                       "end": "2200-11-%02dT00:00:00" % rnd.randrange(1, 28)}}
            for _ in range(n)]


def median_time(fn, runs):
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        del result
    return statistics.median(times)


DATA = None  # the heap's records: a global, as a program's would be


def bench_own(args):
    """heap() with and without memlens' own imports left out, alternating."""
    import os
    from memlens import _engine
    names = frozenset(sys.modules) - memlens._modules_before
    own_dir = os.path.dirname(os.path.abspath(memlens.__file__)) + os.sep

    def cpu(fn):
        t0 = time.process_time()
        fn()
        return time.process_time() - t0

    on, off, find = [], [], []
    for _ in range(args.runs):
        _engine.heap_own_modules(None, None, None)
        off.append(cpu(lambda: memlens.heap(ids=False)))
        _engine.heap_own_modules(names, own_dir, main.__code__)
        on.append(cpu(lambda: memlens.heap(ids=False)))
        find.append(cpu(_engine.heap_own_find))
    size = _engine.heap_own_find()
    _engine.heap_own_modules(None, None, None)
    m_on, m_off, m_find = (statistics.median(x) for x in (on, off, find))
    print("heap(ids=False), memlens' imports counted   %8.4f s CPU" % m_off)
    print("heap(ids=False), memlens' imports left out  %8.4f s CPU  (x%.3f, +%.4f s)" % (
        m_on, m_on / m_off, m_on - m_off))
    print("finding memlens' part alone                 %8.4f s CPU  (%d candidates, %d left out)" % (
        m_find, size["candidates"], size["own"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--objects", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--own", action="store_true",
                    help="only measure leaving memlens' own imports out of the census")
    ap.add_argument("--deep-records", type=int, default=50_000,
                    help="records for the deep_size vs asizeof comparison")
    args = ap.parse_args()

    base = memlens.heap(ids=False).total_count
    per_record = 9  # 4 dicts, 3 new strs, 2 new ints (the rest are shared)
    global DATA
    DATA = data = cargo_records(max(0, (args.objects - base) // per_record))
    gc.collect()
    snap = memlens.heap()
    print("python %s; heap: %d live objects, %.1f MiB" % (
        sys.version.split()[0], snap.total_count, snap.total_bytes / 2 ** 20))
    del snap
    if args.own:
        del data
        bench_own(args)
        return

    t_memlens = median_time(memlens.heap, args.runs)
    print("memlens.heap()                          %8.3f s" % t_memlens)

    from pympler import muppy, summary
    t_pympler = median_time(lambda: summary.summarize(muppy.get_objects()), args.runs)
    print("pympler summarize(muppy.get_objects())  %8.3f s   memlens %.1fx faster" % (
        t_pympler, t_pympler / t_memlens))

    from guppy import hpy
    h = hpy()
    t_guppy = median_time(h.heap, args.runs)
    print("guppy3 hpy().heap()                     %8.3f s   memlens %.1fx faster" % (
        t_guppy, t_guppy / t_memlens))

    from pympler import asizeof
    sample = data[: args.deep_records]
    size_theirs = asizeof.asizeof(sample)
    t_asizeof = median_time(lambda: asizeof.asizeof(sample), args.runs)
    size_ours = memlens.deep_size(sample, align=8)
    t_deep = median_time(lambda: memlens.deep_size(sample), args.runs)
    print("deep_size of %d records: memlens %.3f s, asizeof %.3f s: %.1fx faster "
          "(sizes %d vs %d, align=8)" % (len(sample), t_deep, t_asizeof, t_asizeof / t_deep,
                                         size_ours, size_theirs))


if __name__ == "__main__":
    main()

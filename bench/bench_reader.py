"""How fast memlens reads captures: events per second, reader alone and per report.

    python bench/bench_reader.py [--events N] [--runs K] [--keep DIR]

Builds bench/synthetic.c with gcc (the same sources as the engine: writer.c
and reader.c), writes a synthetic capture of N events (default 20 million)
with writer.c, then times K runs (default 5) of:
  - scan:     reader.c alone, every event decoded (a C loop, no Python)
  - types:    memlens._engine.read_types  (what `memlens types` runs)
  - leaks:    memlens._engine.read_leaks  (what `memlens leaks` runs)
  - summary:  memlens._engine.read_summary (what `memlens summary` runs)
and prints the median and the spread in million events per second, by wall
time and by CPU time (the machine may be shared: CPU time is what the reading
costs, wall time is what a user waits). The capture's event mix is described
in bench/synthetic.c.
"""
import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def build(workdir):
    exe = os.path.join(workdir, "synthetic")
    src = [os.path.join(HERE, "synthetic.c")] + [
        os.path.join(ROOT, "csrc", p) for p in
        ("format/zlib.c", "capture/writer.c", "capture/zdeflate.c", "analysis/reader.c", "analysis/zinflate.c",
         "analysis/live.c")]
    subprocess.check_call(["gcc", "-std=gnu11", "-O2", "-I", os.path.join(ROOT, "csrc"), "-o", exe]
                          + src)
    return exe


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", metavar="DIR", help="keep the capture in DIR (reused if present)")
    args = ap.parse_args()
    from memlens import _engine

    workdir = args.keep or tempfile.mkdtemp(prefix="memlens-bench-")
    os.makedirs(workdir, exist_ok=True)
    exe = build(workdir)
    path = os.path.join(workdir, "synthetic-%d.mlens" % args.events)
    if not os.path.exists(path):
        t = time.perf_counter()
        subprocess.check_call([exe, "gen", path, str(args.events)])
        print("wrote %s: %.1f MB in %.1f s" % (path, os.path.getsize(path) / 1e6,
                                                time.perf_counter() - t))
    events = _engine.read_types(path)["events"]

    def scan():
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        out = subprocess.check_output([exe, "scan", path], text=True).split()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert int(out[0]) == events
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        return float(out[1]), cpu

    def timed(fn):
        def run():
            c, t = time.process_time(), time.perf_counter()
            fn(path)
            return time.perf_counter() - t, time.process_time() - c
        return run

    cases = [("scan (reader.c alone)", scan),
             ("types", timed(_engine.read_types)),
             ("leaks", timed(lambda p: _engine.read_leaks(p, top=20))),
             ("summary", timed(lambda p: _engine.read_summary(p, top=10)))]
    print("capture: %d events, %.1f MB; Python %s; %d runs each" % (
        events, os.path.getsize(path) / 1e6, sys.version.split()[0], args.runs))
    print("%-22s %16s %14s %16s %14s" % ("M events/s", "wall median", "min..max",
                                         "CPU median", "min..max"))
    for name, fn in cases:
        runs = [fn() for _ in range(args.runs)]
        wall = sorted(events / w / 1e6 for w, _ in runs)
        cpu = sorted(events / max(c, 1e-9) / 1e6 for _, c in runs)
        print("%-22s %16.1f %14s %16.1f %14s" % (
            name, statistics.median(wall), "%.1f..%.1f" % (wall[0], wall[-1]),
            statistics.median(cpu), "%.1f..%.1f" % (cpu[0], cpu[-1])))
    if not args.keep:
        os.unlink(path)


if __name__ == "__main__":
    main()

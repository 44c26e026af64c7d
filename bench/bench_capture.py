"""Capture overhead: memlens run vs untracked, tracemalloc(25) and memray.

For each workload, in one run, with several repetitions (median reported):
  untracked     python WORKLOAD
  memlens       python -m memlens run -q WORKLOAD
  tracemalloc   python -X tracemalloc=25 WORKLOAD
  memray        python -m memray run --trace-python-allocators WORKLOAD
prints wall-time slowdown ratios against the untracked run, their geometric
means, memlens' CPU-time ratio (user + system of the process: memlens keeps
its live-block map and encodes the file in a second thread, which a machine
with a free core runs beside the program), the capture size per event
(allocation or free) and memlens/memray capture sizes, and the speed at which
`memlens summary` reads the capture.

Needs memray, pyperf and pyperformance from PyPI:
  pip install memray pyperformance pyperf && pip install .
  python bench/bench_capture.py [--reps 5] [--only NAME ...]
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WL = os.path.join(HERE, "workloads")

# (name, argv after the interpreter, loops chosen for ~0.5-1.5 s untracked)
PYPERF = [("float", 5), ("deltablue", 100), ("richards", 10), ("nqueens", 5), ("raytrace", 2),
          ("go", 3), ("chaos", 6), ("deepcopy", 2000), ("json_dumps", 40)]


def workloads():
    import pyperformance
    base = os.path.join(os.path.dirname(pyperformance.__file__), "data-files", "benchmarks")
    yield "json_cargo", [os.path.join(WL, "json_cargo.py"), "20"]
    yield "small_objects", [os.path.join(WL, "small_objects.py"), "5"]
    for name, loops in PYPERF:
        d = os.path.join(base, "bm_" + name)
        if not os.path.isdir(d):
            raise SystemExit("pyperformance has no benchmark %r here: update PYPERF" % name)
        yield "pyperf:" + name, [os.path.join(WL, "pyperf_driver.py"), d, str(loops)]


# Children run as on a user's machine: with byte-code caching (a shell that
# sets PYTHONDONTWRITEBYTECODE would make every mode recompile its modules
# on every run; memlens' own modules are compiled at `pip install` time).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(cmd):
    """(wall seconds, CPU seconds: user + system of the child and its threads)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), err[-2000:]))
    return elapsed, usage.ru_utime + usage.ru_stime


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--no-peers", action="store_true",
                    help="only untracked and memlens (quick checks; the peers' columns show 0)")
    args = ap.parse_args()
    py = sys.executable
    tmp = tempfile.mkdtemp(prefix="memlens-bench-")
    cap, mray = os.path.join(tmp, "c.mlens"), os.path.join(tmp, "m.bin")
    modes = {
        "untracked": lambda w: [py] + w,
        "memlens": lambda w: [py, "-m", "memlens", "run", "-q", "-f", "-o", cap] + w,
        "tracemalloc25": lambda w: [py, "-X", "tracemalloc=25"] + w,
        "memray": lambda w: [py, "-m", "memray", "run", "-q", "-f", "--trace-python-allocators",
                             "-o", mray] + w,
    }
    if args.no_peers:
        del modes["tracemalloc25"], modes["memray"]
    rows = []
    print("python %s, %d repetitions, median wall time" % (sys.version.split()[0], args.reps))
    print("%-28s %9s %9s %9s %9s %9s %10s %10s %9s %10s" % (
        "workload", "untracked", "memlens", "ml cpu", "tracemal", "memray", "events", "B/event", "ml/mray",
        "read Mev/s"))
    for name, w in workloads():
        if args.only and not any(o in name for o in args.only):
            continue
        times = {m: [] for m in modes}
        cpus = {m: [] for m in modes}
        for m, make in modes.items():  # warm-up: byte-code caches, page cache
            timed(make(w))
        for _ in range(args.reps):
            for m, make in modes.items():  # interleaved, so drift hits every mode alike
                wall, cpu = timed(make(w))
                times[m].append(wall)
                cpus[m].append(cpu)
        med = {m: statistics.median(v) for m, v in times.items()}
        cpu_x = statistics.median(cpus["memlens"]) / statistics.median(cpus["untracked"])
        for m in ("tracemalloc25", "memray"):
            med.setdefault(m, 0.0)
        t = time.perf_counter()
        summary = json.loads(subprocess.run([py, "-m", "memlens", "summary", cap, "--json"],
                                            capture_output=True, text=True, check=True).stdout)
        read_s = time.perf_counter() - t
        events = summary["allocations"] + summary.get("frees", 0)
        size = os.path.getsize(cap)
        msize = os.path.getsize(mray) if not args.no_peers else 0
        row = {"workload": name, "untracked_s": med["untracked"],
               "memlens_x": med["memlens"] / med["untracked"], "memlens_cpu_x": cpu_x,
               "tracemalloc25_x": med["tracemalloc25"] / med["untracked"],
               "memray_x": med["memray"] / med["untracked"],
               "events": events, "bytes_per_event": size / max(events, 1),
               "capture_bytes": size, "memray_bytes": msize,
               "read_events_per_s": events / read_s}
        rows.append(row)
        peer = (lambda x: "%8.2fx" % x) if not args.no_peers else (lambda x: "%9s" % "-")
        print("%-28s %8.2fs %8.2fx %8.2fx %s %s %10d %10.2f %9s %10.1f" % (
            name, row["untracked_s"], row["memlens_x"], cpu_x, peer(row["tracemalloc25_x"]),
            peer(row["memray_x"]),
            events, row["bytes_per_event"], "%.2f" % (size / msize) if msize else "-",
            row["read_events_per_s"] / 1e6))
        sys.stdout.flush()
    mine = (geomean([r["memlens_x"] for r in rows]), geomean([r["memlens_cpu_x"] for r in rows]))
    if args.no_peers:
        print("%-28s %9s %8.2fx %8.2fx" % (("geomean", "") + mine))
    else:
        print("%-28s %9s %8.2fx %8.2fx %8.2fx %8.2fx" % (
            ("geomean", "") + mine + (geomean([r["tracemalloc25_x"] for r in rows]),
                                      geomean([r["memray_x"] for r in rows]))))
        print("capture size memlens/memray (geomean): %.2f" % geomean(
            [r["capture_bytes"] / max(r["memray_bytes"], 1) for r in rows]))
    print("(read Mev/s: `memlens summary` as a command: includes interpreter start-up and decompression)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()

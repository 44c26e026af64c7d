"""`memlens run --native` overhead on a native-heavy workload (NumPy,
sqlite3, zlib: bench/workloads/native_mix.py).

Modes, interleaved, several repetitions, median wall time and median CPU
time (user + sys of the child, which the load of a shared machine inflates
less than the wall time):
  untracked       python WORKLOAD
  memlens         python -m memlens run -q WORKLOAD
  memlens-native  python -m memlens run -q --native WORKLOAD
  memlens-native-stacks  python -m memlens run -q --native-stacks WORKLOAD
  memray-native   python -m memray run -q --native WORKLOAD
prints each mode's slowdown against the untracked run (target for
memlens-native: <= 2x) and the native allocations memlens recorded.

Needs numpy and memray from PyPI:
  pip install numpy memray && pip install .
  python bench/bench_native.py [--reps 5] [--rounds 3]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(HERE, "workloads", "native_mix.py")
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd):
    """(wall, cpu) seconds of one run of cmd."""
    c, t = _cpu(), time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    if proc.returncode != 0:
        raise RuntimeError("%s failed: %s" % (" ".join(cmd), proc.stderr[-2000:]))
    return time.perf_counter() - t, _cpu() - c


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="workload rounds (default 3)")
    ap.add_argument("--no-memray", action="store_true", help="leave memray out")
    args = ap.parse_args()
    py = sys.executable
    tmp = tempfile.mkdtemp(prefix="memlens-bench-")
    cap, mray = os.path.join(tmp, "c.mlens"), os.path.join(tmp, "m.bin")
    w = [WORKLOAD, str(args.rounds)]
    modes = {
        "untracked": [py] + w,
        "memlens": [py, "-m", "memlens", "run", "-q", "-f", "-o", cap] + w,
        "memlens-native": [py, "-m", "memlens", "run", "-q", "-f", "--native", "-o", cap] + w,
        "memlens-native-stacks": [py, "-m", "memlens", "run", "-q", "-f", "--native-stacks", "-o", cap] + w,
        "memray-native": [py, "-m", "memray", "run", "-q", "-f", "--native", "-o", mray] + w,
    }
    if args.no_memray:
        del modes["memray-native"]
    times = {m: [] for m in modes}
    for cmd in modes.values():  # warm-up
        timed(cmd)
    for _ in range(args.reps):
        for m, cmd in modes.items():
            times[m].append(timed(cmd))
    wall = {m: statistics.median(t[0] for t in v) for m, v in times.items()}
    cpu = {m: statistics.median(t[1] for t in v) for m, v in times.items()}
    print("python %s, %d repetitions, medians, workload %s %d, load average %s" % (
        sys.version.split()[0], args.reps, os.path.basename(WORKLOAD), args.rounds,
        " ".join("%.2f" % x for x in os.getloadavg())))
    print("%-22s %9s %7s %9s %7s" % ("mode", "wall", "ratio", "cpu", "ratio"))
    for m in modes:
        print("%-22s %8.3fs %6.2fx %8.3fs %6.2fx" % (m, wall[m], wall[m] / wall["untracked"],
                                                    cpu[m], cpu[m] / cpu["untracked"]))
    # the last memlens-native capture: how many native blocks it holds
    timed(modes["memlens-native"])
    out = subprocess.run([py, "-m", "memlens", "types", cap, "--json"], capture_output=True, text=True,
                         check=True).stdout
    rows = [t for t in json.loads(out)["types"] if t["type"].startswith("<native")]
    for t in sorted(rows, key=lambda t: -t["allocs"])[:5]:
        print("  %-50s %10d allocations" % (t["type"], t["allocs"]))


if __name__ == "__main__":
    main()

"""Overhead of the pytest plugin on a real project's test suite.

Downloads the sdist of a pure-Python package from PyPI (default:
more-itertools, whose sdist carries its tests and needs nothing else), runs
its tests with pytest with and without --memlens, the modes interleaved after
one warm-up run each, and prints the median wall time of each mode and their
ratio (goal: --memlens <= 1.5x).

    python bench/bench_pytest.py [--reps 5] [--package more-itertools==10.5.0]
    python bench/bench_pytest.py --package attrs==24.2.0 --install hypothesis cloudpickle

Needs pip and pytest in the running Python, and memlens installed in it;
--install pip-installs the suite's own test dependencies into it first. A
suite with a `src/` folder is imported from there. Tests that fail in this
environment are allowed when both modes report the same outcome counts.
"""
import argparse
import glob
import os
import re
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

MODES = {
    "plain": [],
    "memlens": ["--memlens"],
}


def fetch(spec, where):
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary",
                    ":all:", "-d", where, spec], check=True)
    sdist = glob.glob(os.path.join(where, "*.tar.gz"))[0]
    with tarfile.open(sdist) as t:
        t.extractall(where, filter="data") if sys.version_info >= (3, 12) else t.extractall(where)
    return next(d for d in glob.glob(os.path.join(where, "*")) if os.path.isdir(d))


def run(src, mode):
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"] + MODES[mode]
    env = dict(os.environ, PYTHONPATH=os.path.join(src, "src") if os.path.isdir(
        os.path.join(src, "src")) else src)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=src, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # the child's CPU time (user + system, all its threads)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 1):  # 1: some tests failed (compared below)
        sys.exit("%s failed:\n%s" % (" ".join(cmd), proc.stdout[-3000:] + proc.stderr[-2000:]))
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
    return wall, cpu, summary


def outcomes(summary):
    """The counts of a pytest summary line, without its time."""
    return re.sub(r" in [0-9.]+s.*", "", summary.strip("= "))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--package", default="more-itertools==10.5.0")
    ap.add_argument("--install", nargs="*", default=[], metavar="PKG",
                    help="the suite's test dependencies, pip-installed first")
    args = ap.parse_args()
    if args.install:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q"] + args.install, check=True)
    seen = set()
    with tempfile.TemporaryDirectory(prefix="memlens-bench-pytest-") as where:
        src = fetch(args.package, where)
        times = {m: [] for m in MODES}
        cpus = {m: [] for m in MODES}
        for m in MODES:
            summary = run(src, m)[2]
            seen.add(outcomes(summary))
            print("warm-up %s: %s" % (m, summary), file=sys.stderr)
        for i in range(args.reps):
            for m in MODES:
                wall, cpu, summary = run(src, m)
                seen.add(outcomes(summary))
                times[m].append(wall)
                cpus[m].append(cpu)
                print("rep %d %-8s %.2fs wall %.2fs cpu  %s" % (i + 1, m, wall, cpu, summary),
                      file=sys.stderr)
        if len(seen) != 1:
            sys.exit("the outcomes differ between runs: %s" % sorted(seen))
        med = {m: statistics.median(v) for m, v in times.items()}
        cmed = {m: statistics.median(v) for m, v in cpus.items()}
        print("| suite | plain | --memlens | wall ratio | plain cpu | --memlens cpu | cpu ratio |")
        print("|---|---|---|---|---|---|---|")
        print("| %s | %.2fs | %.2fs | %.2fx | %.2fs | %.2fs | %.2fx |" % (
            args.package, med["plain"], med["memlens"], med["memlens"] / med["plain"],
            cmed["plain"], cmed["memlens"], cmed["memlens"] / cmed["plain"]))


if __name__ == "__main__":
    main()

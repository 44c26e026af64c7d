"""Cost of @memlens.profile: a decorated loop vs the same loop undecorated,
and an undecorated helper called from a decorated function (whose own lines
get no events). Each case runs in a fresh interpreter; median of N runs.

    python bench/profile_overhead.py [N]
"""
import statistics
import subprocess
import sys

CASE = r'''
import sys, time
mode = sys.argv[1]
def work(n):
    out = []
    for i in range(n):
        out.append([i] * 3)
        if len(out) > 100:
            out.clear()
    return len(out)
def caller():
    return work(300000)
if mode == "decorated":
    from memlens import profile
    sys.modules["memlens.profile"]._print_at_exit = False
    work = profile(work)
    run = lambda: work(300000)
elif mode == "callee":           # decorated caller, plain callee doing the work
    from memlens import profile
    sys.modules["memlens.profile"]._print_at_exit = False
    run = profile(caller)
elif mode == "counters":         # tracker counting, no line events
    from memlens import _engine
    _engine.start(None, False, "{}", 1, False, 10)
    run = caller
else:
    run = caller
t0 = time.perf_counter(); run(); print(time.perf_counter() - t0)
'''


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    res = {}
    for mode in ("plain", "counters", "callee", "decorated"):
        times = [float(subprocess.check_output([sys.executable, "-c", CASE, mode]))
                 for _ in range(n)]
        res[mode] = statistics.median(times)
    base = res["plain"]
    print("python %s" % sys.version.split()[0])
    for mode, t in res.items():
        print("%-10s %.3f s  x%.2f" % (mode, t, t / base))


if __name__ == "__main__":
    main()

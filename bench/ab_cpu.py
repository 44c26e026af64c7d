"""A/B of commands, interleaved: median wall and CPU time (user + system of
the child and its threads, from wait4) of each, and their ratios to the
first command's (the untracked run). Used for the session-7 regression
hunt (BENCHMARKS.md, "Capture overhead"):

    python bench/ab_cpu.py REPS -- LABEL :: CMD ... ";;" LABEL :: [KEY=VAL ...] CMD ...

One warm-up run each, then REPS rounds; children run with byte-code caching
(PYTHONDONTWRITEBYTECODE dropped, as in bench_capture.py).
"""
import os, subprocess, sys, time, statistics
reps = int(sys.argv[1])
spec = " ".join(sys.argv[3:]).split(" ;; ")
modes = []
for s in spec:
    label, cmd = s.split(" :: ")
    parts = cmd.split()
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    while parts and "=" in parts[0] and not parts[0].startswith("/"):
        k, v = parts.pop(0).split("=", 1)
        env[k] = v
    modes.append((label, parts, env))
res = {l: ([], []) for l, _, _ in modes}
def run(parts, env):
    t = time.perf_counter()
    p = subprocess.Popen(parts, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    err = p.stderr.read()
    _, st, ru = os.wait4(p.pid, 0)
    if st:
        sys.exit("failed: %s %s" % (parts, err[-500:]))
    return time.perf_counter() - t, ru.ru_utime + ru.ru_stime
for l, p, e in modes:
    run(p, e)
for _ in range(reps):
    for l, p, e in modes:
        w, c = run(p, e)
        res[l][0].append(w); res[l][1].append(c)
base = None
for l, _, _ in modes:
    w, c = statistics.median(res[l][0]), statistics.median(res[l][1])
    if base is None: base = (w, c)
    print("%-24s wall %.3f (%.2fx)  cpu %.3f (%.2fx)   cpus %s" % (l, w, w / base[0], c, c / base[1], " ".join("%.2f" % x for x in sorted(res[l][1]))))
print("load", os.getloadavg())

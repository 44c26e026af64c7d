"""How big the flame graph page gets and how fast it is made and drawn.

    python bench/bench_flamegraph.py [--events N] [--frames F] [--runs K] [--keep DIR]

Builds bench/synthetic.c (see bench_reader.py), writes a synthetic capture of
N events (default 100 million) whose allocations come from F distinct stacks
(default 200,000: 90% of them from 200 hot stacks, the rest spread over all),
then, K times each (default 3), medians printed:
  - make:  memlens.flamegraph.page_data + render_page (what `memlens
           flamegraph` does: call tree, timeline and time buckets in C, the
           page's JSON in Python), wall and CPU seconds;
  - the page's size in MB;
  - draw:  in headless Chromium (Debian chromium through Playwright), the time
           from navigation start until the first graph is drawn (the script
           sets memlensFlame.readyMs at the end of its first draw);
  - redraw: one interaction that rebuilds the graph from all rows (toggle
           inverted), and one drag on the time chart (the range view).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench_reader import build  # noqa: E402


def med(xs):
    return statistics.median(xs), min(xs), max(xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000_000)
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", metavar="DIR", help="keep the capture in DIR (reused if present)")
    args = ap.parse_args()
    from memlens import flamegraph

    workdir = args.keep or tempfile.mkdtemp(prefix="memlens-bench-")
    os.makedirs(workdir, exist_ok=True)
    exe = build(workdir)
    path = os.path.join(workdir, "synthetic-%d-%d.mlens" % (args.events, args.frames))
    if not os.path.exists(path):
        t = time.perf_counter()
        subprocess.check_call([exe, "gen", path, str(args.events), str(args.frames)])
        print("wrote %s: %.1f MB in %.1f s" % (path, os.path.getsize(path) / 1e6, time.perf_counter() - t))

    make, cpu, page = [], [], None
    for _ in range(args.runs):
        c, t = time.process_time(), time.perf_counter()
        data = flamegraph.page_data(path, progress=False)
        page = flamegraph.render_page(data)
        make.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    out = os.path.join(workdir, "flame.html")
    with open(out, "w", encoding="utf-8") as f:
        f.write(page)
    nstacks = len(data["P"]) - 1
    nrows = sum(len(v["rows"]) // 5 for v in data["views"].values())
    print("capture: %.1f MB; page: %d nodes, %d view rows, %d time steps" % (
        os.path.getsize(path) / 1e6, nstacks, nrows, len(data["temporal"]["steps"]) // 5))
    print("make page: %.2f s wall (min %.2f, max %.2f), %.2f s CPU" % (med(make) + (statistics.median(cpu),)))
    print("page size: %.2f MB" % (os.path.getsize(out) / 1e6))

    exe_browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe_browser:
        print("chromium not installed: no draw times")
        return
    from playwright.sync_api import sync_playwright
    draw, inv, rng = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe_browser, args=["--no-sandbox"])
        try:
            for _ in range(args.runs):
                pg = browser.new_page(viewport={"width": 1400, "height": 900})
                pg.goto("file://" + out)
                pg.wait_for_function("window.memlensFlame && memlensFlame.readyMs")
                draw.append(pg.evaluate("memlensFlame.readyMs") / 1000)
                inv.append(pg.evaluate("""() => { var t = performance.now();
                    document.getElementById('inverted').click(); return (performance.now() - t) / 1000; }"""))
                box = pg.locator("#timeline").bounding_box()
                t = time.perf_counter()
                pg.mouse.move(box["x"] + 300, box["y"] + 60)
                pg.mouse.down()
                pg.mouse.move(box["x"] + 600, box["y"] + 60)
                pg.mouse.up()
                pg.evaluate("memlensFlame.total()")
                rng.append(time.perf_counter() - t)
                pg.close()
        finally:
            browser.close()
    print("first draw in Chromium: %.2f s (min %.2f, max %.2f)" % med(draw))
    print("redraw, inverted toggle: %.2f s (min %.2f, max %.2f)" % med(inv))
    print("redraw, range drag: %.2f s (min %.2f, max %.2f)" % med(rng))


if __name__ == "__main__":
    main()

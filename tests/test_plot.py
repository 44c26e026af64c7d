"""memlens plot / timeline on a real capture, and the HTML in a real browser.

The workload (made in a fresh interpreter) has a known shape: a 20 MiB bytes
object made at a known line of a @memlens.profile function called twice
(the peak's top site, and two brackets), around busy phases long enough for
tens of 5 ms samples.
"""
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(ROOT, "test-artifacts")

WORKLOAD = textwrap.dedent('''\
    import json, sys, time
    from memlens import _engine, profile
    _engine.start(sys.argv[1], True, json.dumps({"script": __file__, "argv": [__file__]}),
                  64, False, 5)

    @profile
    def phase(n):
        big = bytes(20 << 20)
        junk = [bytes(1000) for _ in range(n)]
        return len(big) + len(junk)

    def busy(seconds):
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            keep = [str(i) * 3 for i in range(2000)]

    busy(0.1)
    phase(2000)
    busy(0.05)
    phase(2000)
    busy(0.1)
    _engine.stop()
''')
BIG_LINE = 8
SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    d = tmp_path_factory.mktemp("plot")
    script = d / "workload.py"
    script.write_text(WORKLOAD)
    path = d / "w.mlens"
    proc = subprocess.run([sys.executable, str(script), str(path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return str(path), str(script)


def memlens(*args):
    return subprocess.run([sys.executable, "-m", "memlens"] + list(args), capture_output=True,
                          text=True, timeout=120)


def timeline(path):
    from memlens import plot
    return plot.load(path)


def test_timeline_has_series_brackets_and_peak(capture):
    path, script = capture
    tl = timeline(path)
    # 0.25 s of work at 5 ms: about 50 samples on a quiet machine; the sampler
    # thread runs on wall time, so a loaded machine gives fewer (16 seen)
    assert len(tl["points"]) >= 5
    times = [p[0] for p in tl["points"]]
    assert times == sorted(times)
    from memlens import plot
    br = plot.brackets(tl)
    assert [b[0].split(" (")[0] for b in br] == ["phase", "phase"]
    assert all(b[1] <= b[2] for b in br)
    peak = tl["peak"]
    assert peak["file"] == script and peak["line"] == BIG_LINE and peak["function"] == "phase"
    assert peak["site_bytes"] >= sys.getsizeof(bytes(20 << 20))
    assert peak["heap"] >= peak["site_bytes"]
    # the exact peak is at least every sampled heap value
    assert peak["heap"] >= max(p[2] for p in tl["points"])
    # the per-interval maxima come from the events: they reach the exact peak
    # (the 20 MiB object lives between two samples) and never fall below a sample
    assert max(tl["heap_max"]) == peak["heap"]
    assert all(top >= p[2] for top, p in zip(tl["heap_max"], tl["points"]))
    assert any(t["type"] == "bytes" and t["bytes"] >= 20 << 20 for t in tl["top_types"])


def test_timeline_csv(capture):
    path, _ = capture
    proc = memlens("timeline", path, "--csv")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    assert rows[0] == ["time_s", "rss_bytes", "heap_bytes", "heap_max_bytes"]
    points = timeline(path)["points"]
    assert len(rows) - 1 == len(points)
    for row, (t, rss, heap) in zip(rows[1:], points):
        assert abs(float(row[0]) - t / 1e6) < 1e-6 and int(row[1]) == rss and int(row[2]) == heap


def test_svg(capture, tmp_path):
    path, _ = capture
    out = tmp_path / "p.svg"
    proc = memlens("plot", path, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    root = ET.parse(str(out)).getroot()
    n = len(timeline(path)["points"])
    lines = {e.get("id"): e for e in root.iter(SVG_NS + "polyline")}
    assert len(lines["heap-line"].get("points").split()) == n
    assert len(lines["rss-line"].get("points").split()) == n
    assert len([e for e in root.iter(SVG_NS + "rect") if e.get("class") == "bracket"]) == 2
    assert any(e.get("id") == "peak" for e in root.iter(SVG_NS + "circle"))
    text = ET.tostring(root, encoding="unicode")
    assert "workload.py:%d (phase)" % BIG_LINE in text
    assert "http://" not in text.replace("http://www.w3.org", "")  # self-contained


def test_plot_bad_input(tmp_path):
    proc = memlens("plot", str(tmp_path / "missing.mlens"), "-o", str(tmp_path / "x.svg"))
    assert proc.returncode == 2 and "missing.mlens" in proc.stderr
    bad = tmp_path / "bad.mlens"
    bad.write_bytes(b"not a capture at all")
    proc = memlens("plot", str(bad), "-o", str(tmp_path / "x.html"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    proc = memlens("plot", str(bad), "-o", str(tmp_path / "x.png"))
    assert proc.returncode == 2 and ".svg or .html" in proc.stderr


def _browser():
    """(sync_playwright, chromium path), or fail/skip as the environment says."""
    required = os.environ.get("MEMLENS_REQUIRE_BROWSER")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        if required:
            pytest.fail("playwright does not import: %s" % exc)
        pytest.skip("playwright not installed")
    if not exe:
        if required:
            pytest.fail("the Debian chromium package is not installed (tests/run_all.sh installs it)")
        pytest.skip("chromium not installed")
    return sync_playwright, exe


def test_html_in_browser(capture, tmp_path):
    from memlens.fmt import human_bytes
    sync_playwright, exe = _browser()
    path, _ = capture
    out = tmp_path / "p.html"
    proc = memlens("plot", path, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    html = out.read_text()
    assert "<script src" not in html and "https://" not in html
    tl = timeline(path)
    points = tl["points"]
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "plot-%d.%d.png" % sys.version_info[:2])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto("file://" + str(out))
            count = page.eval_on_selector(
                "#heap-line", "e => e.getAttribute('points').trim().split(/\\s+/).length")
            assert count == len(points)
            assert page.locator(".bracket").count() == 2
            assert page.locator("#peak").count() == 1
            box = page.locator("#chart").bounding_box()
            # hover in the middle of the plot area: the tooltip shows that sample
            page.mouse.move(box["x"] + 80 + 430, box["y"] + 200)
            tip = page.locator("#tooltip")
            assert tip.is_visible()
            text = tip.inner_text()
            t = float(text.split("t = ")[1].split(" s")[0])
            # the samples whose time shows as t (ms): the tooltip is one of them
            near = [k for k in range(len(points)) if abs(points[k][0] / 1e6 - t) < 0.0006]
            assert near
            assert any("heap = %s" % human_bytes(points[k][2]) in text
                       and "max since the previous sample %s" % human_bytes(tl["heap_max"][k]) in text
                       and "RSS = %s" % human_bytes(points[k][1]) in text for k in near), text
            page.screenshot(path=shot)
            # zoom on the middle third: fewer samples drawn, all inside the range
            page.mouse.move(box["x"] + 80 + 286, box["y"] + 200)
            page.mouse.down()
            page.mouse.move(box["x"] + 80 + 573, box["y"] + 200)
            page.mouse.up()
            zoomed = page.eval_on_selector(
                "#heap-line", "e => e.getAttribute('points').trim().split(/\\s+/).length")
            assert 0 < zoomed < len(points)
            page.dblclick("#chart")
            assert page.eval_on_selector(
                "#heap-line", "e => e.getAttribute('points').trim().split(/\\s+/).length") == len(points)
            page.mouse.move(box["x"] + 80 + 100, box["y"] + 200)
            page.mouse.down()
            page.mouse.move(box["x"] + 80 + 200, box["y"] + 200)
            page.mouse.up()
            page.click("#reset")
            assert page.eval_on_selector(
                "#heap-line", "e => e.getAttribute('points').trim().split(/\\s+/).length") == len(points)
            assert errors == []
        finally:
            browser.close()
    assert os.path.getsize(shot) > 1000

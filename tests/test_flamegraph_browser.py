"""memlens flamegraph in headless Chromium, with real clicks and drags.

The program (test_flamegraph.PROGRAM) holds 20,000 Lesson objects made in
make_lessons() and 8 MiB of bytes made in make_blob() at its peak, and
a 3 MiB str from keep() at the end. Every number the page shows is
checked against `memlens summary --json` or against the page's own rows
summed here in Python along the known paths. The page must not make a
single request, and hostile names must stay text.
"""
import os
import sys

import pytest

from conftest import ARTIFACTS, memlens, report
from test_flamegraph import PROGRAM, path_of, rows

PROGRAM_LINES = {t.split("# @")[1].strip(): n for n, t in enumerate(PROGRAM.strip("\n").splitlines(), 1)
                 if "# @" in t}
from test_plot import _browser


def under(data, view, function, line=None, type_=None, leaf=False):
    """bytes, blocks of the view's rows whose path goes through `function`
    (at `line`, if given; as the innermost frame only, with leaf)."""
    b = c = 0
    for node, ty, th, nb, nc in rows(data, view):
        if type_ is not None and data["types"][ty] != type_:
            continue
        path = path_of(data, node)
        if leaf:
            path = path[-1:]
        if any(f[0] == function and line in (None, f[2]) for f in path):
            b += nb
            c += nc
    return b, c


@pytest.fixture
def made(script, capture, tmp_path):
    prog = script(PROGRAM)
    path, _ = capture(prog)
    out = tmp_path / "flame.html"
    proc = memlens("flamegraph", path, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    from memlens import flamegraph
    return prog, path, str(out), flamegraph.page_data(path)


class Page:
    """A page open in Chromium, with its errors, dialogs and requests."""

    def __init__(self, browser, url):
        self.page = browser.new_page(viewport={"width": 1400, "height": 900})
        self.errors, self.dialogs, self.requests = [], [], []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.url = url
        self.page.goto(url)

    def js(self, expr):
        return self.page.evaluate(expr)

    def total(self):
        return self.js("memlensFlame.total()")

    def box(self, prefix):
        boxes = self.js("memlensFlame.boxes()")
        found = [b for b in boxes if b["label"].startswith(prefix)]
        assert found, [b["label"] for b in boxes]
        return max(found, key=lambda b: b["w"])

    def click_box(self, prefix):
        b = self.box(prefix)
        at = self.page.locator("#graph").bounding_box()
        self.page.mouse.click(at["x"] + b["x"] + b["w"] / 2, at["y"] + b["y"] + 9)
        return b

    def drag_chart(self, x0, x1):
        at = self.page.locator("#timeline").bounding_box()
        y = at["y"] + 60
        self.page.mouse.move(at["x"] + x0, y)
        self.page.mouse.down()
        self.page.mouse.move(at["x"] + (x0 + x1) / 2, y)
        self.page.mouse.move(at["x"] + x1, y)
        self.page.mouse.up()


def test_page_in_browser(made):
    from memlens.fmt import human_bytes
    sync_playwright, exe = _browser()
    prog, path, out, data = made
    s = report("summary", path)
    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "flamegraph-%d.%d.png" % sys.version_info[:2])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            pg = Page(browser, "file://" + out)
            page = pg.page
            # the peak view: the summary's peak, in bytes and as shown
            assert pg.total() == s["peak_bytes"]
            assert human_bytes(s["peak_bytes"]) in page.inner_text("#facts")
            page.screenshot(path=shot)

            # tooltip of make_lessons: bytes, blocks and the top type
            line = prog.line("lessons")
            label = "make_lessons prog.py:%d" % line
            b = pg.box(label)
            at = page.locator("#graph").bounding_box()
            page.mouse.move(at["x"] + b["x"] + b["w"] / 2, at["y"] + b["y"] + 9)
            tip = page.inner_text("#tooltip")
            lb, lc = under(data, "peak", "make_lessons", line)
            assert "{:,} bytes".format(lb) in tip and "{:,} blocks".format(lc) in tip
            assert "Lesson" in tip.split(": ", 1)[1]
            assert "out.append(Lesson(i))" in tip  # the source line

            # click to zoom: the focus is make_lessons with its known numbers
            pg.click_box(label)
            focus = pg.js("memlensFlame.focus()")
            assert focus["label"] == label and (focus["bytes"], focus["blocks"]) == (lb, lc)
            crumbs = page.locator("#crumbs button")
            assert crumbs.count() >= 4 and crumbs.nth(crumbs.count() - 1).inner_text().startswith("make_lessons")
            crumbs.nth(0).click()
            assert pg.js("memlensFlame.focus()")["label"] == "all"

            # search sums the matches
            page.fill("#search", "make_blob")
            bb, _ = under(data, "peak", "make_blob")
            assert bb >= 8 << 20
            assert int(page.get_attribute("#search-info", "data-bytes")) == bb
            page.fill("#search", "")

            # inverted: the allocating function sits at the base, same bytes
            page.check("#inverted")
            levels = sorted({x["y"] for x in pg.js("memlensFlame.boxes()")}, reverse=True)
            base = [x for x in pg.js("memlensFlame.boxes()") if x["label"] == label and x["y"] == levels[1]]
            assert len(base) == 1
            assert base[0]["bytes"] == under(data, "peak", "make_lessons", line, leaf=True)[0]
            page.uncheck("#inverted")

            # type filter: only Lesson blocks, 20,000 of them
            page.select_option("#type-filter", label="__main__.Lesson")
            lesson_bytes, lesson_blocks = under(data, "peak", "make_lessons", type_="__main__.Lesson")
            assert lesson_blocks == 20000
            assert pg.total() == lesson_bytes
            page.select_option("#type-filter", value="-1")
            assert pg.total() == s["peak_bytes"]
            # the types table filters too (click the Lesson row)
            page.locator("#types-table tbody tr", has_text="__main__.Lesson").first.click()
            assert pg.total() == lesson_bytes
            page.locator("#types-table tbody tr", has_text="__main__.Lesson").first.click()
            assert pg.total() == s["peak_bytes"]

            # types as frames: [Lesson] becomes a box above make_lessons
            page.check("#type-frames")
            assert pg.box("[__main__.Lesson]")["blocks"] == 20000
            page.uncheck("#type-frames")

            # switch views without regenerating
            page.select_option("#view", "end")
            assert pg.total() == s["end_bytes"]
            page.select_option("#view", "allocated")
            assert pg.total() == s["allocated_bytes"]
            page.select_option("#view", "peak")

            # drag a range over the whole chart: held at its highest point = the peak
            pg.drag_chart(72, 948)
            assert pg.js("memlensFlame.state.range") is not None
            assert pg.total() == s["peak_bytes"]
            assert "held at the highest point" in page.inner_text("#facts")
            # a range after the peak (the last tenth): the 3 MiB from keep()
            T = data["temporal"]
            n = len(T["top"])
            pg.drag_chart(70 + 880 * 0.97, 958)  # past the plot: clamped to the end
            r = pg.js("memlensFlame.state.range")
            best = max(range(r[0], r[1] + 1), key=lambda k: (T["top"][k], -k))
            assert pg.total() == T["top"][best] and r[1] == n - 1
            page.click("#reset")
            assert pg.total() == s["peak_bytes"]

            assert pg.errors == [] and pg.dialogs == []
            assert pg.requests == [pg.url]  # nothing but the page itself
        finally:
            browser.close()
    assert os.path.getsize(shot) > 1000


def test_hostile_names_stay_text(script, capture, tmp_path):
    sync_playwright, exe = _browser()
    evil_type = "</script><img src=x onerror=\"window.PWNED=1;alert(1)\">"
    evil_func = "<img src=x onerror=\"window.PWNED=2\">"
    prog = script('''
        Evil = type(%r, (), {})
        def f():
            return [Evil() for _ in range(1000)]
        NAME = %r
        names = {"co_name": NAME}
        if hasattr(f.__code__, "co_qualname"):
            names["co_qualname"] = NAME
        f.__code__ = f.__code__.replace(**names)
        held = f()
    ''' % (evil_type, evil_func), name="<img src=x onerror=window.PWNED=3>.py")
    path, _ = capture(prog)
    out = tmp_path / "evil.html"
    proc = memlens("flamegraph", path, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            pg = Page(browser, "file://" + str(out))
            page = pg.page
            assert pg.js("window.PWNED === undefined")
            cells = page.locator("#types-table td.name").all_inner_texts()
            assert any(c.endswith(evil_type) for c in cells), cells
            assert page.locator("img").count() == 0
            # the hostile function's box: its tooltip shows the name as text
            b = pg.box(evil_func)
            at = page.locator("#graph").bounding_box()
            page.mouse.move(at["x"] + b["x"] + b["w"] / 2, at["y"] + b["y"] + 9)
            assert evil_func in page.inner_text("#tooltip")
            page.fill("#search", "onerror")
            assert int(page.get_attribute("#search-info", "data-bytes")) > 0
            assert pg.js("window.PWNED === undefined") and page.locator("img").count() == 0
            assert pg.errors == [] and pg.dialogs == [] and pg.requests == [pg.url]
        finally:
            browser.close()


def test_diff_page(script, capture, tmp_path):
    """--diff: make_lessons grew (20,000 -> 30,000 Lessons: red), main shrank
    (its 8 MiB blob is gone: blue); the tooltip gives both sides."""
    from memlens.fmt import human_bytes
    sync_playwright, exe = _browser()
    before, _ = capture(script(PROGRAM, name="app.py"))
    after, _ = capture(script(PROGRAM.replace("make_lessons(20000)", "make_lessons(30000)")
                              .replace("bytes(8 << 20)", "b''"), name="app.py"))
    out = tmp_path / "diff.html"
    proc = memlens("flamegraph", "--diff", before, after, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    sb, sa = report("summary", before), report("summary", after)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            pg = Page(browser, "file://" + str(out))
            assert pg.total() == sa["peak_bytes"]
            assert "before " + human_bytes(sb["peak_bytes"]) in pg.page.inner_text("#facts")
            grew = pg.box("make_lessons app.py:%d" % PROGRAM_LINES["lessons"])
            assert grew["bytes"] > grew["base"] > 0 and grew["colour"].startswith("hsl(0,")
            shrank = pg.box("main app.py")
            assert shrank["bytes"] < shrank["base"] and shrank["colour"].startswith("hsl(220,")
            at = pg.page.locator("#graph").bounding_box()
            pg.page.mouse.move(at["x"] + grew["x"] + grew["w"] / 2, at["y"] + grew["y"] + 9)
            tip = pg.page.inner_text("#tooltip")
            assert "before %s, after %s" % (human_bytes(grew["base"]), human_bytes(grew["bytes"])) in tip
            assert pg.errors == [] and pg.requests == [pg.url]
        finally:
            browser.close()


def test_threads_filter_and_sorting(script, capture, tmp_path):
    """A thread named worker holds 5,000 Job objects, the main thread 20,000
    Lessons: the threads filter shows exactly the worker's rows; the types
    table sorts by a clicked column."""
    sync_playwright, exe = _browser()
    prog = script('''
        import threading
        class Job:
            pass
        class Lesson:
            pass
        held = {}
        def work():
            held["jobs"] = [Job() for _ in range(5000)]
        t = threading.Thread(target=work, name="worker")
        t.start()
        t.join()
        held["lessons"] = [Lesson() for _ in range(20000)]
    ''')
    path, _ = capture(prog)
    out = tmp_path / "threads.html"
    proc = memlens("flamegraph", path, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    from memlens import flamegraph
    data = flamegraph.page_data(path)
    # the thread that made the Jobs (threads are named as the capture names
    # them: the OS thread name today, not threading's)
    worker = {r[2] for r in rows(data, "peak") if data["types"][r[1]] == "__main__.Job"}
    assert len(worker) == 1 and len(data["threads"]) >= 2
    w = worker.pop()
    want = sum(r[3] for r in rows(data, "peak") if r[2] == w)
    jobs = sum(r[4] for r in rows(data, "peak") if r[2] == w and data["types"][r[1]] == "__main__.Job")
    assert jobs == 5000
    assert not any(data["types"][r[1]] == "__main__.Lesson" for r in rows(data, "peak") if r[2] == w)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            pg = Page(browser, "file://" + str(out))
            page = pg.page
            page.select_option("#thread-filter", value=str(w))
            assert pg.total() == want
            names = page.locator("#types-table td.name").all_inner_texts()
            assert "__main__.Job" in names and "__main__.Lesson" not in names
            page.select_option("#thread-filter", value="-1")
            # sort the types table by blocks, then by name (ascending)
            page.click("#types-table th[data-key=blocks]")
            counts = [int(t.replace(",", "")) for t in
                      page.locator("#types-table tbody td:nth-child(3)").all_inner_texts()]
            assert counts == sorted(counts, reverse=True) and len(counts) > 2
            page.click("#types-table th[data-key=name]")
            names = page.locator("#types-table td.name").all_inner_texts()
            assert names == sorted(names)
            assert pg.errors == [] and pg.requests == [pg.url]
        finally:
            browser.close()


def test_hide_import_machinery(script, capture, tmp_path):
    """helper.py, imported by the program, holds 1,000 blocks of 1,000 bytes
    made at import: by default its frames sit right under the importing line;
    unchecked, CPython's <frozen importlib._bootstrap> frames appear between."""
    sync_playwright, exe = _browser()
    script('''
        DATA = [bytes(1000) for _ in range(1000)]
    ''', name="helper.py")
    prog = script('''
        import helper
        keep = helper.DATA
    ''')
    path, _ = capture(prog)
    out = tmp_path / "imports.html"
    proc = memlens("flamegraph", path, "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            pg = Page(browser, "file://" + str(out))
            total = pg.total()
            labels = [b["label"] for b in pg.js("memlensFlame.boxes()")]
            assert not any("<frozen importlib" in x for x in labels)
            assert any(x.startswith("<module> helper.py") for x in labels)
            pg.page.uncheck("#hide-import")
            labels = [b["label"] for b in pg.js("memlensFlame.boxes()")]
            assert any("_bootstrap" in x for x in labels), labels
            assert pg.total() == total
            assert pg.errors == []
        finally:
            browser.close()


# ---- the "end" (leaks) view names what holds each leak group (heap at exit) ----

HELD = '''
class Record:
    def __init__(self, i):
        self.i = i

KEEP = []

def build(n):
    for i in range(n):
        KEEP.append(Record(i))  # @record

def evil(n):
    out = []
    for i in range(n):
        out.append(Record(-i))  # @evil
    return out

build(20000)
globals()["<img src=x onerror=window.PWNED=1>"] = evil(3000)
'''


def test_leaks_view_tooltip_names_the_holder(script, capture, tmp_path):
    sync_playwright, exe = _browser()
    prog = script(HELD)
    path, _ = capture(prog, opts=("--heap-at-exit", "--exact"))
    leaks = {(r["function"], r["type"]): r for r in report("leaks", path)}
    held = leaks[("build", "__main__.Record")]["holder"]
    assert held["path"] == ["module __main__", ".KEEP", "(list)", "[i]"]
    out = tmp_path / "held.html"
    proc = memlens("flamegraph", path, "--view", "end", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    evil_path = " ".join(leaks[("evil", "__main__.Record")]["holder"]["path"])
    assert "<img" in evil_path
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            pg = Page(browser, "file://" + str(out))
            page = pg.page
            at = page.locator("#graph").bounding_box()
            for func, tag, holder in (("build", "record", "module __main__ .KEEP (list) [i]"),
                                      ("evil", "evil", evil_path)):
                b = pg.box("%s prog.py:%d" % (func, prog.line(tag)))
                page.mouse.move(at["x"] + b["x"] + b["w"] / 2, at["y"] + b["y"] + 9)
                tip = page.inner_text("#tooltip")
                n = 20000 if func == "build" else 3000
                assert "__main__.Record ({:,} blocks) held by {}".format(n, holder) in tip, tip
                if func == "build":
                    tip_build = [tip]
            assert page.locator("#tooltip img").count() == 0 and pg.js("window.PWNED === undefined")
            # a type frame lists only its own type's groups: the build() line
            # also made the list's item array, whose holder is not shown there
            assert "list (items)" in tip_build[0]
            page.check("#type-frames")
            b = pg.box("[__main__.Record]")
            page.mouse.move(at["x"] + b["x"] + b["w"] / 2, at["y"] + b["y"] + 9)
            tip = page.inner_text("#tooltip")
            assert "__main__.Record (20,000 blocks) held by module __main__ .KEEP (list) [i]" in tip
            assert "list (items)" not in tip and "held by module __main__ .<img" not in tip
            page.uncheck("#type-frames")
            # the peak view does not say what holds blocks at the end
            page.select_option("#view", "peak")
            b = pg.box("build prog.py:%d" % prog.line("record"))
            page.mouse.move(at["x"] + b["x"] + b["w"] / 2, at["y"] + b["y"] + 9)
            assert "held by" not in page.inner_text("#tooltip")
            assert pg.errors == [] and pg.requests == [pg.url]
        finally:
            browser.close()
    # without heap-at-exit records the page carries no holders
    plain, _ = capture(prog, opts=("--exact", "--no-heap-at-exit"))
    from memlens import flamegraph
    assert flamegraph.page_data(plain, view="end")["holders"] == []

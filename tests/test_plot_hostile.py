"""Pages memlens writes show a capture's strings as text, whatever they hold
(issue 9, "Script injection in memlens plot HTML").

Two hostile captures: one written by tests/capfile.py (names that are not
UTF-8, control characters, every kind of markup, in function, class, file,
thread names, argv, marks and notes), and one recorded from a real program
run with hostile argv and hostile function, class, file and thread names
(among them the issue's own reproduction). Their HTML and SVG plots are
opened in headless Chromium: no dialog opens, no script of the data runs,
no element or global is made by the data, the chart draws every sample and
bracket, and the strings appear as text where the page shows them.
"""
import json
import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

import capfile
from conftest import memlens
from test_plot import _browser

from memlens import escape

SVG_NS = "{http://www.w3.org/2000/svg}"

# Each tries to run code, or to end the element or the string it is put in.
HOSTILE = [
    '<script>window.PWNED=1;alert(1)</script>',
    '<img src=x onerror="window.PWNED=2;alert(2)">',
    '"; window.PWNED=3; alert(3); "',
    "'; window.PWNED=4; alert(4); '",
    '</svg><script>window.PWNED=5;alert(5)</script><svg>',
    '<!--<script>',
    '</script><script>window.PWNED=6;alert(6)</script>',
    'MEMLENS_TITLE", [document.documentElement.id="PWNED"]: 1}; //',
    '@@DATA@@ @@TITLE@@ /*MEMLENS_DATA*/null',
    ']]><![CDATA[<script>window.PWNED=7</script>',
    'ctl \x1b]0;owned\x07 \x1b[2J \x00 \x08 \x7f \x85 end',
    'line\u2028sep\u2029par',
    '&amp; &lt;b&gt; &#60;',
]
ISSUE_ARGV = 'MEMLENS_TITLE", [document.documentElement.id="PWNED"]: 1}; //'

# what must hold in every page, after load and after a hover
PAGE_CHECK = """() => {
  const all = Array.from(document.querySelectorAll("*"));
  return {
    pwned: typeof window.PWNED,
    rootId: document.documentElement.id,
    ids: all.map(e => e.id).filter(id => /PWNED/.test(id)),
    scripts: document.querySelectorAll("script").length,
    imgs: document.querySelectorAll("img").length,
    handlers: all.filter(e => Array.from(e.attributes).some(a => /^on/i.test(a.name))).length,
  };
}"""


def test_escape_contexts():
    s = '<a href="x">&\'</a>\x1b\udcff\u2028'
    assert escape.printable(s) == '<a href="x">&\'</a>\\x1b\\xff\u2028'
    assert escape.text(s) == '&lt;a href="x"&gt;&amp;\'&lt;/a&gt;\\x1b\\xff\u2028'
    assert escape.attr(s) == '&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;\\x1b\\xff\u2028'
    blob = escape.script_json({"k": HOSTILE})
    for c in "<>&\u2028\u2029":
        assert c not in blob
    assert json.loads(blob) == {"k": [escape.printable(h) for h in HOSTILE]}


def test_fill_is_one_pass_and_takes_only_escaped_values():
    page = escape.fill("<b>@@A@@</b><i>@@B@@</i>", A=escape.text("@@B@@"), B=escape.text("x"))
    assert page == "<b>@@B@@</b><i>x</i>"  # a value is never scanned for markers
    with pytest.raises(TypeError):
        escape.fill("@@A@@", A="<raw>")
    with pytest.raises(ValueError):
        escape.fill("@@A@@ @@B@@", A=escape.text("a"))


def _synthetic(path):
    """A capture with hostile strings everywhere; returns what the page must show."""
    argv = ["prog.py"] + HOSTILE + ["bad\udcff\udcfebytes"]
    cap = capfile.Capture(meta=dict(capfile.DEFAULT_META, argv=argv))
    cap.thread_def(1, 4242, HOSTILE[0] + HOSTILE[4])
    cap.switch_thread(1)
    fn = HOSTILE[1] + HOSTILE[2]
    file = "/tmp/" + HOSTILE[6].replace("/", "%") + "\x1b[2J.py"
    site = cap.site(file, fn, 7)
    # bytes that are not UTF-8 here come in argv (as `memlens run` stores
    # them: surrogate escapes in the header JSON) and in a note; in code and
    # mark names they are the reader's side of issue 9 (file-system encoding)
    other = cap.site("/tmp/<b>bold</b>.py", "f<i>(</i>)", 3)
    t_big = cap.type_def(HOSTILE[4] + "Class")
    t_bytes = cap.type_def("bytes")
    labels = [h + " (" + file + ":6)" for h in (HOSTILE[5], HOSTILE[7])]
    samples = 0
    for i, label in enumerate(labels):
        cap.time(10000)
        cap.memory(50 << 20, 1 << 20)
        samples += 1
        cap.mark(capfile.MARK_ENTER, label)
        small = cap.alloc(other, t_bytes, 1000)
        cap.time(10000)
        cap.memory(51 << 20, 2 << 20)
        samples += 1
        big = cap.alloc(site, t_big, (8 + i) << 20)  # the peak is the second one
        cap.time(5000)
        cap.free(big)
        cap.free(small)
        cap.mark(capfile.MARK_EXIT, label)
        cap.note(capfile.NOTE_WARNING, HOSTILE[9].encode() + b"\xff\xfe" + HOSTILE[10].encode())
    cap.time(10000)
    cap.memory(50 << 20, 1 << 20)
    samples += 1
    cap.save(path)
    return {"samples": samples, "brackets": [escape.printable(l.split(" (")[0]) for l in labels],
            "title": escape.printable(" ".join(argv)),
            "site": escape.printable("%s:7 (%s)" % (os.path.basename(file), fn))}


HOSTILE_PROGRAM = textwrap.dedent('''\
    import sys, threading, memlens
    FILE = sys.argv[2]
    SRC = """
    def work(n):
        big = bytes(n << 20)
        return len(big)
    """
    ns = {}
    exec(compile(SRC, FILE, "exec"), ns)
    name = sys.argv[3]
    work = ns["work"]
    code = work.__code__.replace(co_name=name)
    if hasattr(code, "co_qualname"):
        code = code.replace(co_qualname=name)
    work.__code__ = code
    work.__name__ = work.__qualname__ = name
    Hostile = type(sys.argv[4], (), {})
    keep = [Hostile() for _ in range(100)]
    work = memlens.profile(work)
    def main():
        work(4)
        work(12)
    t = threading.Thread(target=main, name=sys.argv[5])
    t.start()
    t.join()
''')


def _real(tmp_path):
    """A capture recorded from a real program whose names are hostile."""
    prog = tmp_path / "hostile.py"
    prog.write_text(HOSTILE_PROGRAM)
    file = str(tmp_path / ("w" + HOSTILE[4].replace("/", "%") + ".py"))
    fn = HOSTILE[2] + HOSTILE[0]
    argv = [ISSUE_ARGV, file, fn, HOSTILE[1] + "\x1b[2J", HOSTILE[3] + HOSTILE[5]]
    cap = str(tmp_path / "real.mlens")
    proc = memlens("run", "-q", "-o", cap, str(prog), *argv)
    assert proc.returncode == 0, proc.stderr
    from memlens import plot
    tl = plot.load(cap)
    assert tl["peak"]["function"] == fn  # the 12 MiB object, made in the hostile function
    return cap, {"samples": len(tl["points"]), "brackets": [escape.printable(fn)] * 2,
                 "title": escape.printable(" ".join([str(prog)] + argv)),
                 "site": escape.printable("%s:3 (%s)" % (os.path.basename(file), fn))}


@pytest.fixture(params=["synthetic", "real program"])
def hostile(request, tmp_path):
    if request.param == "synthetic":
        cap = str(tmp_path / "synthetic.mlens")
        return cap, _synthetic(cap)
    return _real(tmp_path)


def _plot(cap, out):
    proc = memlens("plot", cap, "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def test_hostile_svg_is_well_formed(hostile, tmp_path):
    cap, want = hostile
    out = str(tmp_path / "h.svg")
    _plot(cap, out)
    root = ET.parse(out).getroot()  # well-formed XML: no control character, no stray markup
    assert not list(root.iter(SVG_NS + "script"))
    assert not [a for e in root.iter() for a in e.attrib if a.lower().startswith("on")]
    texts = ["".join(e.itertext()) for e in root.iter(SVG_NS + "text")]
    assert want["title"] in texts
    for label in want["brackets"]:
        assert label in texts
    assert any(want["site"] in t for t in texts)
    lines = {e.get("id"): e for e in root.iter(SVG_NS + "polyline")}
    assert len(lines["heap-line"].get("points").split()) == want["samples"]


def test_hostile_pages_in_browser(hostile, tmp_path):
    sync_playwright, exe = _browser()
    cap, want = hostile
    html, svg = str(tmp_path / "h.html"), str(tmp_path / "h.svg")
    _plot(cap, html)
    _plot(cap, svg)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 700})
            dialogs, errors = [], []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto("file://" + html)
            # the chart drew: every sample, every bracket, the peak
            count = page.eval_on_selector(
                "#heap-line", "e => e.getAttribute('points').trim().split(/\\s+/).length")
            assert count == want["samples"]
            assert page.locator(".bracket").count() == len(want["brackets"])
            assert page.locator("#peak").count() == 1
            # the strings, as text
            assert page.title() == "memlens: " + want["title"]
            assert page.eval_on_selector("#title", "e => e.textContent") == want["title"]
            assert want["site"] in page.eval_on_selector("#peak-info", "e => e.textContent")
            labels = page.eval_on_selector_all("#chart text", "es => es.map(e => e.textContent)")
            for label in want["brackets"]:
                assert label in labels
            box = page.locator("#chart").bounding_box()
            page.mouse.move(box["x"] + 80 + 430, box["y"] + 200)  # the tooltip works
            assert page.locator("#tooltip").inner_text().startswith("t = ")
            assert page.evaluate(PAGE_CHECK) == {"pwned": "undefined", "rootId": "", "ids": [],
                                                 "scripts": 1, "imgs": 0, "handlers": 0}
            assert dialogs == [] and errors == []
            # the SVG on its own, as a browser shows it
            page.goto("file://" + svg)
            assert page.eval_on_selector(
                "#heap-line", "e => e.getAttribute('points').trim().split(/\\s+/).length") \
                == want["samples"]
            assert page.evaluate(PAGE_CHECK) == {"pwned": "undefined", "rootId": "", "ids": [],
                                                 "scripts": 0, "imgs": 0, "handlers": 0}
            assert dialogs == [] and errors == []
        finally:
            browser.close()


def test_issue_reproduction_in_browser(tmp_path):
    """The issue's own steps: `memlens run -o t.mlens prog.py 'MEMLENS_TITLE",
    [document.documentElement.id="PWNED"]: 1}; //'`, then `memlens plot`."""
    sync_playwright, exe = _browser()
    prog = tmp_path / "prog.py"
    prog.write_text("x = [bytes(1000) for _ in range(1000)]\n")
    cap, html = str(tmp_path / "t.mlens"), str(tmp_path / "t.html")
    proc = memlens("run", "-q", "-o", cap, str(prog), ISSUE_ARGV)
    assert proc.returncode == 0, proc.stderr
    _plot(cap, html)
    from memlens import plot
    samples = len(plot.load(cap)["points"])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto("file://" + html)
            assert page.evaluate("document.documentElement.id") == ""
            assert page.eval_on_selector("#title", "e => e.textContent") == \
                "%s %s" % (prog, ISSUE_ARGV)
            assert page.eval_on_selector(
                "#heap-line", "e => e.getAttribute('points').trim().split(/\\s+/).length") == samples
            assert errors == []
        finally:
            browser.close()

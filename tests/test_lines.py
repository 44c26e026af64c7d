"""memlens lines on real captures: known allocations at known lines, the
sums, the selection, the JSON rows, bad input, and a cross-check against
tracemalloc measured around the same statements."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent('''\
    def helper():
        return bytes(2 << 20)

    def work():
        keep = bytes(1 << 20)
        len(bytes(8 << 20))
        kept2 = helper()
        return keep, kept2

    helper(); bytes(0)
    out = work()
''')
# The warm-up line: 3.10 keeps a function's first frame object for reuse (a
# "zombie" frame, kept by the code object), and builds bytes()'s argument
# parser on first use: both are one-time interpreter costs that tracemalloc
# shows too. Warmed up, every version gives the same figures.
L_HELPER_BODY, L_KEEP, L_TEMP, L_CALL, L_MODULE_CALL = 2, 5, 6, 7, 11


def memlens(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "memlens"] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=180, cwd=cwd)


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    d = tmp_path_factory.mktemp("lines")
    script = d / "gt.py"
    script.write_text(SCRIPT)
    path = d / "gt.mlens"
    proc = memlens("run", "-q", "-o", path, script)
    assert proc.returncode == 0, proc.stderr
    return str(path), str(script)


def rows_of(capture, *args):
    proc = memlens("lines", capture[0], "--json", *args)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["capture"]["path"] == capture[0]
    return doc["lines"]


def by(rows, function):
    return {r["line"]: r for r in rows if r["function"] == function}


def test_known_increments(capture):
    rows = rows_of(capture, "--function", "work")
    assert {r["function"] for r in rows} == {"work"}
    w = by(rows, "work")
    assert w[L_KEEP]["increment_bytes"] == sys.getsizeof(bytes(1 << 20))
    # the bytes, and where the call builds one, its argument tuple (made and
    # freed at the line; seen since memlens turns the free lists off)
    extra = w[L_KEEP]["allocated_bytes"] - sys.getsizeof(bytes(1 << 20))
    assert (w[L_KEEP]["allocations"], extra) in ((1, 0), (2, sys.getsizeof((0,))))
    assert w[L_TEMP]["increment_bytes"] == 0
    assert w[L_TEMP]["allocated_bytes"] >= sys.getsizeof(bytes(8 << 20))
    assert w[L_CALL]["increment_bytes"] == sys.getsizeof(bytes(2 << 20))  # callee included
    assert w[L_KEEP]["source"].strip() == "keep = bytes(1 << 20)"
    for r in rows:
        assert set(r) == {"function", "file", "line", "heap_bytes", "increment_bytes",
                          "allocated_bytes", "allocations", "source"}
        assert r["file"] == capture[1]
    # heap after the 1 MB line's last event holds at least that 1 MB
    assert w[L_KEEP]["heap_bytes"] >= sys.getsizeof(bytes(1 << 20))


def test_default_is_the_main_script(capture):
    rows = rows_of(capture)
    funcs = {r["function"] for r in rows}
    assert {"work", "helper", "<module>"} <= funcs
    h = by(rows, "helper")  # called twice: warm-up and from work()
    two = 2 * sys.getsizeof(bytes(2 << 20))
    # (+ on 3.10, bytes()'s argument parser built on this first call: 58 B,
    # and where a call builds one, its argument tuple each time: counted
    # since memlens turns the tuple free list off)
    assert two <= h[L_HELPER_BODY]["allocated_bytes"] <= two + 128 + 2 * sys.getsizeof((0,))
    m = by(rows, "<module>")
    # the module line that calls work() carries everything work() keeps
    assert m[L_MODULE_CALL]["increment_bytes"] >= sys.getsizeof(bytes(1 << 20)) + sys.getsizeof(bytes(2 << 20))


def test_selection_by_file(capture, tmp_path):
    assert rows_of(capture, "--file", capture[1]) == rows_of(capture)
    assert rows_of(capture, "--file", os.path.basename(capture[1])) == rows_of(capture)
    # a selection that matches nothing is bad input
    proc = memlens("lines", capture[0], "--file", str(tmp_path / "other.py"))
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "other.py" in proc.stderr


def test_text_table_adds_up(capture):
    proc = memlens("lines", capture[0], "--function", "work")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Function: work" in out
    header = next(l for l in out.splitlines() if l.startswith("Line #"))
    for col in ("Heap", "Increment", "Allocated", "Allocs", "Line Contents"):
        assert col in header
    keep = next(l for l in out.splitlines() if l.strip().startswith("%d " % L_KEEP))
    assert "+1.0 MiB" in keep and "keep = bytes(1 << 20)" in keep
    assert "sum of the line increments (checked)" in out
    assert "WARNING" not in out


def test_bad_input(tmp_path):
    proc = memlens("lines", tmp_path / "missing.mlens")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.mlens"
    bad.write_bytes(b"MLENS\0\r\nxx")
    proc = memlens("lines", bad)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr


def test_no_main_script_needs_a_choice(tmp_path):
    path = tmp_path / "c.mlens"
    proc = memlens("run", "-q", "-o", path, "-c", "x = bytes(1000)")
    assert proc.returncode == 0, proc.stderr
    proc = memlens("lines", path)
    assert proc.returncode == 2 and "--function" in proc.stderr


TM_SCRIPT = textwrap.dedent('''\
    import json, sys, tracemalloc
    def helper():
        return bytes(2 << 20)
    def work(tm):
        d = {}
        t0 = tm()
        keep = bytes(1 << 20)
        t1 = tm()
        len(bytes(8 << 20))
        t2 = tm()
        kept2 = helper()
        t3 = tm()
        d["keep"], d["temp"], d["call"] = t1 - t0, t2 - t1, t3 - t2
        return d
    tracemalloc.start()
    tm = lambda: tracemalloc.get_traced_memory()[0]
    tm(); work(tm)
    json.dump(work(tm), sys.stdout)
''')


def test_cross_check_with_tracemalloc(capture, tmp_path):
    """tracemalloc's traced memory around the same statements gives the same
    increments, up to what measuring costs tracemalloc itself: each reading
    keeps one int (the previous reading's int is freed on the next line), so
    its deltas are off by at most a couple of small ints."""
    script = tmp_path / "tm.py"
    script.write_text(TM_SCRIPT)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    tm = json.loads(proc.stdout)
    w = by(rows_of(capture, "--function", "work"), "work")
    for key, line in (("keep", L_KEEP), ("temp", L_TEMP), ("call", L_CALL)):
        assert abs(w[line]["increment_bytes"] - tm[key]) <= 64, (key, w[line]["increment_bytes"], tm[key])


# ---- a table shows exactly its code object's lines; --function means the user's ----

SCOPES = textwrap.dedent('''\
    import textwrap

    def main():
        xs = [bytes(100) for _ in range(1000)]  # @listcomp
        return xs  # @main-return

    def other():  # @other
        y = bytearray(3000)
        return y

    class Holder:  # @class
        data = bytearray(1000)  # @class-data
        def __init__(self):  # @def-init
            self.x = bytearray(5000)  # @init-body
        more = bytearray(2000)  # @class-more

    def wrap(text):  # @wrap
        return textwrap.wrap(text, 30)  # @wrap-call

    keep = main()
    kept = other()
    h = Holder()
    lines = wrap("word " * 500)
''')


@pytest.fixture(scope="module")
def scopes(tmp_path_factory):
    d = tmp_path_factory.mktemp("scopes")
    script = d / "scopes.py"
    script.write_text(SCOPES)
    path = d / "scopes.mlens"
    proc = memlens("run", "-q", "-o", path, script)
    assert proc.returncode == 0, proc.stderr
    tags = {}
    for no, text in enumerate(SCOPES.splitlines(), 1):
        if "# @" in text:
            tags[text.split("# @", 1)[1].strip()] = no
    return str(path), str(script), tags


def table_lines(out):
    """{function: [line numbers of its table]} from the text report."""
    tables, current, inside = {}, None, False
    for text in out.splitlines():
        if text.startswith("Function: "):
            current = text[len("Function: "):].split("  (")[0]
            tables[current] = []
            inside = False
        elif text.startswith("------"):
            inside = True
        elif inside and not text.strip():
            inside = False
        elif inside:
            tables[current].append(int(text.split()[0]))
    return tables


def test_comprehension_table_stops_at_its_own_lines(scopes):
    path, script, tag = scopes
    if sys.version_info >= (3, 12):  # PEP 709: the comprehension is inlined in main
        name, want = "main", [tag["listcomp"] - 1, tag["listcomp"], tag["main-return"]]
    else:
        name, want = "<listcomp>", [tag["listcomp"]]
    proc = memlens("lines", path, "--function", name)
    assert proc.returncode == 0, proc.stderr
    tables = table_lines(proc.stdout)
    assert list(tables.values()) == [want], proc.stdout  # never other()'s lines
    rows = json.loads(memlens("lines", path, "--json", "--function", name).stdout)
    assert rows["functions"][0]["code_lines"] == want


def test_comprehension_name_means_the_users_own(scopes):
    path, script, tag = scopes
    if sys.version_info >= (3, 12):
        pytest.skip("3.12+ inlines comprehensions: no <listcomp> code objects")
    doc = json.loads(memlens("lines", path, "--json", "--function", "<listcomp>").stdout)
    # textwrap's comprehensions ran too; they are not what the user meant
    assert {f["file"] for f in doc["functions"]} == {script}
    assert {r["line"] for r in doc["lines"]} == {tag["listcomp"]}


def test_a_name_in_the_users_files_first(scopes):
    path, script, tag = scopes
    doc = json.loads(memlens("lines", path, "--json", "--function", "wrap").stdout)
    assert [(f["function"], f["file"]) for f in doc["functions"]] == [("wrap", script)]
    # the library's are still there for --file
    doc = json.loads(memlens("lines", path, "--json", "--function", "wrap",
                             "--file", "textwrap.py").stdout)
    assert doc["functions"] and all(f["file"].endswith("/textwrap.py") for f in doc["functions"])


def test_class_body_table_leaves_out_the_methods(scopes):
    path, script, tag = scopes
    proc = memlens("lines", path, "--function", "Holder")
    assert proc.returncode == 0, proc.stderr
    tables = table_lines(proc.stdout)
    assert list(tables) == ["Holder"], proc.stdout
    shown = tables["Holder"]
    assert tag["init-body"] not in shown  # __init__'s body is another code object
    assert {tag["class"], tag["class-data"], tag["def-init"], tag["class-more"]} <= set(shown)
    assert shown == sorted(shown) and max(shown) == tag["class-more"]


def test_function_table_has_the_def_and_body(scopes):
    path, script, tag = scopes
    tables = table_lines(memlens("lines", path, "--function", "other").stdout)
    assert tables == {"other": [tag["other"], tag["other"] + 1, tag["other"] + 2]}


def test_unknown_function_is_bad_input(scopes):
    path, script, tag = scopes
    proc = memlens("lines", path, "--function", "nosuch")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert "nosuch" in proc.stderr and proc.stdout == ""

"""`memlens heap SCRIPT` does not count memlens' own imports (docs/HEAP.md, step 5).

Ground truth: the census of a plain `python` process running the same
program, taken by the same engine loaded on its own (the `_engine`
extension from its file, without memlens' Python package: no memlens
module, no argparse, re, json...). Both processes start with `python -m`
(runpy's modules in both) and both have the `_engine` module; the plain
one's census runs at the end of the program, as `memlens heap`'s does.
"""
import importlib.util
import json
import os
import sys
import textwrap

import pytest

from conftest import memlens

REFERENCE = textwrap.dedent("""\
    import sys
    from importlib.util import module_from_spec, spec_from_file_location
    spec = spec_from_file_location("memlens._engine", sys.argv[1])
    engine = module_from_spec(spec)
    spec.loader.exec_module(engine)
    program = {"__name__": "__program__"}  # kept: the census is taken at the end
    exec(compile(sys.argv[2], "<string>", "exec"), program)
    del spec
    raw = engine.heap_snapshot(ids=False)
    rows = {}
    for tp, what, count, size in raw["rows"]:
        name = {"objects": engine.type_name(tp), "dict of class": "dict of " + engine.type_name(tp),
                "dict of module": "dict of module", "dict of type": "dict of type"}.get(what, what)
        rows[name] = rows.get(name, 0) + count
    import json
    print(json.dumps({"total_count": raw["count"], "total_bytes": raw["bytes"], "rows": rows}))
""")

# What the two censuses may differ by (measured on 3.10-3.13, see
# docs/HEAP.md step 5): `memlens heap -c pass` has about 300-400 objects and
# 30-40 KiB more (what memlens' frames hold on value stacks the interpreter
# does not show, the import system's caches of memlens' package folders,
# the class-to-subclass table's keys); a program importing modules memlens
# had imported has up to ~1,000 objects and 150 KiB fewer (modules that
# plain python loads and the program holds nothing of: shutil's
# `import bz2; del bz2`, collections' `keyword`).
OBJECT_MARGIN = 1500
BYTES_MARGIN = 200 * 1024
#: memlens' own imports when nothing is left out (3.11: ~15,000 objects):
#: the margin must stay well below it, or the test could not fail
LEFT_OUT_AT_LEAST = 5000


def reference(tmp_path, code):
    """Census of plain `python -m` running `code` (the _engine alone)."""
    import subprocess
    engine = importlib.util.find_spec("memlens._engine").origin
    (tmp_path / "mlref.py").write_text(REFERENCE)
    proc = subprocess.run([sys.executable, "-m", "mlref", engine, code], capture_output=True,
                          text=True, cwd=str(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def census(code, *flags, cwd=None):
    r = memlens("heap", "--json", *flags, "-c", code, cwd=cwd)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    doc["rows"] = {row["type"]: row["count"] for row in doc["types"]}
    return doc


PROGRAMS = {
    "pass": "pass",
    # the program imports modules memlens also imported: they are its own
    "argparse": "import argparse",
    # it keeps a function of a module only memlens imported (and the module)
    "kept": "import shutil as s\nX = s.copy",
    # it makes objects of its own
    "objects": "class Point:\n    pass\nKEEP = [Point() for _ in range(5000)]",
}


def snapshot_strings(tmp_path, code, name):
    """The edge names of --heapsnapshot: every key and attribute name of the
    objects in the census (a module's globals among them)."""
    out = tmp_path / name
    r = memlens("heap", "--heapsnapshot", str(out), "-c", code, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    return set(json.loads(out.read_text())["strings"])


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_census_is_plain_pythons(tmp_path, name):
    code = PROGRAMS[name]
    ref = reference(tmp_path, code)
    got = census(code, cwd=str(tmp_path))
    detail = "%s: memlens %d objects %d B, plain python %d objects %d B; modules %d vs %d" % (
        name, got["total_count"], got["total_bytes"], ref["total_count"], ref["total_bytes"],
        got["rows"].get("module"), ref["rows"].get("module"))
    if name in ("pass", "objects"):
        assert got["rows"]["module"] == ref["rows"]["module"], detail
    else:  # modules the program's imports load but hold nothing of: not counted
        assert ref["rows"]["module"] - 9 <= got["rows"]["module"] <= ref["rows"]["module"], detail
    # no instance of a memlens class, no dict of one
    assert not [t for t in got["rows"] if t.startswith(("memlens.", "dict of memlens."))], got["rows"]
    assert abs(got["total_count"] - ref["total_count"]) <= OBJECT_MARGIN, detail
    assert abs(got["total_bytes"] - ref["total_bytes"]) <= BYTES_MARGIN, detail
    for tp in ("function", "code", "type"):
        assert abs(got["rows"].get(tp, 0) - ref["rows"].get(tp, 0)) <= 150, (tp, detail)
    if name == "objects":
        assert got["rows"]["__main__.Point"] == 5000


def test_modules_the_program_imports_are_counted(tmp_path):
    """argparse (a memlens import) counts once the program imports it: its
    globals, its functions, and as many more modules as in plain python
    (but for one a module it imports holds nothing of, on 3.13)."""
    plain = [reference(tmp_path, PROGRAMS[n]) for n in ("pass", "argparse")]
    got = [census(PROGRAMS[n], cwd=str(tmp_path)) for n in ("pass", "argparse")]
    more_plain = plain[1]["rows"]["module"] - plain[0]["rows"]["module"]
    more_got = got[1]["rows"]["module"] - got[0]["rows"]["module"]
    assert more_plain >= 3  # argparse, and what it imports (re, gettext...)
    assert more_plain - 1 <= more_got <= more_plain, (more_got, more_plain)
    f_plain = plain[1]["rows"]["function"] - plain[0]["rows"]["function"]
    f_got = got[1]["rows"]["function"] - got[0]["rows"]["function"]
    assert f_plain > 100 and abs(f_got - f_plain) <= f_plain // 10, (f_got, f_plain)
    argparse_globals = {"ArgumentParser", "_ActionsContainer", "ZERO_OR_MORE"}
    assert argparse_globals <= snapshot_strings(tmp_path, PROGRAMS["argparse"], "a.heapsnapshot")
    assert not argparse_globals & snapshot_strings(tmp_path, "pass", "p.heapsnapshot")


def test_what_the_program_keeps_is_counted(tmp_path):
    """`import shutil as s; X = s.copy`: shutil (memlens imported it) is the
    program's, with its globals; without the program's reference it is not."""
    kept = snapshot_strings(tmp_path, PROGRAMS["kept"], "k.heapsnapshot")
    assert {"X", "s", "copyfileobj", "copytree"} <= kept
    assert not {"copyfileobj", "copytree"} & snapshot_strings(tmp_path, "pass", "p.heapsnapshot")


def test_what_memlens_left_out_is_its_imports(tmp_path):
    """The test can fail: without the exclusion (the program holds memlens'
    package, so all of it is the program's) the census is bigger by more
    than the margins."""
    ref = reference(tmp_path, "pass")
    got = census("import memlens.commands.heap, memlens.cli, argparse, json, shutil, threading, runpy",
                 cwd=str(tmp_path))
    assert got["total_count"] - ref["total_count"] >= LEFT_OUT_AT_LEAST
    assert got["rows"]["module"] > ref["rows"]["module"]


def test_heapsnapshot_has_no_memlens_globals(tmp_path):
    """--heapsnapshot names edges by keys and attributes: memlens' own globals
    are no edge unless the program holds memlens' module."""
    names = {"_leave_out_own_imports", "_note_memlens_modules", "_own_objects_out_of_the_census"}
    assert not names & snapshot_strings(tmp_path, "pass", "a.heapsnapshot")
    assert names <= snapshot_strings(tmp_path, "import memlens.commands.heap, memlens.runner as r",
                                     "b.heapsnapshot")


def test_diff_and_save_leave_it_out_too(tmp_path):
    """--diff's census before the program leaves memlens' part out as the one
    at the end does (were only one of them to, the growth of -c pass would
    be about -10,000 objects), and --save's file holds the census printed.
    What differs: memlens' frames at the two moments (the value stacks the
    interpreter does not show hold other temporaries)."""
    out = tmp_path / "pass.mlheap"
    got = census("pass", "--diff", "--save", str(out), cwd=str(tmp_path))
    growth = {row["type"]: row["count"] for row in got["growth"]}
    assert abs(sum(growth.values())) <= 500, growth
    for tp in ("module", "function", "code", "type"):
        assert abs(growth.get(tp, 0)) <= 40, growth
    header, _, body = out.read_text().partition("\n")
    assert header == "memlens-heap 1"
    saved = json.loads(body)
    assert (saved["total_count"], saved["total_bytes"]) == (got["total_count"], got["total_bytes"])

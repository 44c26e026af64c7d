"""`memlens heap`: runs the program like python, prints the census at its end.

The CLI is driven through memlens.cli.main with only the heap command
registered, so this file does not depend on the other issues' commands
being present in this checkout."""
import json
import subprocess
import sys
import textwrap

DRIVER = ("import sys, memlens.cli as c; c.COMMANDS[:] = ['heap']; "
          "sys.exit(c.main(sys.argv[1:]))")


def memlens_heap(*args, cwd=None):
    return subprocess.run([sys.executable, "-c", DRIVER, "heap"] + list(args), cwd=cwd,
                          capture_output=True, text=True, timeout=300)


PROGRAM = textwrap.dedent("""
    import json, sys
    class Cargo:
        __slots__ = ("id", "name")
        def __init__(self, i):
            self.id = i
            self.name = "cargo-%d" % i
    cargo = [Cargo(i) for i in range(4321)]
    print(json.dumps({"argv": sys.argv, "path0": sys.path[0], "name": __name__}))
    sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
""")


def test_script_runs_like_python_and_reports(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    out = tmp_path / "report.json"
    r = memlens_heap("--json", "--diff", "--dicts", "-o", str(out), str(script), "7", "x")
    assert r.returncode == 7, r.stderr
    seen = json.loads(r.stdout.strip().splitlines()[-1])
    assert seen == {"argv": [str(script), "7", "x"], "path0": str(tmp_path), "name": "__main__"}
    doc = json.loads(out.read_text())
    assert set(doc) == {"memlens", "capture", "program", "total_bytes", "total_count", "types",
                        "dicts", "growth"}
    assert doc["capture"] is None and doc["program"]["argv"] == [str(script), "7", "x"]
    types = {t["type"]: t for t in doc["types"]}
    assert types["__main__.Cargo"]["count"] == 4321
    growth = {g["type"]: g for g in doc["growth"]}
    assert growth["__main__.Cargo"]["count"] == 4321
    assert set(doc["dicts"][0]) == {"kind", "size", "count", "bytes"}
    assert doc["total_count"] == sum(t["count"] for t in doc["types"])


def test_text_report_and_exception_exit_status(tmp_path):
    script = tmp_path / "boom.py"
    script.write_text("keep = ['z' * 5000 for _ in range(10)]\nraise ValueError('boom')\n")
    r = memlens_heap(str(script))
    assert r.returncode == 1
    assert "ValueError: boom" in r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("memlens heap: ")
    assert lines[1].split() == ["type", "count", "bytes", "average", "share"]


def test_module_and_code(tmp_path):
    (tmp_path / "mymod.py").write_text(PROGRAM)
    r = memlens_heap("--json", "-m", "mymod", "3", cwd=str(tmp_path))
    assert r.returncode == 3, r.stderr
    # with --json, standard output is the JSON alone: the program's own goes to stderr
    first = r.stderr.splitlines()[0]
    assert json.loads(first)["argv"][1:] == ["3"]
    assert json.loads(first)["path0"] == str(tmp_path)
    assert {t["type"]: t["count"] for t in json.loads(r.stdout)["types"]}["__main__.Cargo"] == 4321
    r = memlens_heap("--json", "-c", "import sys; kept = [bytes(1000) for _ in range(77)]; print(sys.argv)", "a")
    assert r.returncode == 0
    assert r.stderr.splitlines()[0] == "['-c', 'a']"
    assert {t["type"]: t["count"] for t in json.loads(r.stdout)["types"]}["bytes"] >= 77


def test_bad_input_one_line_exit_2(tmp_path):
    for args in (["nothere.py"], [], ["-m", "no_such_module_xyz"],
                 ["--limit", "many", "x.py"]):
        r = memlens_heap(*args, cwd=str(tmp_path))
        assert r.returncode == 2, (args, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)
        assert "Traceback" not in r.stderr


def test_args_after_c_belong_to_the_program(tmp_path):
    # as `python -c CODE -m x`: everything after the code is the program's argv
    r = memlens_heap("--json", "-c", "import sys; print(sys.argv)", "-m", "x", cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines()[0] == "['-c', '-m', 'x']"


def test_census_holds_none_of_memlens_command_line_objects(tmp_path):
    """memlens' own objects are not the program's: the census taken when the
    program ends holds no argparse parser, action or namespace and no memlens
    runner object (the program imports neither argparse nor memlens)."""
    prog = tmp_path / "plain.py"
    prog.write_text("keep = [bytearray(10) for _ in range(1234)]\n")
    r = memlens_heap("--json", "--top", "0", str(prog))
    assert r.returncode == 0, r.stderr
    rows = {row["type"]: row for row in json.loads(r.stdout)["types"]}
    assert rows["bytearray"]["count"] >= 1234  # the program's own objects are there
    mine = sorted(t for t in rows if t.split(" of ")[-1].startswith(("argparse.", "memlens.")))
    assert mine == [], mine

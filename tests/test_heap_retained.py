"""`memlens heap --retained`: retained sizes, top dominators and leak
suspects from the command line, text and --json, checked against what
memlens.retained_size says inside the same program."""
import json
import subprocess
import sys
import textwrap

DRIVER = ("import sys, memlens.cli as c; c.COMMANDS[:] = ['heap']; "
          "sys.exit(c.main(sys.argv[1:]))")


def memlens_heap(*args, cwd=None):
    return subprocess.run([sys.executable, "-c", DRIVER, "heap"] + list(args), cwd=cwd,
                          capture_output=True, text=True, timeout=300)


# 10,000 Lesson objects (each with a 300-character str) in a module-level
# dict; the program measures that dict's retained size itself and prints it
PROGRAM = textwrap.dedent("""
    import sys
    import memlens
    class Lesson:
        def __init__(self, i):
            self.i = i
            self.text = "lesson text " * 25 + str(i)
    CACHE = {i: Lesson(i) for i in range(10000)}
    sys.stderr.write("RETAINED %d\\n" % memlens.retained_size(CACHE))
    print("the program's own output")
""")


def _program_retained(stderr):
    line = [ln for ln in stderr.splitlines() if ln.startswith("RETAINED ")]
    return int(line[0].split()[1])


def test_json_has_retained_dominators_and_suspects(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    r = memlens_heap("--retained", "--json", str(script))
    assert r.returncode == 0, r.stderr
    assert "the program's own output" in r.stderr  # --json: program output to stderr
    doc = json.loads(r.stdout)
    types = {t["type"]: t for t in doc["types"]}
    lesson = types["__main__.Lesson"]
    assert lesson["count"] == 10000
    # a Lesson retains itself and its str: more than its own bytes
    assert lesson["retained"] >= lesson["bytes"] + types["str"]["bytes"] // 100
    assert all("retained" in t for t in doc["types"])
    # the biggest dominator is __main__'s globals; its accumulation point is
    # CACHE, whose retained size is what retained_size(CACHE) said
    top = doc["dominators"][0]
    assert top["name"] == "dict of module __main__"
    assert top["accumulation"] == "dict (no owner)"
    assert top["accumulation_retained"] == _program_retained(r.stderr)
    assert top["accumulation_retained"] >= lesson["retained"]
    assert any(h["type"] == "__main__.Lesson" and h["count"] == 10000 for h in top["holds"])
    # suspects: that module dict (one object), and the class Lesson with
    # CACHE as the accumulation point
    sus = doc["suspects"]
    assert sus["threshold"] == 0.10
    assert sus["objects"][0]["name"] == "dict of module __main__"
    classes = {c["type"]: c for c in sus["classes"]}
    assert classes["__main__.Lesson"]["count"] == 10000
    assert classes["__main__.Lesson"]["accumulation"] == "dict (no owner)"
    assert classes["__main__.Lesson"]["retained"] == lesson["retained"]
    # the str attributes are part of the Lesson suspect, not a second one
    assert "str" not in classes


def test_text_report(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    r = memlens_heap("--retained", "--top", "5", str(script))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.startswith("the program's own output\n")
    header = [ln for ln in out.splitlines() if ln.startswith("type ")][0]
    assert header.split()[-1] == "retained"
    assert "dict of module __main__ retains " in out
    assert "10,000 __main__.Lesson" in out
    suspects = out[out.index("leak suspects: classes"):]
    assert "10,000 __main__.Lesson retain " in suspects
    assert "accumulation point: dict (no owner) holding " in suspects


def test_without_retained_nothing_changes(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    r = memlens_heap("--json", str(script))
    doc = json.loads(r.stdout)
    assert "dominators" not in doc and "suspects" not in doc
    assert all("retained" not in t for t in doc["types"])


def test_hostile_class_names_are_escaped_and_share_is_settable(tmp_path):
    script = tmp_path / "evil.py"
    script.write_text(textwrap.dedent("""
        Evil = type("Evil\\x1b[2J\\x07", (), {})
        KEEP = []
        for i in range(3000):
            e = Evil()
            e.payload = "p" * 400 + str(i)
            KEEP.append(e)
    """))
    r = memlens_heap("--retained", "--suspect-share", "5", str(script))
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "leak suspects: classes whose instances retain >= 5% together" in r.stdout
    line = [ln for ln in r.stdout.splitlines() if "3,000 __main__.Evil" in ln and "retain " in ln]
    assert line, r.stdout
    bad = memlens_heap("--retained", "--suspect-share", "0", str(script))
    assert bad.returncode == 2 and "percentage" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_own_sizeof_counts_its_c_struct_only(tmp_path):
    """A class whose __sizeof__ says 10,000: sys.getsizeof and the census
    count 10,000 plus the GC header; the graph (retained_size) counts the
    C struct, object.__sizeof__, plus the same header (docs/WHY.md)."""
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent("""
        import sys
        import memlens
        class Big:
            __slots__ = ("pad",)
            def __sizeof__(self):
                return 10000
        b = Big()
        b.pad = None
        header = sys.getsizeof(b) - b.__sizeof__()
        c_part = object.__sizeof__(b) + header
        snap = memlens.heap()
        print(sys.getsizeof(b), c_part, memlens.retained_size(b), snap.bytes_of("__main__.Big"),
              snap.count_of("__main__.Big"))
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    getsizeof, c_part, retained, census_bytes, census_count = map(int, proc.stdout.split())
    assert getsizeof > 10000 and census_count == 1
    assert census_bytes == getsizeof  # the census calls __sizeof__
    assert retained == c_part < 100  # the graph does not: C struct + header

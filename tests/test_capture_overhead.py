"""What a capture must not add to the program's own work (the perf task of
session 7: the default capture had become slower since session 3).

Speed itself is measured in bench/ (BENCHMARKS.md, "Capture overhead"), not
here; these tests check the structural facts behind it against what the
program itself can see.
"""
import json
import subprocess
import sys
import textwrap

import pytest

HAVE_NUMPY = subprocess.run([sys.executable, "-c", "import numpy"], capture_output=True).returncode == 0

# The program adds its own audit hook first: CPython reports every hook added
# after it as a "sys.addaudithook" event. Then it starts a capture, imports
# NumPy (if present: memlens must then wrap NumPy's data handler) and makes
# arrays. memlens used to watch imports with an audit hook of its own, which
# made CPython build an argument tuple for every audited call (id(), which
# copy.deepcopy calls per object, among them) for the rest of the process.
PROGRAM = textwrap.dedent('''\
    import json, sys
    added = []
    sys.addaudithook(lambda event, args: added.append(event) if event == "sys.addaudithook" else None)
    from memlens import _engine
    _engine.start(sys.argv[1], True, json.dumps({"script": __file__, "argv": [__file__]}))
    hooked = None
    if sys.argv[2] == "numpy":
        import numpy as np
        keep = np.ones(100_000)
        hooked = _engine.numpy_hooked()
    [id(o) for o in range(1000)]
    _engine.stop()
    print(json.dumps({"added": len(added), "hooked": hooked}))
''')


@pytest.mark.parametrize("numpy", [False, pytest.param(True, marks=pytest.mark.skipif(
    not HAVE_NUMPY, reason="numpy is in the test extras; not installed here"))], ids=["plain", "numpy"])
def test_capture_adds_no_audit_hook(tmp_path, numpy):
    prog = tmp_path / "prog.py"
    prog.write_text(PROGRAM)
    out = subprocess.run([sys.executable, str(prog), str(tmp_path / "c.mlens"), "numpy" if numpy else "-"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["added"] == 0, got
    if numpy:  # NumPy imported after the start: its data handler is wrapped all the same
        assert got["hooked"] is True, got

"""A seeded fuzz test of the reader through every report command.

Mutations of real captures (one written by `memlens run`, one built with
tests/capfile.py holding every record kind), raw and compressed: byte flips,
cuts, deleted and repeated spans, huge varints, hostile header JSON. Each mutated file goes
through every report command, in-process in one driver process that runs
under an address-space and a CPU-time limit (a crash, a hang or a runaway
allocation fails the test and names the case). Every run must end with
status 0, or 2 and exactly one line on stderr; never a traceback or an
`internal error`.
"""
import json
import os
import random
import subprocess
import sys
import textwrap
import zlib

import pytest

from capfile import MEM, OBJ, RAW, Capture

SEED = 20261129
MUTATIONS = 250          # per base capture
ZMAGIC = b"MLENSZ\0\n"
COMMANDS = ["summary", "types", "leaks", "lines", "timeline", "plot"]
SANITIZED = "asan" in os.environ.get("LD_PRELOAD", "")

DRIVER = textwrap.dedent(r'''
    import contextlib, io, json, os, resource, sys
    cases, commands, outdir, progress, limit_as = sys.argv[1:6]
    if int(limit_as):
        resource.setrlimit(resource.RLIMIT_AS, (int(limit_as), int(limit_as)))
    resource.setrlimit(resource.RLIMIT_CPU, (300, 300))
    from memlens import cli
    results = []
    names = sorted(os.listdir(cases))
    for i, name in enumerate(names):
        path = os.path.join(cases, name)
        for cmd in commands.split(","):
            with open(progress, "w") as f:
                f.write("%s %s" % (name, cmd))
            args = [cmd, path]
            if cmd == "plot":
                args += ["-o", os.path.join(outdir, "p%d.svg" % i)]
            if cmd == "lines":
                args += ["--file", "/tmp/app.py"]
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    rc = cli.main(args)
                except SystemExit as exc:
                    rc = exc.code
                except BaseException as exc:  # reported, not raised: the test says which case
                    rc = "raised %s: %s" % (type(exc).__name__, exc)
            results.append([name, cmd, rc, err.getvalue()])
            for f in os.listdir(outdir):
                os.unlink(os.path.join(outdir, f))
    print(json.dumps(results))
''')


def synthetic():
    """Every record kind: two threads, definitions, allocations in every
    domain, frees near and far, a reuse, samples, marks, a note, a fork."""
    cap = Capture()
    cap.thread_def(1, 100, "main")
    cap.thread_def(2, 101, "worker")
    cap.switch_thread(1)
    a = cap.site("/tmp/app.py", "load", 10)
    b = cap.site("/tmp/app.py", "parse", 20, parent=a)
    t1, t2 = cap.type_def("list"), cap.type_def("<dict keys>", 2)
    seqs = []
    for i in range(120):
        cap.time(50)
        seqs.append(cap.alloc(a if i % 3 else b, (0, t1, t2)[i % 3], 16 + i * 8, (RAW, MEM, OBJ)[i % 3]))
        if i % 5 == 4:
            cap.free(seqs[i - 2])
        if i == 60:
            cap.switch_thread(2)
            cap.context_stack(b)
            cap.reuse(t1)
            cap.memory(1 << 20, 4000)
            cap.mark(1, "load")
            cap.note(1, "a warning")
            cap.fork(4242)
            cap.free(seqs[0])
            cap.mark(2, "load")
            cap.switch_thread(1)
    cap.trailer()
    return cap.data()


def recorded(tmp_path):
    """A capture written by `memlens run` (compressed), and its raw form."""
    prog = tmp_path / "prog.py"
    prog.write_text(textwrap.dedent("""\
        import threading
        def build(n):
            return [{"i": i, "s": str(i)} for i in range(n)]
        keep = build(300)
        t = threading.Thread(target=build, args=(200,))
        t.start(); t.join()
        """))
    out = tmp_path / "rec.mlens"
    r = subprocess.run([sys.executable, "-m", "memlens", "run", "-q", "-o", str(out), str(prog)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    if data.startswith(ZMAGIC):
        data = zlib.decompress(data[len(ZMAGIC):])
    return data


# header metadata a hostile file may carry: not an object, nested deep, or
# the keys memlens reads holding the wrong types
HOSTILE_META = [b"[]", b"1", b'"x"', b"null", b"[" * 5000 + b"]" * 5000,
                b'{"a": ' + b"[" * 300 + b"]" * 300 + b"}", b'{"argv": 5}', b'{"argv": [1]}',
                b'{"script": 7}', b'{"python": {}}', b"{", rb'{"argv": ["\u00e9\udcff"]}']


def mutate(rnd, data):
    data = bytearray(data)
    kind = rnd.randrange(7)
    if kind == 6 and data.startswith(b"MLENS\0\r\n"):  # the header's JSON replaced
        n = int.from_bytes(data[12:16], "little")
        meta = rnd.choice(HOSTILE_META)
        data[16:16 + n] = meta
        data[12:16] = len(meta).to_bytes(4, "little")
    elif kind <= 1 or kind == 6:  # byte flips (the header's JSON included)
        for _ in range(rnd.randint(1, 4)):
            at = rnd.randrange(len(data))
            data[at] = rnd.randrange(256) if kind == 0 else data[at] ^ (1 << rnd.randrange(8))
    elif kind == 2:  # cut
        del data[rnd.randrange(len(data)):]
    elif kind == 3:  # a span deleted
        at = rnd.randrange(len(data))
        del data[at:at + rnd.randint(1, 64)]
    elif kind == 4:  # a span repeated
        at = rnd.randrange(len(data))
        span = data[at:at + rnd.randint(1, 64)]
        data[at:at] = span * rnd.randint(1, 8)
    else:  # a huge number where a record starts or inside one
        at = rnd.randrange(16, len(data))
        data[at:at] = rnd.choice([b"\xff" * 9 + b"\x01", b"\xff\xff\xff\xff\x0f",
                                  b"\x80" * 11, b"\x0b\x01\xff\xff\xff\x7f"])
    return bytes(data)


def test_fuzz_every_report_command(tmp_path):
    rnd = random.Random(SEED)
    cases = tmp_path / "cases"
    cases.mkdir()
    n = 0
    for base_name, base in (("syn", synthetic()), ("rec", recorded(tmp_path))):
        for k in range(MUTATIONS):
            m = mutate(rnd, base)
            form = rnd.randrange(4)
            if form == 0:    # compressed after the mutation: it reaches the decoder
                m = ZMAGIC + zlib.compress(m, 1)
            elif form == 1:  # the container itself mutated
                m = mutate(rnd, ZMAGIC + zlib.compress(base, 1))
            (cases / ("%s-%03d-%d.mlens" % (base_name, k, form))).write_bytes(m)
            n += 1
    out = tmp_path / "out"
    out.mkdir()
    progress = tmp_path / "progress"
    limit_as = 0 if SANITIZED else 2 << 30
    r = subprocess.run([sys.executable, "-c", DRIVER, str(cases), ",".join(COMMANDS), str(out),
                        str(progress), str(limit_as)], capture_output=True, text=True, timeout=600)
    where = progress.read_text() if progress.exists() else "?"
    assert r.returncode == 0, "driver died (%d) at case %s: %s" % (r.returncode, where, r.stderr[-2000:])
    results = json.loads(r.stdout)
    assert len(results) == n * len(COMMANDS)
    outcomes = {0: 0, 2: 0}
    bad = []
    for name, cmd, rc, err in results:
        lines = err.splitlines()
        ok = rc in (0, 2) and "Traceback" not in err and "internal error" not in err
        if rc == 2:
            ok = ok and len(lines) == 1
        if not ok:
            bad.append((name, cmd, rc, err[-300:]))
        else:
            outcomes[rc] += 1
    assert not bad, bad[:5]
    # the mutations must reach the decoder and find both outcomes
    assert outcomes[0] > n and outcomes[2] > n

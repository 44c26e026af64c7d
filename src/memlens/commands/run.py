"""memlens run: run a program with the capture engine recording every allocation."""
import argparse
import os
import sys
import time

from memlens import __version__, outfile, runner
from memlens.errors import UsageError

# memlens' own package: its frames are never roots of the heap at exit
_OWN = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

USAGE = "memlens run [-o FILE] [--force] [-q] [--max-frames N] [--interval MS] [--follow-fork] " \
        "[--exact] [--native] [--native-stacks] [--no-compress] [--heap-at-exit|--no-heap-at-exit] [--no-gc-at-exit] [--heap-on SIGNAL] (SCRIPT | -m MODULE | -c CODE) [ARGS...]"


def _options_parser():
    from memlens.cli import Parser
    p = Parser(prog="memlens run", usage=USAGE,
               description="Run a Python program and record every allocation, with its Python "
                           "stack and object type, into a capture file. The program behaves as "
                           "under `python`: same output, argv and exit status.")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="capture file (default: memlens-<script>-<pid>.mlens)")
    p.add_argument("-f", "--force", action="store_true",
                   help="replace an existing capture file (a symbolic link is replaced, its "
                        "target never written; also the children's FILE.<pid>)")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary on stderr at the end")
    p.add_argument("--max-frames", type=int, default=128, metavar="N",
                   help="Python frames kept per stack, innermost first (default 128)")
    p.add_argument("--interval", type=int, default=10, metavar="MS",
                   help="milliseconds between RSS/heap samples and file flushes (default 10)")
    p.add_argument("--follow-fork", action="store_true",
                   help="a forked child records into FILE.<pid> (default: children are not recorded)")
    p.add_argument("--exact", action="store_true",
                   help="turn CPython's free lists off while recording, so that alive counts "
                        "of float, tuple, list, dict... are exact (slower: every such object "
                        "is made and freed through the allocator; see docs/REPORTS.md)")
    p.add_argument("--native", action="store_true",
                   help="also record the C allocator calls (malloc, calloc, realloc, free, "
                        "posix_memalign, aligned_alloc, memalign, valloc, anonymous mmap/munmap/"
                        "mremap) of extension modules and shared libraries, each at the Python "
                        "line that caused it, typed '<native: LIBRARY>' (see docs/NATIVE.md)")
    p.add_argument("--native-stacks", action="store_true",
                   help="--native, and each native allocation's native frames too (the C "
                        "functions that called the allocator, up to the Python frame that "
                        "called them), symbolised when a report reads the capture: shown "
                        "by tree, flamegraph and export (see docs/NATIVE.md)")
    p.add_argument("--no-compress", action="store_true",
                   help="write the capture raw (by default it is compressed as it is written, "
                        "in the sampler thread)")
    p.add_argument("--heap-at-exit", action="store_true",
                   help="after the program's last line, walk the live heap's reference graph: name "
                        "the buffers still allocated by their owners and also find what holds each "
                        "leak (`memlens leaks`, `memlens why`) and how much its holder retains; "
                        "costs ~0.21-0.44 s per million objects alive at the end (BENCHMARKS.md, "
                        "\"Heap at exit\")")
    p.add_argument("--no-heap-at-exit", action="store_true",
                   help="do not walk the live heap at the end; by default memlens run walks it "
                        "once to name the buffers still allocated by their owners (`list (items)`, "
                        "`bytearray (data)`: ~0.03-0.14 s per million objects alive at the end)")
    p.add_argument("--no-gc-at-exit", action="store_true",  # gcexit
                   help="do not find, at exit, the blocks that are cyclic garbage "
                        "a gc.collect() would free (`memlens leaks` then does not split them out); "
                        "the pass costs ~0.1-0.25 s per million objects the collector tracks "
                        "(BENCHMARKS.md)")
    p.add_argument("--heap-on", metavar="SIGNAL",
                   help="also snapshot the heap's owners and holders into the capture whenever "
                        "the process gets SIGNAL (SIGUSR1 or SIGUSR2)")
    return p


VALUE_OPTIONS = ("-o", "--output", "--max-frames", "--interval", "--heap-on")
HEAP_SIGNALS = ("SIGUSR1", "SIGUSR2")
RAW_ARGV = True  # memlens.cli passes argv untouched: the program's args are its own


def add_parser(sub):
    p = sub.add_parser("run", help="run a program and record its allocations", add_help=False,
                       usage=USAGE)
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p.set_defaults(func=run)


def parse(argv):
    parser = _options_parser()
    ns, program = runner.parse_command_line(argv, parser, VALUE_OPTIONS)
    if not 1 <= ns.max_frames <= 4096:
        parser.error("--max-frames must be between 1 and 4096")
    if not 1 <= ns.interval <= 60000:
        parser.error("--interval must be between 1 and 60000 ms")
    if ns.heap_on is not None:
        name = ns.heap_on.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        if name not in HEAP_SIGNALS:
            parser.error("--heap-on takes SIGUSR1 or SIGUSR2, not %r" % ns.heap_on)
        ns.heap_on = name
    return ns, program


def _json(obj):
    """json.dumps of the metadata (dicts, lists, str, int, bool, None), without
    importing the json package at start-up (it imports re: ~8 ms per run)."""
    from _json import encode_basestring_ascii as quote
    if isinstance(obj, dict):
        return "{" + ", ".join("%s: %s" % (quote(str(k)), _json(v)) for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ", ".join(_json(v) for v in obj) + "]"
    if isinstance(obj, str):
        return quote(obj)
    if obj is None or isinstance(obj, bool):
        return {None: "null", True: "true", False: "false"}[obj]
    if isinstance(obj, int):
        return str(obj)
    raise TypeError("metadata value %r" % (obj,))


def _platform():
    """As platform.platform() says it, without its `uname -p` subprocess."""
    u = os.uname()
    return "%s-%s-%s" % (u.sysname, u.release, u.machine)


def metadata(program, argv_memlens):
    return {
        "memlens": __version__,
        "python": sys.version.split()[0],
        "implementation": "CPython" if sys.implementation.name == "cpython" else sys.implementation.name,
        "platform": _platform(),
        "pid": os.getpid(),
        "argv": [program.target if program.kind == "script" else
                 ("-m" if program.kind == "module" else "-c")] +
                ([program.target] if program.kind != "script" else []) + program.args,
        "script": os.path.abspath(program.target) if program.kind == "script" else None,
        "module": program.target if program.kind == "module" else None,
        "command": ["memlens", "run"] + list(argv_memlens),
        "start_time_us": int(time.time() * 1e6),
    }


def run(args):
    from memlens import _engine
    ns, program = parse(args.argv)
    if program.kind == "script" and not os.path.isfile(program.target):
        raise UsageError("can't open file %r: No such file or directory" % program.target)
    path = ns.output or "memlens-%s-%d.mlens" % (program.name, os.getpid())
    # the engine creates it with O_EXCL (no separate exists-check: see
    # memlens/outfile.py); absolute, so a program's chdir moves nothing
    abspath = os.path.abspath(path)
    meta = metadata(program, args.argv)
    if ns.native_stacks:
        ns.native = True  # --native-stacks implies --native
    meta["options"] = {"max_frames": ns.max_frames, "interval_ms": ns.interval,
                       "follow_fork": ns.follow_fork, "exact": ns.exact,
                       "native": ns.native, "native_stacks": ns.native_stacks,
                       "heap_at_exit": ns.heap_at_exit and not ns.no_heap_at_exit,
                       "owners_at_exit": not ns.heap_at_exit and not ns.no_heap_at_exit,
                       "heap_on": ns.heap_on}
    pid = os.getpid()
    state = {"started": False, "child_recording": False}

    def start():
        if ns.native:
            try:
                _engine.native_enable(stacks=ns.native_stacks)
            except OSError as exc:
                raise UsageError("--native: the loaded libraries could not be patched: %s"
                                 % exc.strerror) from None
        # memlens' own start-up (argparse, imports) leaves cyclic garbage the
        # program's first collection would count and free as its own: gone
        # now, before the program runs and before collections are recorded
        import gc
        gc.collect()
        try:
            _engine.start(abspath, force=ns.force, meta_json=_json(meta), max_frames=ns.max_frames,
                          follow_fork=ns.follow_fork, sample_ms=ns.interval,
                          stop_code=runner.ENTRY_CODE, compress=0 if ns.no_compress else 1,
                          exact=ns.exact)
        except OSError as exc:
            raise UsageError(outfile.message(path, exc, ns.force)) from None
        state["started"] = True
        os.register_at_fork(after_in_child=after_fork_child)
        if ns.heap_on:
            import signal
            signal.signal(getattr(signal, ns.heap_on), _heap_on_signal)

    def after_fork_child():
        """In a forked child: with --follow-fork, its capture FILE.<pid> is
        created as FILE was (O_EXCL; replaced only with --force)."""
        try:
            state["child_recording"] = _engine._after_fork_child()
        except OSError as exc:
            state["child_recording"] = False
            child = "%s.%d" % (path, os.getpid())
            sys.stderr.write("memlens: warning: process %d (forked) is not recorded: %s\n"
                             % (os.getpid(), outfile.message(child, exc, ns.force)))

    def stop():
        if not state["started"]:
            return None
        state["started"] = False
        return _engine.stop()

    def finish_capture(stats):
        """Summary, then compression if the engine could not compress while
        the program ran (no zlib to load); in a forked child, its own
        capture file (with --follow-fork)."""
        mine = os.getpid() == pid
        target = abspath if mine else "%s.%d" % (abspath, os.getpid())
        if mine and not ns.quiet:
            _print_summary(path, abspath, stats)
        if (not ns.no_compress and not stats.get("compressed") and os.path.exists(target)
                and (mine or state["child_recording"])):
            try:
                from memlens import capfile
                capfile.compress(target)
            except OSError as exc:
                if mine:
                    sys.stderr.write("memlens: capture left uncompressed: %s\n" % exc)

    def end(outcome):
        if state["started"] and not ns.no_gc_at_exit:  # gcexit: cyclic garbage not yet collected (docs/GC.md)
            _engine.gc_at_exit()
        if state["started"] and not ns.no_heap_at_exit:
            # before the interpreter tears the modules down; by default the
            # buffers' owners only (kind 4: skipped when the program took a
            # snapshot, whose holders the reports then keep)
            _engine.exit_snapshot(1 if ns.heap_at_exit else 4, _OWN)
        stats = stop()
        if stats is not None:
            finish_capture(stats)

    def on_os_exit():
        stats = stop()
        if stats is not None:
            finish_capture(stats)

    outcome = runner.run(program, on_start=start, on_end=end, on_os_exit=on_os_exit)
    return runner.finish(outcome)


def _heap_on_signal(signum, frame):
    """--heap-on: a snapshot of the heap's owners and holders (between two
    bytecodes of the main thread, where Python runs signal handlers)."""
    from memlens import _engine
    _engine.exit_snapshot(3, _OWN)


def _print_summary(path, abspath, stats):
    out = sys.stderr
    try:
        from memlens import reports
        data = reports.summary(abspath, top=3)
    except Exception as exc:  # the program ran; the summary must never hide its status
        out.write("memlens: capture written to %s (summary unavailable: %s)\n" % (path, exc))
    else:
        reports.print_short_summary(data, path, file=out)
    if stats.get("tracer_lost"):
        out.write("memlens: warning: another tool replaced the object-creation tracer; "
                  "free-list reuse was not fully counted\n")
    if stats.get("bytes_lost"):
        out.write("memlens: warning: the capture could not be written past %s (disk full?): it "
                  "ends early; %d bytes of records were lost\n"
                  % (path, stats["bytes_lost"]))
    if stats.get("dropped"):
        out.write("memlens: warning: %s events were dropped (out of memory)\n"
                  % "{:,}".format(stats["dropped"]))

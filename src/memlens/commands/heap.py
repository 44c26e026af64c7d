"""`memlens heap`: run a program, then show what its heap holds when it ends.

    memlens heap [--json] [--dicts] [--diff] [--retained [--suspect-share P]] [-o FILE]
                 [--top N] [--heapsnapshot OUT] (SCRIPT | -m MODULE | -c CODE) [ARGS...]

The program runs in this process as `python SCRIPT ARGS...` would run it
(same sys.argv, sys.path[0], __main__, output and exit status). When it
returns, raises or calls sys.exit, and before the interpreter tears down,
memlens walks the heap and prints the table; memlens then exits with the
program's status. What only memlens holds (the modules it imported to run
the program, its frames) is left out of every census (docs/HEAP.md, step 5). --diff also takes a census just before the program
starts and shows the growth. --heapsnapshot OUT also writes the heap at
that moment as a Chrome DevTools .heapsnapshot (docs/WHY.md). --retained
adds retained sizes: a retained column, the objects retaining the most and
Eclipse MAT's leak suspects (docs/WHY.md). With --json (and no -o) standard output holds
the JSON object only: the program's own standard output goes to standard
error.
"""
import argparse
import os
import sys

from memlens import outfile, runner
from memlens.commands import _common
from memlens.errors import UsageError
from memlens.fmt import dump_json

USAGE = ("memlens heap [--json] [--dicts] [--diff] [--retained [--suspect-share P]] [-o FILE [-f]] "
         "[--save FILE.mlheap] [--top N] [--heapsnapshot OUT] (SCRIPT | -m MODULE | -c CODE) [ARGS...]")
VALUE_OPTIONS = ("-o", "--output", "--top", "--limit", "--save", "--heapsnapshot", "--suspect-share")


def _suspect_share(text):
    try:
        p = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text) from None
    if not 1 <= p <= 100:
        raise argparse.ArgumentTypeError("%r is not a percentage (1-100)" % text)
    return p
RAW_ARGV = True  # memlens.cli passes argv untouched: the program's args are its own


def _options_parser():
    from memlens.cli import Parser
    p = Parser(prog="memlens heap", usage=USAGE,
               description="Run SCRIPT (or -m MODULE, or -c CODE) in this process and, when it "
                           "ends, print every live object counted by type: count, bytes, "
                           "average, share (what only memlens' own imports hold is left out). Exits "
                           "with the program's exit status.")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of tables (without -o, the program's "
                        "standard output goes to standard error)")
    p.add_argument("--dicts", action="store_true", help="add the dicts table (key kind, size)")
    p.add_argument("--diff", action="store_true",
                   help="also show growth between the program's start and its end")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the report to FILE, a new file, instead of standard output")
    p.add_argument("-f", "--force", action="store_true",
                   help="replace an existing -o FILE (a symbolic link is replaced, its target "
                        "never written)")
    p.add_argument("--save", metavar="FILE.mlheap",
                   help="also save the census (types, dicts) to FILE.mlheap, a new file, for "
                        "`memlens compare a.mlheap b.mlheap` (-f replaces it)")
    p.add_argument("--top", type=_common.count_arg, default=30, metavar="N",
                   help="rows per table in text output (default 30; 0 = all)")
    p.add_argument("--limit", type=_common.count_arg, dest="top", help=argparse.SUPPRESS)
    p.add_argument("--retained", action="store_true",
                   help="also compute retained sizes (dominator tree of the heap graph): a retained "
                        "column, the objects retaining the most, and leak suspects")
    p.add_argument("--suspect-share", type=_suspect_share, default=10.0, metavar="P",
                   help="with --retained: a leak suspect retains at least P percent of the heap, "
                        "alone (one object) or with the other instances of its class (default 10)")
    p.add_argument("--heapsnapshot", metavar="OUT",
                   help="also write the heap as a Chrome DevTools .heapsnapshot to OUT, a new file "
                        "(-f replaces it); open it in DevTools' Memory panel")
    return p


def add_parser(subparsers):
    p = subparsers.add_parser("heap", help="run a program and show its live heap by type when it ends",
                              add_help=False, usage=USAGE)
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p.set_defaults(func=run)
    return p


def _report(ns, before, after, argv, stdout, reserved=None):
    from memlens import reports
    limit = None if ns.top <= 0 else ns.top
    out = stdout if reserved is None else outfile.ReservedText(reserved)
    try:
        if ns.json:
            doc = reports.envelope(None, program=reports.program_info(argv),
                                   **after.as_dict(dicts=ns.dicts))
            if ns.retained:
                doc["dominators"] = after.dominators(top=limit).as_list()
                doc["suspects"] = after.leak_suspects(ns.suspect_share / 100).as_dict()
            if before is not None:
                doc["growth"] = (after - before).as_list()
            dump_json(doc, out=out)
        else:
            out.write(after.format(limit=limit))
            if ns.retained:
                out.write("\n" + after.dominators(top=min(limit or 10, 10)).format())
                out.write("\n" + after.leak_suspects(ns.suspect_share / 100).format())
            if ns.dicts:
                out.write("\n" + after.dicts().format(limit=limit))
            if before is not None:
                out.write("\n" + (after - before).format(limit=limit))
    except OSError as exc:
        if reserved is None:
            raise
        sys.stderr.write("memlens heap: error: %s\n" % outfile.message(ns.output, exc))
    finally:
        if reserved is not None:
            out.close()
        else:
            try:
                out.flush()
            except BrokenPipeError:
                pass


def _save(ns, saved, snap, argv):
    """Write the snapshot file reserved for --save (memlens.heapfile)."""
    from memlens import heapfile
    try:
        with outfile.reopen(saved) as f:
            f.write(heapfile.dump(snap, argv))
    except OSError as exc:
        sys.stderr.write("memlens heap: error: %s\n" % outfile.message(ns.save, exc))


def _own_objects_out_of_the_census():
    """memlens' own objects must not show in the program's census: the
    instances of its command-line classes are skipped by the walk, and the
    option parser's reference cycles (argparse) are collected now, before the
    program starts, since nothing else would free them before the census.
    The program has made no object yet, so no lifetime of its changes.
    What the census and the reports import is imported now too, so that the
    runner sees it among memlens' imports when the program starts (what only
    memlens holds of those modules is then left out: _leave_out_own_imports)."""
    import gc
    from memlens import _engine, cli, heapfile, reports, why  # noqa: F401 (imported for the census)
    for cls in (cli.RawArgs, runner.Options, runner.Program, runner.Outcome):
        _engine.heap_own_type(cls)
    gc.collect()


def _leave_out_own_imports():
    """From the program's start on, every census leaves out what only memlens
    holds: the modules it imported to run the program (memlens.*, argparse,
    re, json, ...), its frames, and what only they reach (csrc/heap/ownset.h;
    docs/HEAP.md, step 5). A module the program imports itself is counted."""
    from memlens import _engine
    _engine.heap_own_modules(runner.memlens_modules, _OWN_DIR, runner.ENTRY_CODE)


_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _write_heapsnapshot(path, reserved):
    from memlens import _engine
    from memlens.why import _SKIP
    try:
        with outfile.reopen(reserved) as f:
            _engine.graph_heapsnapshot(f.fileno(), _SKIP)
    except OSError as exc:
        sys.stderr.write("memlens heap: error: %s\n" % outfile.message(path, exc))


def _reserve(path, force):
    try:
        return outfile.reserve(path, force)
    except OSError as exc:
        raise UsageError(outfile.message(path, exc, force)) from None


def run(args):
    from memlens.heap import heap

    ns, program = runner.parse_command_line(args.argv, _options_parser(), VALUE_OPTIONS)
    _own_objects_out_of_the_census()
    if program.kind == "script" and not os.path.isfile(program.target):
        raise UsageError("no such script: %s" % program.target)
    # every output file is created now (O_EXCL), so a bad path fails before
    # the program runs; each is written when it ends
    reserved = saved = snapshot_file = None
    try:
        if ns.output:
            reserved = _reserve(ns.output, ns.force)
        if ns.save:
            saved = _reserve(ns.save, ns.force)
        if ns.heapsnapshot:
            snapshot_file = _reserve(ns.heapsnapshot, ns.force)
    except UsageError:
        for r in (reserved, saved):
            if r is not None:
                outfile.discard(r)
        raise
    pid = os.getpid()
    state = {"before": None, "done": False}
    stdout = _common.json_stdout() if ns.json and not ns.output else sys.stdout
    argv = ([program.target] if program.kind == "script" else
            ["-m" if program.kind == "module" else "-c", program.target]) + program.args

    def start():
        _leave_out_own_imports()
        if ns.diff:
            state["before"] = heap(ids=False)

    def census():
        # once, in this process (not in a forked child), while the program's
        # globals are still alive (before the interpreter tears down)
        if state["done"] or os.getpid() != pid:
            return
        state["done"] = True
        try:
            sys.stdout.flush()
        except Exception:
            pass
        if snapshot_file is not None:
            _write_heapsnapshot(ns.heapsnapshot, snapshot_file)
        snap = heap(ids=False, retained=ns.retained)
        if saved is not None:
            _save(ns, saved, snap, argv)
        _report(ns, state["before"], snap, argv, stdout, reserved)

    try:
        outcome = runner.run(program, on_start=start, on_end=lambda outcome: census(),
                             on_os_exit=census)
    except UsageError:
        for r in (reserved, saved, snapshot_file):
            if r is not None:
                outfile.discard(r)
        raise
    return runner.finish(outcome)

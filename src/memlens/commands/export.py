"""memlens export: the call tree (or the memory over time) in other tools' formats."""
import os
import sys

from memlens import exports, outfile, reports
from memlens.commands import _common, tree as tree_cmd
from memlens.errors import UsageError


def add_parser(sub):
    p = sub.add_parser("export", help="write the call tree for other tools (speedscope, pprof, "
                                      "folded stacks, Chrome trace, CSV)",
                       description="Write the capture's call tree for the chosen view in another "
                                   "tool's format: speedscope (JSON), pprof (gzipped "
                                   "profile.proto: go tool pprof, Pyroscope, Parca), folded "
                                   "(flamegraph.pl, inferno), chrome-trace (heap and RSS over "
                                   "time as counter events), csv. See docs/EXPORT.md.")
    _common.add_capture(p)
    p.add_argument("--format", required=True, choices=exports.FORMATS, help="the output format")
    tree_cmd.add_view_args(p)
    p.add_argument("-o", "--output", metavar="OUT",
                   help="the file to write, a new file (default: standard output, except pprof)")
    p.add_argument("-f", "--force", action="store_true",
                   help="replace an existing output file (a symbolic link is replaced, its "
                        "target never written)")
    p.set_defaults(func=run)


def run(args):
    if args.format == "pprof" and not args.output:
        raise UsageError("--format pprof writes a binary file: give -o OUT.pb.gz")
    if args.output:
        try:
            outfile.check(args.output, args.force)
        except OSError as exc:
            raise UsageError(outfile.message(args.output, exc, args.force)) from None
    mod = exports.module(args.format)
    info = reports.meta(args.capture)
    meta = {"path": args.capture, "name": os.path.basename(os.fsdecode(args.capture)),
            "pid": info.get("pid"), "start_ns": None}
    tree = threads = None
    if getattr(mod, "NEEDS_TREE", True):
        tree, threads = tree_cmd.read_view(args, extra=mod.VIEWS or ())
    data = mod.render(tree, args.view, threads, meta)
    if args.output:
        try:
            outfile.write(args.output, data, args.force)
        except OSError as exc:
            raise UsageError(outfile.message(args.output, exc, args.force)) from None
    else:
        sys.stdout.flush()
        out = getattr(sys.stdout, "buffer", None) or getattr(sys.stdout, "raw", sys.stdout).buffer
        out.write(data)
        out.flush()
    return 0

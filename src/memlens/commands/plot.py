"""memlens plot CAPTURE -o out.svg|out.html: traced heap and RSS over time."""
import os

from memlens import outfile
from memlens.errors import UsageError
from memlens.fmt import dump_json, human_bytes


def add_parser(sub):
    p = sub.add_parser("plot", help="plot traced heap and RSS over time (SVG or HTML)",
                       description="Draw the traced heap and the RSS over time, the exact peak "
                       "with its top site, and brackets for the calls of @memlens.profile "
                       "functions. The output is self-contained; the HTML page adds hover values "
                       "and zoom on a time range.")
    p.add_argument("capture", help="capture file written by `memlens run`")
    p.add_argument("-o", "--output", required=True, metavar="OUT.svg|OUT.html",
                   help="the file to write, a new file (its name ends in .svg or .html)")
    p.add_argument("-f", "--force", action="store_true",
                   help="replace an existing output file (a symbolic link is replaced, its "
                        "target never written)")
    p.add_argument("--json", action="store_true", help="also print the chart data as JSON")
    p.set_defaults(func=run)


def run(args):
    from memlens import plot
    out = args.output
    if not out.lower().endswith((".svg", ".html", ".htm")):
        raise UsageError("the output must end in .svg or .html: %s" % out)
    if not os.path.exists(args.capture):
        raise UsageError("no such capture file: %s" % args.capture)
    try:
        outfile.check(out, args.force)  # before reading the capture; create() decides
    except OSError as exc:
        raise UsageError(outfile.message(out, exc, args.force)) from None
    try:
        data, page = plot.render(args.capture, out)
    except ValueError as exc:
        raise UsageError("%s: %s" % (args.capture, exc))
    try:
        outfile.write(out, page, args.force)
    except OSError as exc:
        raise UsageError(outfile.message(out, exc, args.force)) from None
    if args.json:
        dump_json(data)
    else:
        print("Wrote %s: %d samples, peak %s%s." % (
            out, len(data["t"]), human_bytes(data["peak"]["heap"]),
            " at " + data["peak"]["site"] if data["peak"]["site"] else ""))
    return 0

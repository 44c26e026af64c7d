"""memlens plot CAPTURE -o out.svg|out.html: traced heap and RSS over time."""
import os

from memlens.errors import UsageError
from memlens.fmt import dump_json, human_bytes


def add_parser(sub):
    p = sub.add_parser("plot", help="plot traced heap and RSS over time (SVG or HTML)",
                       description="Draw the traced heap and the RSS over time, the exact peak "
                       "with its top site, and brackets for the calls of @memlens.profile "
                       "functions. The output is self-contained; the HTML page adds hover values "
                       "and zoom on a time range.")
    p.add_argument("capture", help="capture file written by `memlens run`")
    p.add_argument("-o", "--output", required=True, metavar="OUT.svg|OUT.html")
    p.add_argument("--json", action="store_true", help="also print the chart data as JSON")
    p.set_defaults(func=run)


def run(args):
    from memlens import plot
    out = args.output
    if not out.lower().endswith((".svg", ".html", ".htm")):
        raise UsageError("the output must end in .svg or .html: %s" % out)
    if not os.path.exists(args.capture):
        raise UsageError("no such capture file: %s" % args.capture)
    d = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(d):
        raise UsageError("no such directory: %s" % d)
    try:
        data = plot.write(args.capture, out)
    except ValueError as exc:
        raise UsageError("%s: %s" % (args.capture, exc))
    except OSError as exc:
        raise UsageError("cannot write %s: %s" % (out, exc.strerror))
    if args.json:
        dump_json(data)
    else:
        print("Wrote %s: %d samples, peak %s%s." % (
            out, len(data["t"]), human_bytes(data["peak"]["heap"]),
            " at " + data["peak"]["site"] if data["peak"]["site"] else ""))
    return 0

"""memlens plot CAPTURE -o out.svg|out.html: traced heap and RSS over time."""
import os

from memlens import reports
from memlens.commands import _common
from memlens.errors import UsageError
from memlens.fmt import dump_json, human_bytes, safe


def add_parser(sub):
    p = sub.add_parser("plot", help="plot traced heap and RSS over time (SVG or HTML)",
                       description="Draw the traced heap and the RSS over time, the exact peak "
                       "with its top site, and brackets for the calls of @memlens.profile "
                       "functions. The output is self-contained; the HTML page adds hover values "
                       "and zoom on a time range.")
    _common.add_capture(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT.svg|OUT.html",
                   help="the chart to write: an SVG image, or an HTML page (by the name's "
                        "ending: .svg, .html or .htm)")
    p.add_argument("--json", action="store_true",
                   help="also print the chart's data as one JSON object (as `memlens timeline "
                        "--json`)")
    p.set_defaults(func=run)


def run(args):
    from memlens import plot
    out = args.output
    if not out.lower().endswith((".svg", ".html", ".htm")):
        raise UsageError("the output must end in .svg or .html: %s" % out)
    d = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(d):
        raise UsageError("no such directory: %s" % d)
    tl = reports.timeline(args.capture)  # a bad capture: one line, before the output exists
    try:
        data = plot.write(args.capture, out)
    except ValueError as exc:
        raise UsageError("%s: %s" % (args.capture, exc))
    except OSError as exc:
        raise UsageError("cannot write %s: %s" % (out, exc.strerror))
    if args.json:
        dump_json(reports.timeline_json(tl, args.capture))
    else:
        print("Wrote %s: %s samples, peak %s%s." % (
            safe(out), "{:,}".format(len(data["t"])), human_bytes(data["peak"]["heap"]),
            " at " + safe(data["peak"]["site"]) if data["peak"]["site"] else ""))
    return 0

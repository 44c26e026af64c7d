"""memlens plot CAPTURE -o out.svg|out.html: traced heap and RSS over time."""

from memlens import outfile, reports
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
                   help="the chart to write, a new file: an SVG image, or an HTML page (by the "
                        "name's ending: .svg, .html or .htm)")
    p.add_argument("-f", "--force", action="store_true",
                   help="replace an existing output file (a symbolic link is replaced, its "
                        "target never written)")
    p.add_argument("--json", action="store_true",
                   help="also print the chart's data as one JSON object (as `memlens timeline "
                        "--json`)")
    p.set_defaults(func=run)


def run(args):
    from memlens import plot
    out = args.output
    if not out.lower().endswith((".svg", ".html", ".htm")):
        raise UsageError("the output must end in .svg or .html: %s" % out)
    try:
        outfile.check(out, args.force)  # before reading the capture; create() decides
    except OSError as exc:
        raise UsageError(outfile.message(out, exc, args.force)) from None
    tl = reports.timeline(args.capture)  # a bad capture: one line, before the output exists
    try:
        data, page = plot.render(tl, out, plot.rss_bands(args.capture))  # rss: the bands
    except ValueError as exc:
        raise UsageError("%s: %s" % (args.capture, exc))
    try:
        outfile.write(out, page, args.force)
    except OSError as exc:
        raise UsageError(outfile.message(out, exc, args.force)) from None
    if args.json:
        dump_json(reports.timeline_json(tl, args.capture))
    else:
        print("Wrote %s: %s samples, peak %s%s." % (
            safe(out), "{:,}".format(len(data["t"])), human_bytes(data["peak"]["heap"]),
            " at " + safe(data["peak"]["site"]) if data["peak"]["site"] else ""))
    return 0

"""memlens compare BEFORE AFTER: two captures (or two saved heap snapshots)
side by side, biggest change first (growth and shrink both shown)."""
import sys

from memlens import fmt, reports
from memlens.commands import _common
from memlens.errors import UsageError

MEASURES = ("peak", "end", "allocated")
SITE_KEYS = {"peak": "top_peak", "end": "top_end", "allocated": "top_allocated"}
TOTALS = (("peak_bytes", "peak heap"), ("end_bytes", "heap at the end"),
          ("end_count", "blocks at the end"), ("allocated_bytes", "total allocated"),
          ("allocations", "allocations"))
TYPE_FIELDS = ("alive_bytes", "alive", "allocated_bytes", "allocs", "peak_alive")


def add_parser(sub):
    p = sub.add_parser("compare", help="compare two captures (or two .mlheap snapshots): by type, "
                                       "site and function",
                       description="Compare two captures of a program: the peak, the heap at the "
                                   "end and the total allocated, by type, by site (innermost "
                                   "line) and by function, biggest change first. Two heap "
                                   "snapshots saved by `memlens heap --save FILE.mlheap` compare "
                                   "by type (counts, bytes, new types) and dict statistics.")
    p.add_argument("before", metavar="BEFORE", help="capture (or .mlheap snapshot) before")
    p.add_argument("after", metavar="AFTER", help="capture (or .mlheap snapshot) after")
    _common.add_top(p, 10)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def _change_rows(before, after, fields, sort_field):
    """before/after: {key: {field: n}}; rows with before, after, change per
    field, sorted by |change of sort_field| (then key)."""
    rows = []
    for key in set(before) | set(after):
        b, a = before.get(key), after.get(key)
        row = {"key": key, "status": "new" if b is None else "gone" if a is None else "both"}
        for f in fields:
            vb = b.get(f, 0) if b else 0
            va = a.get(f, 0) if a else 0
            row[f] = {"before": vb, "after": va, "change": va - vb}
        rows.append(row)
    rows.sort(key=lambda r: (-abs(r[sort_field]["change"]), str(r["key"])))
    return [r for r in rows if any(r[f]["change"] for f in fields) or r["status"] != "both"]


def _sites(summary, measure):
    out = {}
    for r in summary[SITE_KEYS[measure]]:
        k = (r["function"], r["file"], r["line"])
        cell = out.setdefault(k, {"bytes": 0, "count": 0})
        cell["bytes"] += r["bytes"]
        cell["count"] += r["count"]
    return out


def _functions(sites):
    out = {}
    for (func, file, _line), v in sites.items():
        cell = out.setdefault((func, file), {"bytes": 0, "count": 0})
        cell["bytes"] += v["bytes"]
        cell["count"] += v["count"]
    return out


def compare_captures(before, after):
    """The comparison as a dict (the JSON of `memlens compare`)."""
    sb, sa = reports.summary(before, top=0), reports.summary(after, top=0)
    tb, ta = reports.types(before), reports.types(after)
    totals = [{"measure": key, "before": sb[key], "after": sa[key], "change": sa[key] - sb[key]}
              for key, _ in TOTALS]
    types = _change_rows({r["type"]: r for r in tb["types"]}, {r["type"]: r for r in ta["types"]},
                         TYPE_FIELDS, "alive_bytes")
    out = {"totals": totals,
           "types": [dict(r, type=r.pop("key")) for r in types]}
    for m in MEASURES:
        before_sites, after_sites = _sites(sb, m), _sites(sa, m)
        sites = _change_rows(before_sites, after_sites, ("bytes", "count"), "bytes")
        funcs = _change_rows(_functions(before_sites), _functions(after_sites), ("bytes", "count"),
                             "bytes")
        out["sites_" + m] = [dict(zip(("function", "file", "line"), r.pop("key")), **r)
                             for r in sites]
        out["functions_" + m] = [dict(zip(("function", "file"), r.pop("key")), **r) for r in funcs]
    out["warnings"] = ["before: " + w for w in sb["warnings"]] + \
                      ["after: " + w for w in sa["warnings"]]
    out["truncated"] = {"before": sb["truncated"], "after": sa["truncated"]}
    return out


def _signed_bytes(n):
    return fmt.human_bytes(n, signed=True)


def _print_table(title, rows, label, field, top, out, count_field="count"):
    print(file=out)
    print("%s:" % title, file=out)
    if not rows:
        print("  (no change)", file=out)
        return
    fmt.table(["before", "after", "change", "blocks", "", label],
              [[fmt.human_bytes(r[field]["before"]), fmt.human_bytes(r[field]["after"]),
                _signed_bytes(r[field]["change"]),
                fmt.human_count(r[count_field]["change"], signed=True),
                r["status"] if r["status"] != "both" else "", label_of(r)]
               for r in rows[:top or None]],
              align="rrrrll", out=out)


def label_of(r):
    if "type" in r:
        return r["type"]
    where = reports.location(r) if "line" in r else reports.display_path(r["file"])
    return "%s  %s" % (r["function"], where)


def print_captures(data, before, after, top, out=None):
    out = out or sys.stdout
    print(fmt.safe("memlens compare: %s -> %s" % (before, after)), file=out)
    rows = []
    for t in data["totals"]:
        human = fmt.human_count if "count" in t["measure"] or t["measure"] == "allocations" \
            else fmt.human_bytes
        rows.append([dict(TOTALS)[t["measure"]], human(t["before"]), human(t["after"]),
                     human(t["change"], signed=True)])
    fmt.table(["", "before", "after", "change"], rows, align="lrrr", out=out)
    _print_table("Types, by change of the bytes alive at the end", data["types"], "type",
                 "alive_bytes", top, out, count_field="alive")
    for m, title in (("peak", "at the peak"), ("end", "at the end"), ("allocated", "allocated")):
        _print_table("Sites, by change of the bytes %s" % title, data["sites_" + m], "site",
                     "bytes", top, out)
        _print_table("Functions, by change of the bytes %s" % title, data["functions_" + m],
                     "function", "bytes", top, out)


def run(args):
    from memlens import heapfile
    kinds = [heapfile.is_heap_file(p) for p in (args.before, args.after)]
    if any(kinds) and not all(kinds):
        raise UsageError("compare needs two captures or two .mlheap snapshots, not one of each")
    if all(kinds):
        return heapfile.run_compare(args)
    data = compare_captures(args.before, args.after)
    for w in data["warnings"]:
        sys.stderr.write("warning: %s\n" % fmt.safe(w))
    if args.json:
        fmt.dump_json(reports.envelope(
            None, before=reports.capture_info(args.before, data["truncated"]["before"]),
            after=reports.capture_info(args.after, data["truncated"]["after"]),
            **{k: v for k, v in data.items() if k not in ("warnings", "truncated")}))
    else:
        print_captures(data, args.before, args.after, args.top)
    return 0

"""Saved heap snapshots (`memlens heap --save FILE.mlheap`) and their comparison
(`memlens compare a.mlheap b.mlheap`).

The file (docs/TREE.md, "The `.mlheap` file"): the line `memlens-heap 1` (format
name and version, then a newline), then one JSON object, UTF-8:

    {"python": "3.12.1", "argv": [...], "total_count": int, "total_bytes": int,
     "types": [{"type": str, "count": int, "bytes": int}, ...],
     "dicts": [{"kind": str, "size": int, "count": int, "bytes": int}, ...]}

Reading never runs code from the file (no pickle): the JSON is size-limited
and every field checked; anything else is "not a memlens heap snapshot" or
"corrupt", one line, exit status 2. A newer version is refused by name."""
import json
import os
import sys

from memlens import fmt, reports
from memlens.errors import UsageError

MAGIC = b"memlens-heap "
VERSION = 1
MAX_BYTES = 512 << 20


def is_heap_file(path):
    try:
        with open(path, "rb") as f:
            return f.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


def dump(snapshot, argv):
    """The bytes of a saved snapshot."""
    doc = {"python": sys.version.split()[0], "argv": [str(a) for a in argv]}
    doc.update(snapshot.as_dict(dicts=True))
    text = json.dumps(doc, ensure_ascii=True, separators=(",", ":"))
    return MAGIC + b"%d\n" % VERSION + text.encode("ascii") + b"\n"


def _int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def load(path):
    """The saved snapshot as a checked dict; UsageError with one line."""
    shown = fmt.safe(os.fsdecode(path))
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise UsageError("%s: %s" % (shown, exc.strerror or exc)) from None
    head, nl, body = data.partition(b"\n")
    if not head.startswith(MAGIC) or not nl:
        raise UsageError("%s: not a memlens heap snapshot" % shown)
    try:
        version = int(head[len(MAGIC):].decode("ascii"))
    except ValueError:
        raise UsageError("%s: corrupt heap snapshot (bad version line)" % shown) from None
    if version > VERSION:
        raise UsageError("%s: heap snapshot version %d is newer than this memlens reads (%d)"
                         % (shown, version, VERSION))
    if len(data) > MAX_BYTES:
        raise UsageError("%s: heap snapshot larger than %d MiB" % (shown, MAX_BYTES >> 20))
    try:
        doc = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        raise UsageError("%s: corrupt heap snapshot (not JSON)" % shown) from None
    ok = (isinstance(doc, dict) and _int(doc.get("total_count")) and _int(doc.get("total_bytes"))
          and isinstance(doc.get("types"), list) and isinstance(doc.get("dicts", []), list)
          and all(isinstance(r, dict) and isinstance(r.get("type"), str) and _int(r.get("count"))
                  and _int(r.get("bytes")) for r in doc["types"])
          and all(isinstance(r, dict) and isinstance(r.get("kind"), str) and _int(r.get("size"))
                  and _int(r.get("count")) and _int(r.get("bytes")) for r in doc.get("dicts", [])))
    if not ok:
        raise UsageError("%s: corrupt heap snapshot (unexpected fields)" % shown)
    argv = doc.get("argv")
    doc["argv"] = [a for a in argv if isinstance(a, str)] if isinstance(argv, list) else None
    doc["python"] = doc.get("python") if isinstance(doc.get("python"), str) else None
    doc.setdefault("dicts", [])
    return doc


def _rows(before, after, key):
    """Change rows of (count, bytes) keyed by key(row), biggest |bytes| change first."""
    b = {key(r): r for r in before}
    a = {key(r): r for r in after}
    rows = []
    for k in set(a) | set(b):
        rb, ra = b.get(k, {}), a.get(k, {})
        row = {"key": k, "status": "new" if not rb else "gone" if not ra else "both"}
        for f in ("count", "bytes"):
            row[f] = {"before": rb.get(f, 0), "after": ra.get(f, 0),
                      "change": ra.get(f, 0) - rb.get(f, 0)}
        if row["count"]["change"] or row["bytes"]["change"] or row["status"] != "both":
            rows.append(row)
    rows.sort(key=lambda r: (-abs(r["bytes"]["change"]), -abs(r["count"]["change"]), str(r["key"])))
    return rows


def compare(before, after):
    types = [dict(r, type=r.pop("key"))
             for r in _rows(before["types"], after["types"], lambda r: r["type"])]
    dicts = _rows(before["dicts"], after["dicts"], lambda r: (r["kind"], r["size"]))
    return {
        "totals": [{"measure": m, "before": before[m], "after": after[m],
                    "change": after[m] - before[m]} for m in ("total_count", "total_bytes")],
        "types": types,
        "new_types": sorted(r["type"] for r in types if r["status"] == "new"),
        "dicts": [dict(r, kind=r["key"][0], size=r.pop("key")[1]) for r in dicts],
    }


def run_compare(args):
    before, after = load(args.before), load(args.after)
    data = compare(before, after)
    if args.json:
        fmt.dump_json(reports.envelope(
            None, before={"path": os.fsdecode(args.before), "python": before["python"],
                          "argv": before["argv"]},
            after={"path": os.fsdecode(args.after), "python": after["python"],
                   "argv": after["argv"]}, **data))
        return 0
    out = sys.stdout
    print(fmt.safe("memlens compare (heap snapshots): %s -> %s" % (args.before, args.after)),
          file=out)
    t = {r["measure"]: r for r in data["totals"]}
    print("  objects  %s -> %s (%s)" % (
        fmt.human_count(t["total_count"]["before"]), fmt.human_count(t["total_count"]["after"]),
        fmt.human_count(t["total_count"]["change"], signed=True)), file=out)
    print("  bytes    %s -> %s (%s)" % (
        fmt.human_bytes(t["total_bytes"]["before"]), fmt.human_bytes(t["total_bytes"]["after"]),
        fmt.human_bytes(t["total_bytes"]["change"], signed=True)), file=out)
    top = args.top or None
    for title, rows, label in (("Types, by change of bytes", data["types"], lambda r: r["type"]),
                               ("Dicts by key kind and size, by change of bytes", data["dicts"],
                                lambda r: "%s, %d keys" % (r["kind"], r["size"]))):
        print(file=out)
        print("%s:" % title, file=out)
        if not rows:
            print("  (no change)", file=out)
            continue
        fmt.table(["count before", "after", "change", "bytes before", "after", "change", "", ""],
                  [[fmt.human_count(r["count"]["before"]), fmt.human_count(r["count"]["after"]),
                    fmt.human_count(r["count"]["change"], signed=True),
                    fmt.human_bytes(r["bytes"]["before"]), fmt.human_bytes(r["bytes"]["after"]),
                    fmt.human_bytes(r["bytes"]["change"], signed=True),
                    r["status"] if r["status"] != "both" else "", label(r)]
                   for r in rows[:top]], align="rrrrrrll", out=out)
    if data["new_types"]:
        print(file=out)
        print("New types: %s" % ", ".join(fmt.safe(n) for n in data["new_types"][:top]), file=out)
    return 0

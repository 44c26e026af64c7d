"""Chrome / Perfetto trace (Trace Event Format, JSON object form): counter
events ("ph": "C") for the traced heap and the RSS over time (the capture's
timeline), for the bytes and the blocks held per type over time (the top
types, at each time bucket's highest heap point: analysis/temporal.h, the
data of the flame graph's time slider), and an instant event at the peak.
ts is in microseconds since the start of the capture. Open in
chrome://tracing or ui.perfetto.dev."""
import json

VIEWS = None
NEEDS_TREE = False
TOP_TYPES = 12   # per-type series written; the rest are summed as "other"
BUCKETS = 256


def type_series(path, top=TOP_TYPES, buckets=BUCKETS):
    """[(time_us, {type: bytes}, {type: blocks})] per time bucket, at the
    bucket's highest heap point; the `top` types by their highest bytes,
    the others summed under "other"."""
    from memlens import _engine
    t = _engine.read_temporal(path, buckets=buckets)
    n = len(t["top"])
    names = t["types"]
    steps = t["steps"]
    by_type = {}  # type id -> [bytes per bucket steps], [blocks]
    for ty, b, db, dc in zip(steps["type"], steps["bucket"], steps["bytes"], steps["count"]):
        rows = by_type.setdefault(ty, ([0] * n, [0] * n))
        rows[0][b] += db
        rows[1][b] += dc
    held = {}
    for ty, (db, dc) in by_type.items():
        bytes_, blocks, sb, sc = [], [], 0, 0
        for k in range(n):
            sb += db[k]
            sc += dc[k]
            bytes_.append(sb)
            blocks.append(sc)
        held[ty] = (bytes_, blocks)
    ranked = sorted(held, key=lambda ty: -max(held[ty][0] or [0]))
    keep, rest = ranked[:top], ranked[top:]
    out = []
    for k in range(n):
        b = {names[ty]: held[ty][0][k] for ty in keep}
        c = {names[ty]: held[ty][1][k] for ty in keep}
        if rest:
            b["other"] = sum(held[ty][0][k] for ty in rest)
            c["other"] = sum(held[ty][1][k] for ty in rest)
        out.append((t["top_time_us"][k], b, c))
    return out


def render(tree, view, threads, meta):
    from memlens import reports
    tl = reports.timeline(meta["path"])
    pid = int(meta.get("pid") or 1)
    events = [{"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
               "args": {"name": meta.get("name") or "memlens capture"}}]
    series = [(t, {"name": "memory", "args": {"heap_bytes": heap, "rss_bytes": rss}})
              for t, rss, heap in tl["points"]]
    for t, b, c in type_series(meta["path"]):
        series.append((t, {"name": "bytes by type", "args": b}))
        series.append((t, {"name": "blocks by type", "args": c}))
    series.sort(key=lambda x: x[0])
    for t, e in series:
        events.append(dict(e, ph="C", ts=t, pid=pid, tid=0))
    peak = tl["peak"]
    events.append({"name": "peak %d bytes" % peak["heap"], "ph": "i", "s": "g",
                   "ts": peak["time_us"], "pid": pid, "tid": 0})
    doc = {"traceEvents": events, "displayTimeUnit": "ms",
           "otherData": {"exporter": "memlens", "capture": meta.get("name") or ""}}
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode("ascii")

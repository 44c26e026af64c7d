"""Chrome / Perfetto trace (Trace Event Format, JSON object form): counter
events ("ph": "C") for the traced heap and the RSS over time, from the
capture's timeline, and an instant event at the peak. ts is in microseconds
since the start of the capture. Open in chrome://tracing or ui.perfetto.dev.
Per-type counts over time are not written yet."""
import json

VIEWS = None
NEEDS_TREE = False


def render(tree, view, threads, meta):
    from memlens import reports
    tl = reports.timeline(meta["path"])
    pid = int(meta.get("pid") or 1)
    events = [{"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
               "args": {"name": meta.get("name") or "memlens capture"}}]
    for t, rss, heap in tl["points"]:
        events.append({"name": "memory", "ph": "C", "ts": t, "pid": pid, "tid": 0,
                       "args": {"heap_bytes": heap, "rss_bytes": rss}})
    peak = tl["peak"]
    events.append({"name": "peak %d bytes" % peak["heap"], "ph": "i", "s": "g",
                   "ts": peak["time_us"], "pid": pid, "tid": 0})
    doc = {"traceEvents": events, "displayTimeUnit": "ms",
           "otherData": {"exporter": "memlens", "capture": meta.get("name") or ""}}
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode("ascii")

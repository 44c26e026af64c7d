"""TEMPORARY stand-in for _engine.read_calltree (branch `tree`), same shape;
deleted once the C call tree is merged. Not for big captures."""


def read_calltree(path, views=("peak",), temporary_n=1, progress=None):
    from memlens import _engine
    data = _engine.read_events(path)
    codes, frames_def, types_def = data["codes"], data["frames"], data["types"]
    frames, fkey = {"function": [], "file": [], "line": []}, {}
    nodes, nkey = {"parent": [-1], "frame": [-1]}, {}
    stack_node = {}

    def frame_of(func, file, line):
        k = (func, file, line)
        if k not in fkey:
            fkey[k] = len(frames["line"])
            frames["function"].append(func)
            frames["file"].append(file)
            frames["line"].append(line)
        return fkey[k]

    def child(parent, f):
        k = (parent, f)
        if k not in nkey:
            nkey[k] = len(nodes["parent"])
            nodes["parent"].append(parent)
            nodes["frame"].append(f)
        return nkey[k]

    def node_of(stack):
        if stack in stack_node:
            return stack_node[stack]
        if stack == 0:
            n = child(0, frame_of("<no Python stack>", "", 0))
        else:
            chain, s = [], stack
            while s:
                chain.append(s)
                s = frames_def[s - 1]["parent"]
            n = 0
            for s in reversed(chain):
                fd = frames_def[s - 1]
                c = codes[fd["code"] - 1]
                n = child(n, frame_of(c["name"], c["file"], fd["line"]))
        stack_node[stack] = n
        return n

    threads = {"id": [], "name": []}
    tindex = {}

    def thread_of(t):
        if t not in tindex:
            tindex[t] = len(threads["id"])
            threads["id"].append(t)
            threads["name"].append(None)
        return tindex[t]

    live, heap, peak, peak_live = {}, 0, 0, {}
    allocated, temporary = {}, {}
    since = {}  # thread -> allocations since each live block, for temporary
    recent = {}
    peak_at = -1
    for i, ev in enumerate(data["events"]):
        if ev["kind"] == "alloc":
            key = (ev["stack"], ev["type"], ev["thread"])
            live[ev["seq"]] = (key, ev["size"])
            heap += ev["size"]
            a = allocated.setdefault(key, [0, 0])
            a[0] += ev["size"]
            a[1] += 1
            r = recent.setdefault(ev["thread"], [])
            r.append(ev["seq"])
            del r[:-temporary_n]
            if heap > peak:
                peak, peak_at = heap, i
        elif ev["kind"] == "free":
            key, size = live.pop(ev["seq"])
            heap -= size
            if ev["seq"] in recent.get(key[2], ()):
                a = temporary.setdefault(key, [0, 0])
                a[0] += size
                a[1] += 1
    del since
    for i, ev in enumerate(data["events"][:peak_at + 1]):
        if ev["kind"] == "alloc":
            peak_live[ev["seq"]] = ((ev["stack"], ev["type"], ev["thread"]), ev["size"])
        elif ev["kind"] == "free":
            peak_live.pop(ev["seq"], None)

    def rows(groups):
        out = {"node": [], "type": [], "thread": [], "bytes": [], "count": []}
        agg = {}
        for (stack, typ, thread), (b, c) in groups:
            k = (node_of(stack), typ, thread_of(thread))
            a = agg.setdefault(k, [0, 0])
            a[0] += b
            a[1] += c
        for (n, typ, th), (b, c) in agg.items():
            out["node"].append(n)
            out["type"].append(typ)
            out["thread"].append(th)
            out["bytes"].append(b)
            out["count"].append(c)
        return out

    def held(d):
        return [(k, (s, 1)) for k, s in d.values()]

    made = {"peak": held(peak_live), "end": held(live), "allocated": list(allocated.items()),
            "temporary": list(temporary.items())}
    res = {"peak_bytes": peak, "views": {v: rows(made[v]) for v in views}}
    res.update(frames=frames, nodes=nodes, threads=threads,
               types=["<untyped>"] + [t["name"] for t in types_def])
    return res

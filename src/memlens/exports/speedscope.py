"""speedscope's file format (https://www.speedscope.app/file-format-schema.json):
one "sampled" profile (unit bytes) per view: the chosen one (shown first,
activeProfileIndex) and peak, end, allocated and temporary, so speedscope's
profile switcher changes view without another export. Each sample is a stack
of frame indexes from the outermost frame, ending with the type as a frame
"[type]", weighted by its bytes. ("sampled", not "evented": a memory view
has no time order of its samples.)"""
import json

from memlens.exports import frame_label, type_label

VIEWS = ("peak", "end", "allocated", "temporary")
SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def render(tree, view, threads, meta):
    from memlens import __version__
    frames, index = [], {}

    def fid(key, name, file=None, line=None):
        i = index.get(key)
        if i is None:
            i = index[key] = len(frames)
            f = {"name": name}
            if file:
                f["file"] = file
            if line:
                f["line"] = line
            frames.append(f)
        return i

    def profile(v):
        samples, weights = [], []
        for path, tname, _th, b, c in tree.stacks(v, threads):
            if not b:
                continue
            stack = [fid(("f",) + tuple(f), f[0], f[1], f[2]) for f in path]
            stack.append(fid(("t", tname), type_label(tname)))
            samples.append(stack)
            weights.append(b)
        return {"type": "sampled", "name": "%s (%s)" % (meta.get("name", ""), v),
                "unit": "bytes", "startValue": 0, "endValue": sum(weights),
                "samples": samples, "weights": weights}

    views = [view] + [v for v in VIEWS if v != view]
    doc = {
        "$schema": SCHEMA,
        "shared": {"frames": frames},
        "profiles": [profile(v) for v in views],
        "name": meta.get("name", ""),
        "activeProfileIndex": 0,
        "exporter": "memlens %s" % __version__,
    }
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode("ascii")

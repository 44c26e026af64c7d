"""speedscope's file format (https://www.speedscope.app/file-format-schema.json):
one "sampled" profile per view (unit bytes), each sample a stack of frame
indexes from the outermost frame, ending with the type as a frame "[type]",
weighted by its bytes."""
import json

from memlens.exports import frame_label, type_label

VIEWS = None
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

    samples, weights = [], []
    for path, tname, _th, b, c in tree.stacks(view, threads):
        if not b:
            continue
        stack = [fid(("f",) + tuple(f), f[0], f[1], f[2]) for f in path]
        stack.append(fid(("t", tname), type_label(tname)))
        samples.append(stack)
        weights.append(b)
    total = sum(weights)
    doc = {
        "$schema": SCHEMA,
        "shared": {"frames": frames},
        "profiles": [{"type": "sampled", "name": "%s (%s)" % (meta.get("name", ""), view),
                      "unit": "bytes", "startValue": 0, "endValue": total,
                      "samples": samples, "weights": weights}],
        "name": meta.get("name", ""),
        "activeProfileIndex": 0,
        "exporter": "memlens %s" % __version__,
    }
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":")).encode("ascii")

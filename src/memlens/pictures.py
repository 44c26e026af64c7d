"""memlens' own drawing of a small directed graph as SVG (no graphviz).

Used by why(), refs() and backrefs(): a few dozen nodes at most. The
layout is layered (Sugiyama-style, simplified): the caller gives each node
a layer (its distance from the start of the picture); layers are drawn top
to bottom, and a few barycentre sweeps order each layer so that edges
cross less. Nodes are boxes with one or more lines of text; edges are
curves with an arrow and a label at their middle.

Every string is escaped for SVG with memlens.escape; the result is a
complete <svg> element that a browser or Jupyter shows as is.
"""
from memlens import escape

__all__ = ["Node", "svg", "dot"]

_CHAR_W = 7.2      # width of one character of the 12px monospace font
_LINE_H = 15
_PAD_X, _PAD_Y = 8, 5
_GAP_X, _GAP_Y = 28, 56
_MARGIN = 12
_MAX_CHARS = 48    # longer lines are cut with an ellipsis

_FILL = {"target": "#ffe0b2", "root": "#c8e6c9", "cut": "#eeeeee", "node": "#e3f2fd"}
_STROKE = {"target": "#e65100", "root": "#2e7d32", "cut": "#9e9e9e", "node": "#1565c0"}


class Node:
    """One box: lines of text, a layer (0 at the top), a kind (colour):
    "target", "root", "cut" (items left out) or "node"."""

    __slots__ = ("lines", "layer", "kind", "x", "y", "w", "h", "order")

    def __init__(self, lines, layer, kind="node"):
        self.lines = [_cut(line) for line in lines]
        self.layer = layer
        self.kind = kind
        self.w = _PAD_X * 2 + _CHAR_W * max(len(line) for line in self.lines)
        self.h = _PAD_Y * 2 + _LINE_H * len(self.lines)
        self.x = self.y = 0.0
        self.order = 0.0


def _cut(line):
    line = escape.printable(line)
    return line if len(line) <= _MAX_CHARS else line[:_MAX_CHARS - 1] + "\u2026"


def _bezier(p0, p1, p2, p3, t):
    u = 1 - t
    return tuple(u * u * u * a + 3 * u * u * t * b + 3 * u * t * t * c + t * t * t * d
                 for a, b, c, d in zip(p0, p1, p2, p3))


def _layout(nodes, edges):
    # a box is at least as wide as the labels of the edges into it, so
    # that labels (drawn near the head of their edge) do not collide
    for a, b, label in edges:
        if label:
            nodes[b].w = max(nodes[b].w, _CHAR_W * len(_cut(label)) + 10)
    layers = {}
    for i, n in enumerate(nodes):
        layers.setdefault(n.layer, []).append(i)
        n.order = len(layers[n.layer])
    keys = sorted(layers)
    # barycentre sweeps: down then up, twice
    up = {i: [] for i in range(len(nodes))}
    down = {i: [] for i in range(len(nodes))}
    for a, b, _ in edges:
        down[a].append(b)
        up[b].append(a)
    for sweep in range(4):
        seq = keys if sweep % 2 == 0 else list(reversed(keys))
        nbrs = up if sweep % 2 == 0 else down
        for k in seq:
            row = layers[k]
            for i in row:
                adj = [nodes[j].order for j in nbrs[i]]
                if adj:
                    nodes[i].order = sum(adj) / len(adj)
            row.sort(key=lambda i: nodes[i].order)
            for pos, i in enumerate(row):
                nodes[i].order = pos
    widths = {k: sum(nodes[i].w for i in layers[k]) + _GAP_X * (len(layers[k]) - 1) for k in keys}
    total_w = max(widths.values()) if widths else 0
    y = _MARGIN
    for k in keys:
        x = _MARGIN + (total_w - widths[k]) / 2
        h = max(nodes[i].h for i in layers[k])
        for i in layers[k]:
            n = nodes[i]
            n.x, n.y = x, y + (h - n.h) / 2
            x += n.w + _GAP_X
        y += h + _GAP_Y
    return total_w + 2 * _MARGIN, y - _GAP_Y + _MARGIN


def _split_long(nodes, edges):
    """An edge down more than one layer passes through invisible dummy
    boxes, one per layer crossed, so the layout keeps a lane for it.
    Returns (nodes + dummies, layout edges, drawn edges as index chains)."""
    nodes = list(nodes)
    flat, chains = [], []
    for a, b, label in edges:
        na, nb = nodes[a], nodes[b]
        if nb.layer - na.layer <= 1:
            flat.append((a, b, label))
            chains.append(([a, b], label))
            continue
        chain = [a]
        for layer in range(na.layer + 1, nb.layer):
            d = Node([""], layer, "dummy")
            d.w, d.h = _CHAR_W * min(len(label or ""), _MAX_CHARS) + 10, _LINE_H
            nodes.append(d)
            flat.append((chain[-1], len(nodes) - 1, ""))
            chain.append(len(nodes) - 1)
        flat.append((chain[-1], b, label))
        chain.append(b)
        chains.append((chain, label))
    return nodes, flat, chains


def svg(nodes, edges, title=None):
    """The picture: nodes (Node), edges [(from index, to index, label)]."""
    real = len(nodes)
    nodes, flat, chains = _split_long(nodes, edges)
    width, height = _layout(nodes, flat)
    top = 24 if title else 0
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'font-family="DejaVu Sans Mono, Menlo, Consolas, monospace" font-size="12">'
           % (width, height + top, width, height + top),
           '<defs><marker id="ml-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/>'
           '</marker></defs>',
           '<rect width="100%" height="100%" fill="white"/>']
    if title:
        out.append('<text x="%d" y="16" font-weight="bold">%s</text>' % (_MARGIN, escape.text(title)))
    out.append('<g transform="translate(0,%d)">' % top)
    labels = []
    incoming = {}
    for chain, label in chains:
        a, b = chain[0], chain[-1]
        na, nb = nodes[a], nodes[b]
        if nb.layer <= na.layer:  # upward or sideways: leave from the side
            x1, y1 = na.x + na.w, na.y + na.h / 2
            x2, y2 = nb.x + nb.w, nb.y + nb.h / 2
            c = 40 + 10 * abs(na.layer - nb.layer)
            pts = ((x1, y1), (x1 + c, y1), (x2 + c, y2), (x2, y2))
            d = "M%.1f,%.1f C%.1f,%.1f %.1f,%.1f %.1f,%.1f" % tuple(v for p in pts for v in p)
            mx, my = _bezier(*pts, t=0.5)
        else:
            # through the dummies' centres, one curve per layer crossed
            d, pts = "", None
            for k in range(len(chain) - 1):
                p, q = nodes[chain[k]], nodes[chain[k + 1]]
                x1 = p.x + p.w / 2
                y1 = p.y + (p.h if p.kind != "dummy" else p.h / 2)
                x2 = q.x + q.w / 2
                y2 = q.y + (0 if q.kind != "dummy" else q.h / 2)
                dy = (y2 - y1) / 2
                pts = ((x1, y1), (x1, y1 + dy), (x2, y2 - dy), (x2, y2))
                d += ("M%.1f,%.1f " % pts[0] if not k else "") + \
                    "C%.1f,%.1f %.1f,%.1f %.1f,%.1f " % tuple(v for p in pts[1:] for v in p)
            # near the head; the k-th edge into one box puts its label
            # further up its own curve
            k = incoming.get(b, 0)
            incoming[b] = k + 1
            mx, my = _bezier(*pts, t=max(0.25, 0.68 - 0.2 * k))
        out.append('<path d="%s" fill="none" stroke="#555" stroke-width="1.2" '
                   'marker-end="url(#ml-arrow)"/>' % d.strip())
        if label:
            text = _cut(label)
            w = _CHAR_W * len(text) + 6
            labels.append('<rect x="%.1f" y="%.1f" width="%.1f" height="16" rx="3" fill="white" '
                          'fill-opacity="0.9"/><text x="%.1f" y="%.1f" text-anchor="middle" '
                          'fill="#333">%s</text>' % (mx - w / 2, my - 8, w, mx, my + 4, escape.text(text)))
    for n in nodes[:real]:
        out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" rx="5" fill="%s" stroke="%s"/>'
                   % (n.x, n.y, n.w, n.h, _FILL.get(n.kind, _FILL["node"]),
                      _STROKE.get(n.kind, _STROKE["node"])))
        for k, line in enumerate(n.lines):
            out.append('<text x="%.1f" y="%.1f" text-anchor="middle"%s>%s</text>'
                       % (n.x + n.w / 2, n.y + _PAD_Y + _LINE_H * (k + 1) - 3,
                          ' font-weight="bold"' if k == 0 else "", escape.text(line)))
    out.extend(labels)
    out.append("</g></svg>")
    return "\n".join(out)


def _dot_str(s):
    s = escape.printable(s)
    return '"%s"' % s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def dot(nodes, edges, title=None):
    """The same picture as graphviz DOT text."""
    out = ["digraph memlens {"]
    if title:
        out.append("  label=%s; labelloc=t;" % _dot_str(title))
    out.append('  node [shape=box, style="rounded,filled", fontname="monospace", fontsize=10];')
    for i, n in enumerate(nodes):
        out.append("  n%d [label=%s, fillcolor=%s];" % (i, _dot_str("\n".join(n.lines)),
                                                       _dot_str(_FILL.get(n.kind, _FILL["node"]))))
    for a, b, label in edges:
        out.append("  n%d -> n%d [label=%s];" % (a, b, _dot_str(label or "")))
    out.append("}")
    return "\n".join(out) + "\n"

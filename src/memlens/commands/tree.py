"""memlens tree: the call tree of a capture as indented text (or --json)."""
import argparse
import sys

from memlens import calltree, fmt, reports
from memlens.commands import _common
from memlens.errors import UsageError


def add_view_args(p, default="peak"):
    """--view, --range, --temporary-n: shared by tree and export."""
    p.add_argument("--view", choices=calltree.VIEWS, default=default,
                   help="which blocks: peak (held at the peak), end (still allocated at the end), "
                        "allocated (every allocation), temporary (freed before --temporary-n more "
                        "allocations on the same thread), range (held at the highest heap within "
                        "--range), range_new (allocated within --range, alive at its end) "
                        "(default %s)" % default)
    p.add_argument("--range", type=range_arg, metavar="T0:T1",
                   help="seconds from the start of the capture, for the range views")
    p.add_argument("--temporary-n", type=positive_arg, default=1, metavar="N",
                   help="temporary view: freed before N more allocations of the thread (default 1)")
    p.add_argument("--thread", metavar="T",
                   help="only the blocks allocated by this thread (capture thread id or name)")


def range_arg(text):
    a, sep, b = text.partition(":")
    try:
        t0, t1 = float(a), float(b)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not T0:T1 (seconds)" % text) from None
    if not sep or not (0 <= t0 <= t1 < 1e12):
        raise argparse.ArgumentTypeError("%r is not T0:T1 with 0 <= T0 <= T1" % text)
    return int(t0 * 1e6), int(t1 * 1e6)


def positive_arg(text):
    n = _common.count_arg(text)
    if n < 1:
        raise argparse.ArgumentTypeError("%r must be 1 or more" % text)
    return n


def share_arg(text):
    try:
        p = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text) from None
    if not 0 <= p <= 100:
        raise argparse.ArgumentTypeError("%r is not a percentage (0-100)" % text)
    return p


def read_view(args, extra=()):
    """Read the tree for args.view (plus `extra` views); the thread filter as a set or None."""
    if args.view in calltree.RANGE_VIEWS and not args.range:
        raise UsageError("--view %s needs --range T0:T1" % args.view)
    t0, t1 = args.range or (None, None)
    views = (args.view,) + tuple(v for v in extra if v != args.view)
    tree = calltree.read(args.capture, views, temporary_n=args.temporary_n, t0_us=t0, t1_us=t1)
    threads = None
    if args.thread is not None:
        threads = tree.thread_index(args.thread)
        if not threads:
            raise UsageError("no thread %s in %s (threads: %s)" % (
                fmt.safe(args.thread), fmt.safe(args.capture),
                ", ".join(fmt.safe(tree.thread_label(i)) for i in range(len(tree.thread_ids)))))
    return tree, threads


def add_parser(sub):
    p = sub.add_parser("tree", help="the call tree: which paths hold the memory, with types",
                       description="The call tree of the capture: stacks merged from the outermost "
                                   "frame in, each node with its bytes, blocks, share and top "
                                   "types, biggest first. Plain indented text (works piped).")
    _common.add_capture(p)
    add_view_args(p)
    p.add_argument("--depth", type=_common.count_arg, default=0, metavar="N",
                   help="show at most N levels (default 0 = all)")
    p.add_argument("--min-share", type=share_arg, default=1.0, metavar="P",
                   help="hide nodes under P percent of the view's total (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=run)


def shown_nodes(tree, totals, depth, min_share):
    """The nodes to show, depth-first, biggest child first: (node, depth)."""
    nb, nc = totals
    whole = nb[0]
    children = {}
    for node in range(1, len(tree)):
        if nc[node] or nb[node]:
            children.setdefault(tree.parent[node], []).append(node)
    limit = whole * min_share / 100.0
    out, todo = [], [(c, 1) for c in sorted(children.get(0, ()), key=lambda n: (nb[n], nc[n]))]
    while todo:
        node, d = todo.pop()
        if nb[node] < limit or (nb[node] == 0 and min_share > 0):
            continue
        out.append((node, d))
        if not depth or d < depth:
            todo.extend((c, d + 1) for c in sorted(children.get(node, ()),
                                                   key=lambda n: (nb[n], nc[n])))
    return out


def node_types(tree, view, threads, shown):
    """{shown node: {type index: [bytes, count]}} over each node's subtree."""
    ids = {n for n, _ in shown}
    nearest = [-1] * len(tree)  # nearest shown ancestor-or-self
    for node in range(1, len(tree)):
        nearest[node] = node if node in ids else nearest[tree.parent[node]]
    out = {n: {} for n in ids}
    for node, t, _th, b, c in tree.entries(view, threads):
        a = nearest[node]
        while a > 0:
            cell = out[a].setdefault(t, [0, 0])
            cell[0] += b
            cell[1] += c
            a = nearest[tree.parent[a]]
    return out


def _top_types(types, names, whole, n=3):
    rows = sorted(types.items(), key=lambda kv: (-kv[1][0], -kv[1][1], names[kv[0]]))[:n]
    return [(names[t], b, c) for t, (b, c) in rows]


def run(args):
    tree, threads = read_view(args)
    totals = tree.totals(args.view, threads)
    shown = shown_nodes(tree, totals, args.depth, args.min_share)
    types = node_types(tree, args.view, threads, shown)
    nb, nc = totals
    whole = nb[0]
    if args.json:
        rows, index = [], {}
        for node, d in shown:
            func, file, line = tree.frame(node)
            index[node] = len(rows)
            p = tree.parent[node]
            while p > 0 and p not in index:
                p = tree.parent[p]
            rows.append({"id": len(rows), "parent": index.get(p, -1) if p > 0 else -1, "depth": d,
                         "function": func, "file": file, "line": line, "native": tree.is_native(node),
                         "bytes": nb[node], "count": nc[node],
                         "types": [{"type": name, "bytes": b, "count": c}
                                   for name, b, c in _top_types(types[node], tree.types, whole,
                                                                n=len(types[node]))]})
        data = tree.raw
        fmt.dump_json(reports.envelope(
            reports.capture_info(args.capture, data["truncated"]),
            view=args.view, thread=args.thread, bytes=whole, count=nc[0],
            peak_bytes=data["peak_bytes"], peak_time_s=data["peak_time_us"] / 1e6,
            depth=args.depth, min_share=args.min_share, nodes=rows))
        return 0
    if tree.raw["truncated"]:
        sys.stderr.write("warning: %s\n" % reports.TRUNCATED_WARNING)
    out = sys.stdout
    head = "memlens tree of %s: view %s, %s in %s blocks" % (
        args.capture, args.view, fmt.human_bytes(whole), fmt.human_count(nc[0]))
    if args.thread is not None:
        head += ", thread %s" % args.thread
    print(fmt.safe(head), file=out)
    if not shown:
        print("  (nothing)", file=out)
        return 0
    for node, d in shown:
        func, file, line = tree.frame(node)
        where = reports.location({"function": func, "file": file, "line": line})
        if tree.is_native(node):  # nstacks: "[native] func (lib.so)"
            func, where = "[native] %s (%s)" % (func, file), ""
        top = _top_types(types[node], tree.types, nb[node])
        tstr = ", ".join("%s %s" % (name, reports._pct(b, nb[node])) for name, b, _c in top)
        print("%6s %10s %9s  %s%s  %s%s" % (
            reports._pct(nb[node], whole), fmt.human_bytes(nb[node]), fmt.human_count(nc[node]),
            "  " * (d - 1), fmt.safe(func), where, "  [%s]" % fmt.safe(tstr) if tstr else ""),
            file=out)
    return 0

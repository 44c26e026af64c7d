"""memlens compare BEFORE AFTER: two captures (or two heap snapshots) side by side."""


def add_parser(sub):
    p = sub.add_parser("compare", help="compare two captures: by type, site and function")
    p.add_argument("before", metavar="BEFORE")
    p.add_argument("after", metavar="AFTER")
    p.set_defaults(func=run)


def run(args):
    from memlens.errors import UsageError
    raise UsageError("compare is not written yet")

"""Writers of the call tree in other tools' formats, one module per format
(docs/EXPORT.md). Each has `render(tree, view, threads, meta) -> bytes`, where
tree is a memlens.calltree.CallTree read with the views the format needs
(`VIEWS` in the module: None = the chosen view only)."""

FORMATS = ("speedscope", "pprof", "folded", "chrome-trace", "csv")


def module(name):
    import importlib
    return importlib.import_module("memlens.exports." + {
        "chrome-trace": "chrome_trace", "csv": "csv_rows"}.get(name, name))


def frame_label(frame):
    """One frame as text for formats keyed by name: "function (file:line)"."""
    func, file, line = frame
    if not file:
        return func
    return "%s (%s:%d)" % (func, file, line) if line else "%s (%s)" % (func, file)


def type_label(name):
    """The type as the innermost frame of a stack."""
    return "[%s]" % name

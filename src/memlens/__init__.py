"""memlens: memory profiler and heap analyser for CPython.

The engine is C (memlens._engine); this package is the shell around it:
the CLI, the API objects, the report formatting.
"""
__version__ = "0.1.0"
from memlens.heap import heap, deep_size, Snapshot  # noqa: E402  (heap analysis, issue 3)

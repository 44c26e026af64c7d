"""A native-heavy workload for bench/bench_native.py: NumPy arrays (their
data is malloc'ed by NumPy's C code), an SQLite database (its page cache
and statements), and zlib streams. argv[1]: rounds."""
import sqlite3
import sys
import zlib

import numpy as np

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
for r in range(rounds):
    # NumPy: arrays of every size class, temporaries of arithmetic
    acc = np.zeros(1000)
    for i in range(3000):
        a = np.arange(i % 500 + 100, dtype=np.float64)
        b = a * 2.0 + 1.0
        acc[: len(b) % 1000] += b[: len(b) % 1000].sum()
    big = [np.ones(200_000) for _ in range(20)]
    del big
    # SQLite: inserts, an index, queries
    con = sqlite3.connect(":memory:")
    con.execute("create table t(a integer, b text)")
    con.executemany("insert into t values (?, ?)", ((i, "row %d" % i * 3) for i in range(60_000)))
    con.execute("create index ta on t(b)")
    n = sum(1 for _ in con.execute("select a, b from t where a % 7 = 0 order by b"))
    con.close()
    # zlib: streams made and ended
    blob = b"memlens native workload " * 20_000
    for level in range(1, 10):
        z = zlib.compressobj(level)
        out = z.compress(blob) + z.flush()
        assert zlib.decompress(out) == blob
print("ok")

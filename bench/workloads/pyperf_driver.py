"""Run one pyperformance benchmark in this process, a fixed number of loops.

pyperf.Runner spawns worker processes, which a profiler of this process
would not see; this stand-in calls the benchmark function in-process.
Usage: python pyperf_driver.py BENCHMARK_DIR LOOPS
"""
import argparse
import asyncio
import os
import runpy
import sys

import pyperf

LOOPS = int(sys.argv[2])


class InProcessRunner:
    def __init__(self, *args, add_cmdline_args=None, **kwargs):
        self.metadata = {}
        self.argparser = argparse.ArgumentParser()
        self.args = None

    def parse_args(self, args=None):
        self.args = self.argparser.parse_args([])
        return self.args

    def _args(self):
        return self.args if self.args is not None else self.parse_args()

    def bench_func(self, name, func, *args, inner_loops=None, metadata=None):
        self._args()
        for _ in range(LOOPS):
            func(*args)

    def bench_time_func(self, name, func, *args, inner_loops=None, metadata=None):
        self._args()
        func(LOOPS, *args)

    def bench_async_func(self, name, func, *args, inner_loops=None, metadata=None):
        self._args()
        for _ in range(LOOPS):
            asyncio.run(func(*args))


pyperf.Runner = InProcessRunner
bench_dir = sys.argv[1]
sys.argv = [os.path.join(bench_dir, "run_benchmark.py")]
sys.path.insert(0, bench_dir)
runpy.run_path(sys.argv[0], run_name="__main__")

"""memlens' pytest plugin: memory limits on tests, and a table of the tests
that use the most memory. Loaded by pytest through the `pytest11` entry
point; manual in docs/PYTEST.md.

It costs nothing unless `--memlens` (or --memlens-dir, or
--memlens-fail-on-increase) is given or a test carries a memlens marker:
until then nothing tracks and no test is wrapped. A measured test's body (the
test function, not its fixtures' setup or teardown) with a marker, or any
under --memlens-dir, runs under its own capture, started and stopped around
the call; its sites and types are read from that capture by the C reports
(reports.py), exactly as `memlens summary` would read a file kept with
--memlens-dir. The other measured bodies are counted by one counters session
of the run (_measure.session_start), whose engine window per body names its
top site and type.

Markers:
    limit_memory("24 MB")                 peak of the test body above its start
    limit_leaks("1 MB", filter_fn=None)   bytes still allocated after the body
                                          (after a full collection), per
                                          allocation stack
    limit_alive({"app.Session": 0})       objects of a type made by the body and
                                          alive after it (full collection)
    limit_allocations(10_000)             blocks allocated by the body

Under pytest-xdist each worker measures its own tests; the figures travel to
the controller on the test reports (a `memlens` attribute, plain JSON data),
so the end table holds every worker's tests.
"""
import os
import re
import sys

import pytest

MARKERS = ("limit_memory", "limit_leaks", "limit_alive", "limit_allocations")
SORTS = ("peak", "allocated", "leaked", "allocations")
_CACHE_KEY = "memlens/peaks"

_UNITS = {"": 1, "b": 1, "kb": 1 << 10, "kib": 1 << 10, "mb": 1 << 20, "mib": 1 << 20,
          "gb": 1 << 30, "gib": 1 << 30, "tb": 1 << 40, "tib": 1 << 40}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([a-zA-Z]*)\s*$")


def parse_size(text):
    """'24 MB' -> 25165824. Units B, KB, MB, GB, TB are powers of 1024, as in
    pytest-memray (KiB, MiB... accepted too); an int is bytes."""
    if isinstance(text, bool):
        raise ValueError("not a size: %r" % (text,))
    if isinstance(text, int):
        if text < 0:
            raise ValueError("a size cannot be negative: %d" % text)
        return text
    m = _SIZE.match(str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError("not a size: %r (write e.g. '24 MB', '512 KB', 1000)" % (text,))
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


# ---- options and registration ----

def pytest_addoption(parser):
    group = parser.getgroup("memlens", "memory of each test (memlens)")
    group.addoption("--memlens", action="store_true", default=False,
                    help="measure every test's memory; print the tests that used the most")
    group.addoption("--memlens-top", type=int, default=5, metavar="N",
                    help="tests in the --memlens table (default 5; 0: all)")
    group.addoption("--memlens-sort", choices=SORTS, default="peak",
                    help="order of the --memlens table (default: peak)")
    group.addoption("--memlens-dir", metavar="DIR", default=None,
                    help="keep one capture per measured test in DIR (new or empty of "
                         "captures), for `memlens summary`, `memlens plot`...")
    group.addoption("--memlens-fail-on-increase", action="store_true", default=False,
                    help="fail a test whose peak grew since the previous run (pytest's cache)")


def pytest_configure(config):
    config.addinivalue_line("markers", "limit_memory(size): fail if the test body's peak "
                            "above its start exceeds size (memlens)")
    config.addinivalue_line("markers", "limit_leaks(size, filter_fn=None): fail if an allocation "
                            "stack left more than size allocated after the test body (memlens)")
    config.addinivalue_line("markers", "limit_alive({type: n}): fail if more than n objects "
                            "of the type, made by the test body, are alive after it (memlens)")
    config.addinivalue_line("markers", "limit_allocations(n): fail if the test body allocates "
                            "more than n blocks (memlens)")
    opt = config.option
    if opt.memlens_top < 0:
        raise pytest.UsageError("--memlens-top: N cannot be negative")
    if opt.memlens_dir is not None and not hasattr(config, "workerinput"):
        _check_dir(opt.memlens_dir)
    _own_type(MemlensPlugin)
    config.pluginmanager.register(MemlensPlugin(config), "memlens-plugin")


def _check_dir(path):
    if os.path.exists(path) and not os.path.isdir(path):
        raise pytest.UsageError("--memlens-dir %s: not a folder" % path)
    if os.path.isdir(path) and any(n.endswith(".mlens") for n in os.listdir(path)):
        raise pytest.UsageError("--memlens-dir %s: already holds captures; give a new or "
                                "empty folder" % path)


# ---- the per-test measurement ----

def _call(func, kwargs):
    """Every measured test body runs inside this frame: the captures' stacks
    stop here and this thread's allocations outside it are not recorded."""
    return func(**kwargs)


async def _call_async(func, kwargs):
    """_call for coroutine test functions (pytest-asyncio, anyio)."""
    return await func(**kwargs)


class MemlensPlugin:
    """The per-run half of the plugin, registered by pytest_configure. Like
    memlens' other objects it is its own in heap censuses (heap_own_type):
    a program's `memlens.heap()` under pytest does not list it."""

    __slots__ = ("config", "all", "dir", "tmpdir", "results", "kept", "count", "previous")

    def __init__(self, config):
        self.config = config
        opt = config.option
        self.all = bool(opt.memlens or opt.memlens_dir or opt.memlens_fail_on_increase)
        self.dir = opt.memlens_dir
        self.tmpdir = None
        self.results = {}  # nodeid -> the figures of its report (controller side)
        self.kept = {}     # nodeid -> (figures, capture path): candidates for the table
        self.count = 0
        self.previous = {}
        if opt.memlens_fail_on_increase and getattr(config, "cache", None) is not None:
            self.previous = config.cache.get(_CACHE_KEY, {}) or {}

    # -- run --

    def _wanted(self, item):
        return self.all or any(item.get_closest_marker(n) is not None for n in MARKERS)

    def _start(self, item):
        """The Run of a test to measure, or None (not measured, or its
        markers are malformed: the report then fails with the error)."""
        if not self._wanted(item):
            return None
        from memlens.integrations import _measure
        limits = _measure.Limits.of(item)
        if limits.error:
            item.stash[_ERROR] = limits.error
            return None
        # a capture of its own for a test with a marker (its failure shows
        # sites and types; leaks and alive objects are read from it) or with
        # --memlens-dir; the others are counted in the run's session
        path = self._capture_path(item) if self.dir or limits.any else None
        run = _measure.Run(item.nodeid, path, limits,
                           keep=bool(self.dir or self.config.option.memlens), force=not self.dir)
        item.stash[_RUN] = run
        return run

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem):
        """Test functions: the function call alone is measured (fixtures
        are set up before it)."""
        run = None if _runs_whole(pyfuncitem) else self._start(pyfuncitem)
        if run is None:
            yield
            return
        import inspect
        func = pyfuncitem.obj
        if inspect.iscoroutinefunction(func):
            async def measured(**kwargs):
                run.begin(_call_async.__code__)
                try:
                    return await _call_async(func, kwargs)
                finally:
                    run.end()
        else:
            def measured(**kwargs):
                run.begin(_call.__code__)
                try:
                    return _call(func, kwargs)
                finally:
                    run.end()
        # pytest calls it with the funcargs by name; the original stays
        # reachable (inspect.unwrap) for plugins that look
        measured.__wrapped__ = func
        pyfuncitem.obj = measured
        try:
            yield
        finally:
            pyfuncitem.obj = func

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item):
        """Items that are not plain test functions (unittest.TestCase
        methods, doctests, other plugins' items): their whole runtest() is
        measured, setUp and tearDown of a TestCase included."""
        run = self._start(item) if _runs_whole(item) else None
        if run is None:
            yield
            return
        runtest = item.runtest

        def measured():
            run.begin(_call.__code__)
            try:
                return _call(runtest, {})
            finally:
                run.end()

        item.runtest = measured
        try:
            yield
        finally:
            del item.runtest

    def _capture_path(self, item):
        if self.dir:
            os.makedirs(self.dir, exist_ok=True)
            return os.path.join(self.dir, _file_name(item.nodeid))
        if self.tmpdir is None:
            import tempfile
            self.tmpdir = tempfile.mkdtemp(prefix="memlens-pytest-")
        self.count += 1
        return os.path.join(self.tmpdir, "%d.mlens" % self.count)

    def _keep(self, nodeid, figures, path):
        """The end table shows the top tests' sites and types, read from
        their captures at the end: this process keeps the captures of its
        own top N (by the table's order), the others are removed now."""
        self.kept[nodeid] = (figures, path)
        top, key = self.config.option.memlens_top, self.config.option.memlens_sort
        if top and len(self.kept) > top:
            drop = min(self.kept, key=lambda k: (self.kept[k][0][key], k))
            _, dropped = self.kept.pop(drop)
            if not self.dir:
                _remove(dropped)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        if call.when != "call":
            return
        report = outcome.get_result()
        # taken out of the item: nothing of memlens outlives the test
        error = item.stash.get(_ERROR, None)
        run = item.stash.get(_RUN, None)
        for key in (_ERROR, _RUN):
            if key in item.stash:
                del item.stash[key]
        if error is not None and report.passed:
            _fail(report, "memlens: " + error)
            return
        if run is None or run.figures is None:
            return
        figures = run.figures
        report.memlens = figures
        if run.captured and run.keep and self.config.option.memlens:
            self._keep(item.nodeid, figures, run.path)
        elif run.captured and not self.dir:
            _remove(run.path)
        problems = list(run.failures)
        prev = self.previous.get(item.nodeid)
        if self.config.option.memlens_fail_on_increase and isinstance(prev, int) \
                and figures["peak"] > prev:
            problems.append(_measure_text().increase(figures["peak"], prev))
        if problems and report.passed:
            _fail(report, "\n\n".join(problems))

    # -- end of the run (controller side with xdist) --

    def pytest_runtest_logreport(self, report):
        figures = getattr(report, "memlens", None)
        if report.when == "call" and isinstance(figures, dict):
            self.results[report.nodeid] = figures

    def pytest_sessionfinish(self, session):
        measure = sys.modules.get("memlens.integrations._measure")
        if measure is not None:  # the run's counters session ends
            measure.session_stop()
        sites = {}
        for nodeid, (figures, path) in self.kept.items():
            try:
                sites[nodeid] = _measure_text().site_type(path)
            except (OSError, ValueError):  # unreadable (disk full...): no site
                pass
        self.kept.clear()
        if hasattr(self.config, "workerinput"):
            self.config.workeroutput["memlens_sites"] = sites
        else:
            self._merge_sites(sites)
        if self.tmpdir is not None:
            import shutil
            shutil.rmtree(self.tmpdir, ignore_errors=True)
        if hasattr(self.config, "workerinput") or not self.results:
            return
        cache = getattr(self.config, "cache", None)
        if cache is not None and self.config.option.memlens_fail_on_increase:
            peaks = dict(self.previous)
            peaks.update({k: v["peak"] for k, v in self.results.items()})
            cache.set(_CACHE_KEY, peaks)

    def _merge_sites(self, sites):
        for nodeid, names in sites.items():
            if nodeid in self.results and isinstance(names, dict):
                self.results[nodeid].update(names)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error):
        """pytest-xdist: a worker ends; its top tests' sites and types."""
        sites = getattr(node, "workeroutput", {}).get("memlens_sites")
        if isinstance(sites, dict):
            self._merge_sites(sites)

    def pytest_terminal_summary(self, terminalreporter):
        if self.results and self.config.option.memlens and \
                not hasattr(self.config, "workerinput"):
            _measure_text().print_table(terminalreporter, self.results,
                                  self.config.option.memlens_top, self.config.option.memlens_sort)


_RUN = pytest.StashKey()
_ERROR = pytest.StashKey()


def _own_type(tp):
    """Mark tp as memlens' own for heap censuses. The engine holds a few such
    types (8): when they are taken, the plugin still works, only a census
    would list its objects."""
    from memlens import _engine  # already loaded by `import memlens` (memlens.heap)
    try:
        _engine.heap_own_type(tp)
    except RuntimeError:
        pass


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _runs_whole(item):
    """True for items whose whole runtest() is measured: anything but a
    plain test function (unittest.TestCase methods are Functions too)."""
    if not isinstance(item, pytest.Function):
        return True
    import unittest
    cls = getattr(item, "cls", None)
    return isinstance(cls, type) and issubclass(cls, unittest.TestCase)


def _fail(report, text):
    report.outcome = "failed"
    report.longrepr = text


def _measure_text():
    from memlens.integrations import _measure
    return _measure


def _file_name(nodeid):
    """A capture file name for a test id: safe characters, unique by a hash."""
    import hashlib
    digest = hashlib.sha1(nodeid.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", nodeid).strip("._")[:100]
    return "%s-%s.mlens" % (stem or "test", digest)

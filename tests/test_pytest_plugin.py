"""The pytest plugin (memlens.integrations.pytest_plugin), driven by pytester.

Every suite runs in a subprocess (the tracker is process-wide), with the
plugin loaded by its pytest11 entry point as a user's pytest would. Ground
truth: each test file allocates known objects at lines tagged `# @name`.
"""
import json
import os
import re
import sys
import textwrap

import pytest

from conftest import memlens

pytest_plugins = ["pytester"]


def write(pytester, name, source):
    source = textwrap.dedent(source)
    (pytester.path / (name + ".py")).write_text(source)
    return {text.split("# @", 1)[1].strip(): no
            for no, text in enumerate(source.splitlines(), 1) if "# @" in text}


def run(pytester, *args):
    # the test's own folder is pytest's rootdir (node ids relative to it),
    # also when the base temp folder is inside a project with a pytest
    # configuration (tests/run_all.sh puts it under test-artifacts/)
    if not (pytester.path / "pytest.ini").exists():
        pytester.makeini("[pytest]\n")
    return pytester.runpytest_subprocess("-p", "no:randomly", *args)


def section(result, test):
    """The failure text of one test (from its ____ header to the next)."""
    text = result.stdout.str()
    m = re.search(r"_{3,} %s _{3,}\n(.*?)(?=\n_{3,} |\n={3,} )" % re.escape(test), text, re.S)
    assert m, text
    return m.group(1)


MEMORY = '''
    import pytest

    @pytest.fixture
    def big_fixture():
        return bytearray(30 << 20)        # setup: not the test's

    @pytest.mark.limit_memory("1 MB")
    def test_ten_mb_fails():
        x = bytes(10 << 20)               # @ten
        del x

    @pytest.mark.limit_memory("20 MB")
    def test_ten_mb_passes(big_fixture):
        x = bytearray(10 << 20)
        del x
'''


def test_limit_memory(pytester):
    lines = write(pytester, "test_mem", MEMORY)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    text = section(result, "test_ten_mb_fails")
    m = re.search(r"a peak of ([0-9.]+) MiB above its start; the limit is 1\.0 MiB", text)
    assert m and 10.0 <= float(m.group(1)) < 10.1, text
    # the top stack at the peak is the allocating line, its top type bytearray
    assert "test_mem.py:%d in test_ten_mb_fails" % lines["ten"] in text
    types = text.split("Top types at the peak:")[1]
    assert re.search(r"\n\s+10\.0 MiB\s+1\s+bytes(\n|$)", types), text


def test_fixture_setup_is_excluded(pytester):
    # the 30 MB fixture is made before the body: with --memlens the body's
    # peak is its own 10 MB
    write(pytester, "test_mem", MEMORY)
    result = run(pytester, "--memlens", "-k", "passes")
    result.assert_outcomes(passed=1)
    row = next(l for l in result.stdout.lines if "test_ten_mb_passes" in l and "MiB" in l)
    assert row.split()[1:3] == ["10.0", "MiB"], row


ALIVE = '''
    import pytest

    KEEP = []

    class Session:
        def __init__(self, i):
            self.i = i

    @pytest.mark.limit_alive({"Session": 10})
    def test_keeps_sessions():
        for i in range(5000):
            KEEP.append(Session(i))      # @keep

    @pytest.mark.limit_alive({Session: 0, "dict": 100})
    def test_drops_sessions():
        tmp = [Session(i) for i in range(5000)]
        del tmp

    @pytest.mark.limit_alive({"test_alive.Session": 4999})
    def test_full_name():
        KEEP.extend(Session(i) for i in range(5000))
'''


def test_limit_alive(pytester):
    lines = write(pytester, "test_alive", ALIVE)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=2)
    text = section(result, "test_keeps_sessions")
    assert "5,000 Session objects made by the test are alive after it; the limit is 10" in text
    assert re.search(r"5,000 test_alive\.Session objects at \S*test_alive\.py:%d "
                     r"\(test_keeps_sessions\)" % lines["keep"], text), text
    # what holds them: the test module's global list (memlens.why)
    assert "one of them is held by: module test_alive .KEEP [" in text, text
    text = section(result, "test_full_name")
    assert "5,000 test_alive.Session objects made by the test are alive" in text


LEAKS = '''
    import pytest

    KEEP = []

    def not_mine(stack):
        return not any(f.function == "cache_fill" for f in stack.frames)

    def cache_fill():
        KEEP.append(bytes(3 << 20))      # @cache

    def helper():
        KEEP.append(bytes(700 << 10))    # @helper

    @pytest.mark.limit_leaks("1 MB")
    def test_leaks():
        KEEP.append(bytes(3 << 20))      # @leak

    @pytest.mark.limit_leaks("1 MB")
    def test_cycle_is_no_leak():
        a = [bytes(3 << 20)]
        a.append(a)                       # freed by the collection

    @pytest.mark.limit_leaks("1 MB", filter_fn=not_mine)
    def test_filtered():
        cache_fill()

    @pytest.mark.limit_leaks("1 MB")
    def test_unfiltered():
        cache_fill()

    @pytest.mark.limit_leaks("1 MB")
    def test_two_stacks():
        helper()                          # @first
        helper()                          # @second

    @pytest.mark.limit_leaks("1 MB")
    def test_one_stack_twice():
        for _ in range(2):
            helper()                      # @loop
'''


def test_limit_leaks(pytester):
    lines = write(pytester, "test_leaks", LEAKS)
    result = run(pytester)
    result.assert_outcomes(passed=3, failed=3)
    text = section(result, "test_leaks")
    assert "1 allocation stack left more than 1.0 MiB allocated after the test:" in text
    assert re.search(r"3\.0 MiB in \d blocks? \(bytes 3\.0 MiB", text), text
    assert "test_leaks.py:%d in test_leaks" % lines["leak"] in text
    assert "test_leaks.py:%d in cache_fill" % lines["cache"] in section(result, "test_unfiltered")
    # per allocation stack, as pytest-memray: one helper line reached from
    # two lines of the test is two stacks of 700 KiB (under the limit; by
    # line they would be 1.4 MiB), and from one line twice, one of 1.4 MiB
    out = result.stdout.str()
    assert "test_two_stacks" not in out.split("short test summary info")[-1], out
    text = section(result, "test_one_stack_twice")
    assert "1 allocation stack left more than 1.0 MiB allocated" in text
    assert re.search(r"1\.4 MiB in 2 blocks \(bytes 1\.4 MiB\)", text), text
    stack = [l.strip() for l in text.splitlines() if l.startswith("        ")]
    assert stack[:2] == ["%s:%d in helper" % (pytester.path / "test_leaks.py", lines["helper"]),
                         "%s:%d in test_one_stack_twice" % (pytester.path / "test_leaks.py",
                                                            lines["loop"])], text


CHURN = '''
    import pytest

    class Thing:
        pass

    @pytest.mark.limit_allocations(500)
    def test_churn():
        for i in range(1000):
            Thing()                       # @churn

    @pytest.mark.limit_allocations(500)
    def test_quiet():
        pass
'''


def test_limit_allocations(pytester):
    lines = write(pytester, "test_churn", CHURN)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    text = section(result, "test_churn")
    m = re.search(r"allocated ([0-9,]+) blocks; the limit is 500", text)
    assert m and int(m.group(1).replace(",", "")) >= 1000, text
    assert "test_churn.py:%d in test_churn" % lines["churn"] in text
    assert re.search(r"\n\s+1,000\s+\S+ \S+\s+test_churn\.Thing\n", text), text


def test_bad_marker_fails_with_one_line(pytester):
    write(pytester, "test_bad", '''
        import pytest

        @pytest.mark.limit_memory("lots")
        def test_bad():
            pass
    ''')
    result = run(pytester)
    result.assert_outcomes(failed=1)
    assert "memlens: not a size: 'lots'" in result.stdout.str()
    assert "Traceback" not in result.stdout.str()


TABLE = '''
    import pytest

    @pytest.mark.parametrize("mib", [1, 4, 2])
    def test_sizes(mib):
        b = bytes(mib << 20)              # @alloc
        del b

    def test_nothing():
        pass
'''


def test_table(pytester):
    lines = write(pytester, "test_table", TABLE)
    # --memlens alone: the run's counters (no capture per test); the
    # engine's window of each body names its site and type
    result = run(pytester, "--memlens", "--memlens-top", "2")
    result.assert_outcomes(passed=4)
    out = result.stdout.str()
    assert "memlens: 4 tests measured; the top 2 by peak" in out
    rows = [l for l in result.stdout.lines if l.startswith("test_table.py::")]
    assert [r.split()[0] for r in rows] == ["test_table.py::test_sizes[4]",
                                            "test_table.py::test_sizes[2]"]
    first = rows[0].split()
    assert first[1:3] == ["4.0", "MiB"]            # peak
    assert first[3:5] == ["4.0", "MiB"]            # allocated
    assert first[-1] == "bytes"                     # top type
    assert first[-3].endswith("test_table.py:%d" % lines["alloc"]) and first[-2] == "(test_sizes)"
    # with --memlens-dir, one capture per test: the same names, from it
    result = run(pytester, "--memlens", "--memlens-top", "2",
                 "--memlens-dir", str(pytester.path / "caps"))
    result.assert_outcomes(passed=4)
    rows = [l for l in result.stdout.lines if l.startswith("test_table.py::")]
    first = rows[0].split()
    assert first[0] == "test_table.py::test_sizes[4]" and first[1:3] == ["4.0", "MiB"]
    assert first[-1] == "bytes"                     # top type
    assert "test_table.py:%d" % lines["alloc"] in rows[0]


def test_counters_session_is_one_for_the_run(pytester):
    # tests measured for the table alone share one tracker session: started
    # once, paused around a test with a marker (its own capture), restarted
    # after it; each body's figures are its own
    write(pytester, "test_session", '''
        import pytest

        KEEP = []

        def test_a():
            KEEP.append(bytes(3 << 20))   # survives the test: 3 MiB leaked

        def test_b():
            b = bytes(2 << 20)
            KEEP.clear()                  # frees test_a's block: a net loss
            x = bytes(1 << 20)

        @pytest.mark.limit_memory("100 MB")
        def test_c():
            b = bytes(5 << 20)

        def test_d():
            KEEP.append(bytes(4 << 20))
    ''')
    result = run(pytester, "--memlens", "--memlens-top", "0")
    result.assert_outcomes(passed=4)
    rows = {l.split()[0]: l.split() for l in result.stdout.lines
            if l.startswith("test_session.py::")}
    assert rows["test_session.py::test_a"][1:3] == ["3.0", "MiB"]
    assert rows["test_session.py::test_a"][6:8] == ["3.0", "MiB"]   # leaked
    assert rows["test_session.py::test_b"][1:3] == ["2.0", "MiB"]   # b, then 3 MiB freed
    assert rows["test_session.py::test_b"][3:5] == ["3.0", "MiB"]   # allocated
    assert rows["test_session.py::test_b"][6:8] == ["0", "B"]       # net growth only
    # test_c ran under its own capture: its site and type are known
    assert rows["test_session.py::test_c"][1:3] == ["5.0", "MiB"]
    assert rows["test_session.py::test_c"][-1] == "bytes"
    # and the session started again for test_d
    assert rows["test_session.py::test_d"][1:3] == ["4.0", "MiB"]
    assert rows["test_session.py::test_d"][6:8] == ["4.0", "MiB"]
    assert rows["test_session.py::test_d"][-1] == "bytes"


TOP = '''
    import pytest
    from conftest import Session

    KEEP = []

    @pytest.fixture
    def big_fixture():
        return [Session() for _ in range(8000)]    # setup: never a test's site

    def test_sessions(big_fixture):
        KEEP.extend([Session() for _ in range(5000)])    # @sessions

    def test_bytes():
        b = bytes(2 << 20)                         # @bytes
        del b

    def test_small():
        x = [str(i) for i in range(10)]
'''


def _table_rows(result, prefix):
    return {l.split()[0]: l for l in result.stdout.lines if l.startswith(prefix)}


def test_table_sites_and_types_without_captures(pytester):
    # ground truth: 5,000 conftest.Session of ~500 bytes each (2.4 MiB) made
    # at one line, 2 MiB of bytes at another, by tests counted in the run's
    # session (no --memlens-dir, no capture): each row names its line and type
    (pytester.path / "conftest.py").write_text(
        "class Session:\n    __slots__ = tuple('a%d' % i for i in range(58))\n")
    lines = write(pytester, "test_top", TOP)
    result = run(pytester, "--memlens", "--memlens-top", "0")
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    assert "site and type: the line and the type that allocated the most bytes" in out
    rows = _table_rows(result, "test_top.py::")
    order = [l.split()[0] for l in result.stdout.lines if l.startswith("test_top.py::")]
    assert order[:2] == ["test_top.py::test_sessions", "test_top.py::test_bytes"], out
    sessions, big = rows["test_top.py::test_sessions"], rows["test_top.py::test_bytes"]
    assert re.search(r"test_top\.py:%d \(\S+\)\s+conftest\.Session$" % lines["sessions"], sessions), out
    assert re.search(r"test_top\.py:%d \(test_bytes\)\s+bytes$" % lines["bytes"], big), out
    # memlens' own frames never name a site; every row has one
    assert "memlens" not in "".join(rows.values()), out
    assert not any(l.rstrip().endswith(" -") for l in rows.values()), out
    # sorted by what was left allocated: the Sessions kept in KEEP, at their
    # line; test_bytes left nothing, so it has no site
    result = run(pytester, "--memlens", "--memlens-top", "0", "--memlens-sort", "leaked")
    rows = _table_rows(result, "test_top.py::")
    assert "holding the most bytes left allocated" in result.stdout.str()
    assert re.search(r"test_top\.py:%d \(\S+\)\s+conftest\.Session$" % lines["sessions"],
                     rows["test_top.py::test_sessions"]), result.stdout.str()
    assert rows["test_top.py::test_bytes"].split()[-2:] == ["-", "-"], result.stdout.str()


def test_table_site_is_a_line(pytester):
    # two allocations of one line (two instructions) are one site: 1.2 MiB
    # at one line beats 1 MiB at another
    lines = write(pytester, "test_line", '''
        def test_two_on_one_line():
            c = bytes(1 << 20)                                   # @one
            a, b = bytes(600 << 10), bytes(600 << 10)            # @two
    ''')
    result = run(pytester, "--memlens")
    result.assert_outcomes(passed=1)
    row = _table_rows(result, "test_line.py::")["test_line.py::test_two_on_one_line"]
    assert re.search(r"test_line\.py:%d \(test_two_on_one_line\)\s+bytes$" % lines["two"], row), row


def test_xdist_table_sites_without_captures(pytester):
    # each worker's session names its tests' sites and types; they travel
    # with the figures to the controller's table
    pytest.importorskip("xdist")
    (pytester.path / "conftest.py").write_text(
        "class Session:\n    __slots__ = tuple('a%d' % i for i in range(58))\n")
    lines = write(pytester, "test_top", TOP)
    result = run(pytester, "-n", "2", "--memlens", "--memlens-top", "0")
    result.assert_outcomes(passed=3)
    rows = _table_rows(result, "test_top.py::")
    assert set(rows) == {"test_top.py::test_sessions", "test_top.py::test_bytes",
                         "test_top.py::test_small"}, result.stdout.str()
    assert re.search(r"test_top\.py:%d \(\S+\)\s+conftest\.Session$" % lines["sessions"],
                     rows["test_top.py::test_sessions"]), result.stdout.str()
    assert re.search(r"test_top\.py:%d \(test_bytes\)\s+bytes$" % lines["bytes"],
                     rows["test_top.py::test_bytes"]), result.stdout.str()


def test_costs_nothing_without_option(pytester):
    # no option, no marker: nothing tracks, nothing wraps the test
    write(pytester, "test_plain", '''
        import inspect
        import memlens._engine

        def test_plain():
            assert not memlens._engine.active()
            assert "_call" not in [f.function for f in inspect.stack()]
    ''')
    run(pytester).assert_outcomes(passed=1)
    # and with --memlens, both are (the check can fail)
    run(pytester, "--memlens").assert_outcomes(failed=1)


def test_xdist_table_merges_workers(pytester):
    pytest.importorskip("xdist")
    lines = write(pytester, "test_table", TABLE)
    result = run(pytester, "-n", "2", "--memlens", "--memlens-top", "0",
                 "--memlens-dir", str(pytester.path / "caps"))
    result.assert_outcomes(passed=4)
    out = result.stdout.str()
    assert "memlens: 4 tests measured" in out
    rows = {l.split()[0]: l.split() for l in result.stdout.lines if l.startswith("test_table.py::")}
    assert set(rows) == {"test_table.py::test_sizes[1]", "test_table.py::test_sizes[2]",
                         "test_table.py::test_sizes[4]", "test_table.py::test_nothing"}
    assert rows["test_table.py::test_sizes[2]"][1:3] == ["2.0", "MiB"]
    # the sites and types at the peak come from the workers at their end
    four = rows["test_table.py::test_sizes[4]"]
    assert four[-1] == "bytes" and four[-3].endswith("test_table.py:%d" % lines["alloc"])
    # markers fail in workers too
    write(pytester, "test_mem", MEMORY)
    run(pytester, "-n", "2", "test_mem.py").assert_outcomes(passed=1, failed=1)


def test_async_test(pytester):
    pytest.importorskip("pytest_asyncio")
    write(pytester, "test_async", '''
        import asyncio
        import pytest

        @pytest.mark.asyncio
        @pytest.mark.limit_memory("1 MB")
        async def test_async_big():
            await asyncio.sleep(0)
            x = bytearray(10 << 20)       # @after_await
            await asyncio.sleep(0)
            del x
    ''')
    result = run(pytester, "-p", "asyncio")
    result.assert_outcomes(failed=1)
    text = section(result, "test_async_big")
    assert re.search(r"a peak of 10\.\d MiB above its start", text), text


def test_anyio_test(pytester):
    # anyio's pytest plugin runs `@pytest.mark.anyio` coroutines: measured
    # whole, awaits included, as pytest-asyncio's; the anyio_backend fixture
    # (and the event loop anyio sets up for it) is not the test's
    pytest.importorskip("anyio")
    lines = write(pytester, "test_anyio", '''
        import anyio
        import pytest

        @pytest.fixture
        def anyio_backend():
            return "asyncio"

        @pytest.mark.anyio
        @pytest.mark.limit_memory("1 MB")
        async def test_anyio_big():
            await anyio.sleep(0)
            x = bytearray(10 << 20)       # @after_await
            await anyio.sleep(0)
            del x

        @pytest.mark.anyio
        @pytest.mark.limit_memory("20 MB")
        async def test_anyio_fits():
            await anyio.sleep(0)
            x = bytearray(10 << 20)
            await anyio.sleep(0)

        @pytest.mark.anyio
        async def test_anyio_table():
            await anyio.sleep(0)
            x = bytes(6 << 20)            # @table
            await anyio.sleep(0)
    ''')
    result = run(pytester, "-p", "anyio", "-p", "no:asyncio", "--memlens", "--memlens-top", "0")
    result.assert_outcomes(passed=2, failed=1)
    text = section(result, "test_anyio_big")
    assert re.search(r"a peak of 10\.\d MiB above its start", text), text
    # the allocating line after an await is the top stack at the peak
    assert "test_anyio.py:%d in test_anyio_big" % lines["after_await"] in text, text
    row = next(l for l in result.stdout.lines if l.startswith("test_anyio.py::test_anyio_table"))
    assert row.split()[1:3] == ["6.0", "MiB"], row
    # counted by the session: its window spans the awaits and names the line
    assert re.search(r"test_anyio\.py:%d \(test_anyio_table\)\s+bytes$" % lines["table"], row), row


def test_forking_test(pytester):
    lines = write(pytester, "test_fork", '''
        import os
        import pytest

        @pytest.mark.limit_memory("5 MB")
        def test_fork():
            pid = os.fork()
            if pid == 0:
                x = bytearray(50 << 20)   # the child's: not the test's
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            assert status == 0
            y = bytearray(1 << 20)

        def test_fork_counted():
            # no marker: measured by the run's counters session
            pid = os.fork()
            if pid == 0:
                x = bytearray(50 << 20)
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            assert status == 0
            y = bytes(2 << 20)            # @parent
    ''')
    result = run(pytester, "--memlens")
    result.assert_outcomes(passed=2)
    row = next(l for l in result.stdout.lines if l.startswith("test_fork.py::test_fork "))
    assert row.split()[1:3] == ["1.0", "MiB"], row
    row = next(l for l in result.stdout.lines if l.startswith("test_fork.py::test_fork_counted "))
    assert row.split()[1:3] == ["2.0", "MiB"], row
    # the window names the parent's line and type, never the child's 50 MiB
    assert re.search(r"test_fork\.py:%d \(test_fork_counted\)\s+bytes$" % lines["parent"], row), row


def test_memlens_dir(pytester):
    write(pytester, "test_table", TABLE)
    out_dir = pytester.path / "caps"
    result = run(pytester, "--memlens-dir", str(out_dir))
    result.assert_outcomes(passed=4)
    files = sorted(os.listdir(out_dir))
    assert len(files) == 4 and all(f.endswith(".mlens") for f in files)
    four = next(f for f in files if "test_sizes_4" in f)
    proc = memlens("summary", "--json", str(out_dir / four))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert (4 << 20) <= data["peak_bytes"] < (4 << 20) + 4096, data
    # a folder that already holds captures is refused: one line, usage error
    again = run(pytester, "--memlens-dir", str(out_dir))
    assert again.ret == 4
    assert "already holds captures" in again.stderr.str()


def test_fail_on_increase(pytester):
    write(pytester, "test_grow", '''
        def test_grow():
            b = bytes(1 << 20)
    ''')
    run(pytester, "--memlens-fail-on-increase").assert_outcomes(passed=1)
    run(pytester, "--memlens-fail-on-increase").assert_outcomes(passed=1)  # same peak
    write(pytester, "test_grow", '''
        def test_grow():
            b = bytes(2 << 20)
    ''')
    result = run(pytester, "--memlens-fail-on-increase")
    result.assert_outcomes(failed=1)
    assert "peak grew from 1.0 MiB to 2.0 MiB since the previous run" in result.stdout.str()


def test_unittest_and_doctest_items(pytester):
    # not plain test functions: their whole runtest() is measured
    lines = write(pytester, "test_ut", '''
        import unittest
        import pytest

        def double(x):
            """
            >>> len(double(bytes(3 << 20)))
            6291456
            """
            return x + x

        class TestCase(unittest.TestCase):
            def setUp(self):
                self.small = bytes(1000)

            def test_two(self):
                b = bytes(2 << 20)            # @two

            @pytest.mark.limit_memory("1 MB")
            def test_big(self):
                b = bytes(5 << 20)
    ''')
    result = run(pytester, "--memlens", "--memlens-top", "0", "--doctest-modules",
                 "--memlens-dir", str(pytester.path / "caps"))
    result.assert_outcomes(passed=2, failed=1)
    assert "a peak of 5.0 MiB above its start; the limit is 1.0 MiB" in section(result, "TestCase.test_big")
    rows = {l.split()[0]: l for l in result.stdout.lines if l.startswith("test_ut.py::")}
    two = rows["test_ut.py::TestCase::test_two"]
    assert two.split()[1:3] == ["2.0", "MiB"] and "test_ut.py:%d" % lines["two"] in two
    # the doctest: bytes of 3 MiB, then their double (6 MiB) while they live
    doc = rows["test_ut.py::test_ut.double"]
    assert doc.split()[1:3] == ["9.0", "MiB"], doc


def test_under_memlens_run(pytester):
    # the whole process already records (`memlens run -m pytest`): the
    # markers still work, by the counters; and pytest gives no warning about
    # the plugin's package (imported before pytest could rewrite it)
    write(pytester, "test_in", '''
        import pytest

        KEEP = []

        class S:
            pass

        @pytest.mark.limit_memory("1 MB")
        def test_big():
            b = bytes(5 << 20)

        @pytest.mark.limit_alive({"S": 0})
        def test_alive():
            KEEP.extend(S() for _ in range(10))

        @pytest.mark.limit_memory("20 MB")
        def test_fits():
            b = bytes(5 << 20)
    ''')
    pytester.makeini("[pytest]\n")  # its own rootdir, not a project's configuration
    proc = memlens("run", "-q", "-o", str(pytester.path / "run.mlens"), "-m", "pytest", "-q",
                   "-p", "no:cacheprovider", "-p", "no:asyncio", "test_in.py",
                   cwd=str(pytester.path))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "2 failed, 1 passed" in out
    assert "a peak of 5.0 MiB above its start; the limit is 1.0 MiB" in out
    assert "10 S objects made by the test are alive after it; the limit is 0" in out
    assert "measured by the counters alone" in out
    assert "Warning" not in out, out


def test_census_never_shows_the_plugin(pytester):
    # a test's own memlens.heap() census, measured or not, lists none of the
    # plugin's objects
    write(pytester, "test_census", '''
        import memlens
        import pytest

        def rows():
            return [r.type for r in memlens.heap().by_type() if r.type.startswith("memlens.")]

        def test_plain():
            assert rows() == []

        @pytest.mark.limit_memory("100 MB")
        def test_measured():
            assert rows() == []
    ''')
    run(pytester, "--memlens").assert_outcomes(passed=2)

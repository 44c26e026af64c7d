#!/usr/bin/env bash
# The whole memlens test suite, on every CPython 3.10-3.13 this machine has.
#
# For each version: a venv in .venvs/, `pip install .[test]` (builds the C
# engine with -Werror), then pytest. Once: the C unit tests (tests/c), also
# under ASan/UBSan. Ends with the versions that ran, the ones that are missing,
# and one closing line "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
export MEMLENS_WERROR=1
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PYTHONDONTWRITEBYTECODE=1
mkdir -p test-artifacts

quick=0; versions="3.10 3.11 3.12 3.13"; pytest_args=()
if [ "${1:-}" = "--quick" ]; then
    quick=1; shift; qv=""
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do qv="$qv $1"; shift; done
    [ "${1:-}" = "--" ] && shift
    pytest_args=("$@")
    versions=${qv:-3.11}
fi

find_python() {  # $1 = 3.X
    local v=$1 p
    if command -v pyenv >/dev/null 2>&1; then
        for p in "$(pyenv root)"/versions/"$v".*/bin/python"$v"; do
            [ -x "$p" ] && { echo "$p"; return 0; }
        done
    fi
    p=$(command -v "python$v" 2>/dev/null) && [ -x "$p" ] && { echo "$p"; return 0; }
    return 1
}

# ---- browser for the plot tests (issue 4: lines/plot) ----
# The HTML plot is tested in a real headless Chromium, the Debian package,
# driven by Playwright through executable_path (never `playwright install`).
ensure_browser() {
    if command -v chromium >/dev/null 2>&1; then return 0; fi
    echo "== installing the Debian chromium package for the browser tests"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
            > test-artifacts/apt-chromium.log 2>&1; then
        tail -5 test-artifacts/apt-chromium.log
        echo "chromium could not be installed: the browser tests will FAIL"
    fi
}
# ---- end browser ----

# ---- go for the pprof export test (issue 10: tree) ----
# `memlens export --format pprof` is read back with `go tool pprof -top`
# (Debian golang-go; pprof reads local files without network).
ensure_go() {
    if command -v go >/dev/null 2>&1; then return 0; fi
    echo "== installing the Debian golang-go package for the pprof export test"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go; } \
            > test-artifacts/apt-golang.log 2>&1; then
        tail -5 test-artifacts/apt-golang.log
        echo "golang-go could not be installed: the pprof export test will FAIL"
    fi
}
# ---- end go ----

passed=0; failed=0; ran=""; missing=""; broken=""
count_pytest() {  # parse "N passed", "N failed", "N error" from a pytest log
    local log=$1 p f e
    p=$(grep -Eo '[0-9]+ passed' "$log" | tail -1 | grep -Eo '[0-9]+'); p=${p:-0}
    f=$(grep -Eo '[0-9]+ failed' "$log" | tail -1 | grep -Eo '[0-9]+'); f=${f:-0}
    e=$(grep -Eo '[0-9]+ errors?' "$log" | tail -1 | grep -Eo '[0-9]+'); e=${e:-0}
    passed=$((passed + p)); failed=$((failed + f + e))
}

# C unit tests first: format round-trip, reader robustness; plain and sanitized.
if [ "$quick" = 1 ]; then
    echo "== quick mode: C tests and sanitized runs skipped; CPython:$versions"
    : > test-artifacts/c-tests.log
elif bash tests/c/run.sh > test-artifacts/c-tests.log 2>&1; then
    cat test-artifacts/c-tests.log
else
    cat test-artifacts/c-tests.log; echo "C unit tests FAILED"
    grep -qE '[1-9][0-9]* failed' test-artifacts/c-tests.log || failed=$((failed + 1))
fi
count_pytest test-artifacts/c-tests.log

ensure_browser
ensure_go
export MEMLENS_REQUIRE_BROWSER=1  # plot tests fail (never skip) without chromium/playwright

for v in $versions; do
    py=$(find_python "$v") || { missing="$missing $v"; echo "== CPython $v: MISSING on this machine"; continue; }
    full=$("$py" -c 'import platform; print(platform.python_version())')
    echo "== CPython $full ($py)"
    venv="$root/.venvs/py$v"
    if [ ! -x "$venv/bin/python" ]; then
        "$py" -m venv "$venv" || { broken="$broken $v"; failed=$((failed + 1)); continue; }
    fi
    # setuptools reuses object files left in build/ by an earlier build of the
    # same ABI (the sanitized one below, or a developer's): start clean
    rm -rf "$root/build"
    if ! "$venv/bin/python" -m pip install -q ".[test]" > "test-artifacts/install-$v.log" 2>&1; then
        cat "test-artifacts/install-$v.log"; echo "install FAILED on $v"
        broken="$broken $v"; failed=$((failed + 1)); continue
    fi
    # run from outside the source tree so the installed package is tested
    targets=("$root/tests")
    [ ${#pytest_args[@]} -gt 0 ] && targets=("${pytest_args[@]}")
    (cd tests && "$venv/bin/python" -m pytest -q -p no:cacheprovider -o addopts="" "${targets[@]}" \
        --basetemp="$root/test-artifacts/tmp-$v" 2>&1) > "test-artifacts/pytest-$v.log"
    status=$?
    tail -25 "test-artifacts/pytest-$v.log"
    count_pytest "test-artifacts/pytest-$v.log"
    if [ "$status" -ne 0 ]; then
        # pytest's own verdict counts, also when it ran nothing (status 5)
        echo "pytest exited with status $status on $full"
        grep -qE '[0-9]+ (failed|errors?)' "test-artifacts/pytest-$v.log" || failed=$((failed + 1))
        broken="$broken $v"
    fi
    ran="$ran $full"
done

# The engine under AddressSanitizer and UBSan (halting on the first error):
# the suites that drive the hooks, the readers and the heap walker, on one
# version. Chromium is left out: it would inherit the sanitizer preload (so the
# browser tests of the listed files are deselected; they run in the plain suites).
asan_v=3.11
if [ "$quick" = 1 ]; then
    :
elif py=$(find_python "$asan_v"); then
    echo "== ASan/UBSan: engine suites on CPython $asan_v"
    asan_venv="$root/.venvs/asan$asan_v"
    [ -x "$asan_venv/bin/python" ] || "$py" -m venv "$asan_venv"
    libasan=$(gcc -print-file-name=libasan.so); libubsan=$(gcc -print-file-name=libubsan.so)
    rm -rf "$root/build"
    if "$asan_venv/bin/python" -m pip install -q setuptools wheel pytest pympler guppy3 \
            > test-artifacts/install-asan.log 2>&1 &&
       MEMLENS_SANITIZE=1 "$asan_venv/bin/python" -m pip install -q --no-build-isolation --force-reinstall \
            --no-deps . >> test-artifacts/install-asan.log 2>&1; then
        (cd tests && ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
            LD_PRELOAD="$libasan:$libubsan" "$asan_venv/bin/python" -m pytest -q -p no:cacheprovider \
            -o addopts="" --basetemp="$root/test-artifacts/tmp-asan" test_capture.py test_lines.py test_lines_bounds.py \
            test_profile.py test_heap.py test_heap_cli.py test_reports_run.py test_reports.py \
            test_program_unchanged.py test_calltree.py test_native.py test_why.py test_dominators.py \
            test_heapsnapshot.py test_flamegraph.py test_gc_exit.py test_heap_own.py \
            test_native_stacks.py test_rss.py test_arenas.py test_heap_at_exit.py test_gc.py \
            --deselect tests/test_native_stacks.py::test_flame_page_in_browser \
            --deselect tests/test_rss.py::test_plot_draws_the_bands 2>&1) \
            > test-artifacts/pytest-asan.log
        status=$?
        tail -5 test-artifacts/pytest-asan.log
        count_pytest test-artifacts/pytest-asan.log
        if [ "$status" -ne 0 ]; then
            echo "sanitized pytest exited with status $status"
            grep -qE '[0-9]+ (failed|errors?)' test-artifacts/pytest-asan.log || failed=$((failed + 1))
        fi
    else
        tail -5 test-artifacts/install-asan.log; echo "sanitized build FAILED"; failed=$((failed + 1))
    fi
else
    echo "== ASan/UBSan: CPython $asan_v missing, sanitized run skipped"
fi
rm -rf "$root/build"  # its sanitized objects must not end up in a later plain build

echo
echo "memlens tests: CPython versions ran:${ran:- none}; missing:${missing:- none}${broken:+; failing on:$broken}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ -n "$ran" ]

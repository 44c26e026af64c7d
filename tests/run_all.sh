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

passed=0; failed=0; ran=""; missing=""; broken=""
count_pytest() {  # parse "N passed", "N failed", "N error" from a pytest log
    local log=$1 p f e
    p=$(grep -Eo '[0-9]+ passed' "$log" | tail -1 | grep -Eo '[0-9]+'); p=${p:-0}
    f=$(grep -Eo '[0-9]+ failed' "$log" | tail -1 | grep -Eo '[0-9]+'); f=${f:-0}
    e=$(grep -Eo '[0-9]+ errors?' "$log" | tail -1 | grep -Eo '[0-9]+'); e=${e:-0}
    passed=$((passed + p)); failed=$((failed + f + e))
}

# C unit tests first: format round-trip, reader robustness; plain and sanitized.
if bash tests/c/run.sh > test-artifacts/c-tests.log 2>&1; then
    cat test-artifacts/c-tests.log
else
    cat test-artifacts/c-tests.log; echo "C unit tests FAILED"
fi
count_pytest test-artifacts/c-tests.log

for v in 3.10 3.11 3.12 3.13; do
    py=$(find_python "$v") || { missing="$missing $v"; echo "== CPython $v: MISSING on this machine"; continue; }
    full=$("$py" -c 'import platform; print(platform.python_version())')
    echo "== CPython $full ($py)"
    venv=$root/.venvs/py$v
    if [ ! -x "$venv/bin/python" ]; then
        "$py" -m venv "$venv" || { broken="$broken $v"; failed=$((failed + 1)); continue; }
    fi
    if ! "$venv/bin/python" -m pip install -q ".[test]" > "test-artifacts/install-$v.log" 2>&1; then
        cat "test-artifacts/install-$v.log"; echo "install FAILED on $v"
        broken="$broken $v"; failed=$((failed + 1)); continue
    fi
    # run from outside the source tree so the installed package is tested
    (cd tests && "$venv/bin/python" -m pytest -q -p no:cacheprovider -o addopts="" "$root/tests" \
        --basetemp="$root/test-artifacts/tmp-$v" 2>&1) | tee "test-artifacts/pytest-$v.log" | tail -25
    count_pytest "test-artifacts/pytest-$v.log"
    # a pytest that did not run at all reports no counts: that is a failure
    grep -Eq '[0-9]+ (passed|failed)' "test-artifacts/pytest-$v.log" || failed=$((failed + 1))
    ran="$ran $full"
done

echo
echo "memlens tests: CPython versions ran:${ran:- none}; missing:${missing:- none}${broken:+; failed to install:$broken}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ -n "$ran" ]

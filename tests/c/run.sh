#!/usr/bin/env bash
# C unit tests of the capture format (writer.c, reader.c, zinflate.c, live.c, report.c).
#
# Builds tests/c/test_format.c twice with gcc -Wall -Wextra -Werror: plain -O2,
# then with AddressSanitizer + UndefinedBehaviorSanitizer, and runs both.
# Then regenerates the golden files with tests/c/gen_golden.c and compares
# them byte for byte with tests/golden (format v1 must not drift).
# Prints "N passed, N failed" per build and a closing total line; exits
# non-zero on any failure.
set -u
cd "$(dirname "$0")/../.."
CC=${CC:-gcc}
CFLAGS="-std=gnu11 -Wall -Wextra -Werror -Icsrc"
SRC="csrc/format/zlib.c csrc/capture/writer.c csrc/capture/zdeflate.c csrc/analysis/reader.c csrc/analysis/zinflate.c csrc/analysis/live.c csrc/analysis/report.c csrc/analysis/exitheap.c csrc/analysis/u64map.c csrc/native/symbols.c csrc/capture/blocks.c csrc/analysis/seqsites.c"
work=$(mktemp -d "${TMPDIR:-/tmp}/memlens-ctests.XXXXXX")
trap 'rm -rf "$work"' EXIT
passed=0; failed=0

count() {  # add the "N passed, N failed" line of a log to the totals
    local p f
    p=$(grep -Eo '[0-9]+ passed' "$1" | tail -1 | grep -Eo '[0-9]+'); p=${p:-0}
    f=$(grep -Eo '[0-9]+ failed' "$1" | tail -1 | grep -Eo '[0-9]+'); f=${f:-0}
    passed=$((passed + p)); failed=$((failed + f))
}

run_build() {  # $1 = name, rest = extra flags
    local name=$1; shift
    echo "== C tests ($name)"
    if ! $CC $CFLAGS "$@" tests/c/test_format.c $SRC -o "$work/test_$name" 2> "$work/build_$name.log"; then
        cat "$work/build_$name.log"; echo "build failed ($name)"; failed=$((failed + 1)); return
    fi
    "$work/test_$name" "$work" > "$work/out_$name.log" 2>&1
    local rc=$?
    cat "$work/out_$name.log"
    count "$work/out_$name.log"
    if [ $rc -ne 0 ] && ! grep -Eq '[1-9][0-9]* failed' "$work/out_$name.log"; then
        echo "test_$name crashed (exit $rc)"; failed=$((failed + 1))
    fi
}

run_build plain -O2
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_build sanitized -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all

echo "== golden files (format v1 byte compatibility)"
if $CC $CFLAGS -O2 tests/c/gen_golden.c csrc/format/zlib.c csrc/capture/writer.c csrc/capture/zdeflate.c -o "$work/gen_golden" && "$work/gen_golden" "$work"; then
    for f in v1-basic.mlens v1-truncated.mlens v1-basic.expected.json v2-native.mlens v2-rss.mlens v2-gc.mlens v2-native-stacks.mlens v2-gc-exit.mlens v2-heap-at-exit.mlens v2-owners.mlens v2-arenas.mlens; do
        if cmp -s "$work/$f" "tests/golden/$f"; then
            passed=$((passed + 1))
        else
            echo "golden file $f differs from what writer.c produces now"; failed=$((failed + 1))
        fi
    done
else
    echo "gen_golden failed"; failed=$((failed + 1))
fi
echo "C tests total: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

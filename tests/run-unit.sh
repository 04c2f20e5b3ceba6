#!/usr/bin/env bash
# Runs unit test binaries (TAP output, tests/unit/tap.h), shows their output,
# and closes with one line "N passed, N failed" counting the TAP assertions of
# all binaries.  Exits nonzero when any assertion failed, when a binary crashed,
# exited nonzero, ran fewer assertions than it planned, or timed out.
#
#   tests/run-unit.sh BIN...        (CMT_UNIT_TIMEOUT=seconds per binary, default 600)
set -uo pipefail

if [ $# -eq 0 ]; then
	echo "usage: $0 BIN..." >&2
	exit 2
fi

limit=${CMT_UNIT_TIMEOUT:-600}
passed=0
failed=0
bad_bins=()
out=$(mktemp /tmp/cmt-unit.XXXXXX)
trap 'rm -f "$out"' EXIT

for bin in "$@"; do
	name=$(basename "$bin")
	echo "=== $name"
	if [ ! -x "$bin" ]; then
		echo "# $bin: not found or not executable"
		failed=$((failed + 1))
		bad_bins+=("$name (missing)")
		continue
	fi
	# (the shell's own "Segmentation fault" notice is replaced by the line below)
	{ timeout -k 10 "$limit" "$bin" </dev/null >"$out" 2>&1; rc=$?; } 2>/dev/null
	cat "$out"
	p=$(grep -c '^ok ' "$out")
	f=$(grep -c '^not ok ' "$out")
	planned=$(sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' "$out" | head -n 1)
	passed=$((passed + p))
	failed=$((failed + f))
	why=""
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		why="timed out after ${limit}s"
	elif [ "$rc" -gt 128 ]; then
		why="killed by signal $((rc - 128))"
	elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		why="exited with status $rc"
	fi
	if [ -n "$planned" ] && [ $((p + f)) -lt "$planned" ]; then
		missing=$((planned - p - f))
		why="${why:+$why, }ran $((p + f)) of $planned planned assertions"
		failed=$((failed + missing))
	elif [ -n "$why" ]; then
		failed=$((failed + 1)) # a crash counts as a failure even without a plan
	fi
	if [ -n "$why" ]; then
		echo "# $name: $why"
		bad_bins+=("$name ($why)")
	elif [ "$rc" -ne 0 ]; then
		bad_bins+=("$name (status $rc)")
	fi
done

if [ ${#bad_bins[@]} -gt 0 ]; then
	echo "failing: ${bad_bins[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ ${#bad_bins[@]} -eq 0 ]

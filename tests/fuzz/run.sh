#!/usr/bin/env bash
# Builds and runs cmt's libFuzzer targets (clang, -fsanitize=fuzzer,address,undefined).
#
#   tests/fuzz/run.sh smoke           build, then run each target ~15 s over its seed corpus
#   tests/fuzz/run.sh run [SECONDS]   the same for longer (default 600 s per target)
#   tests/fuzz/run.sh build           build only (build/fuzz/<target>)
#   tests/fuzz/run.sh seeds           regenerate the seed corpora in tests/fuzz/corpus/
#
# Seeds live in tests/fuzz/corpus/<target>/ and are only read; what a run
# discovers goes to build/fuzz/<target>.corpus/.  A crash, leak, timeout or
# out-of-memory makes the script print the fuzzer's report, the input (hex)
# and how to reproduce it, and exit nonzero.
#
# Environment: CLANG (default clang), CMT_FUZZ_SECONDS (overrides the time per target).
set -euo pipefail

cd "$(dirname "$0")/../.."
mode=${1:-smoke}
clang=${CLANG:-clang}
out=build/fuzz
targets=(fuzz_proto fuzz_config fuzz_journal fuzz_facts fuzz_ocispec fuzz_hosts fuzz_pages fuzz_psrelay fuzz_logfmt fuzz_netdesc fuzz_criulog)

die() { printf 'fuzz: error: %s\n' "$*" >&2; exit 2; }

# The sources each target links: the code under test and what it calls;
# "all" links every source of cmt (built once, instrumented, in $out/obj).
srcs_for() {
	case $1 in
	fuzz_proto) echo src/transport/proto.c src/util/error.c src/util/fault.c src/util/log.c ;;
	fuzz_config) echo src/util/config.c src/util/fs.c src/util/error.c ;;
	fuzz_pages) echo src/transport/pages.c src/transport/proto.c src/util/error.c src/util/fault.c src/util/log.c ;;
	fuzz_psrelay) echo src/transport/psrelay.c src/transport/pages.c src/transport/proto.c src/util/error.c src/util/fault.c src/util/log.c ;;
	fuzz_logfmt) echo src/monitor/logfmt.c ;;
	fuzz_criulog) echo src/criu/logtime.c ;;
	fuzz_journal | fuzz_facts | fuzz_ocispec | fuzz_hosts | fuzz_netdesc) echo all ;;
	*) die "no sources listed for $1" ;;
	esac
}
criu_prefix=${CRIU_PREFIX:-$PWD/.deps/criu}
libs=(-lxxhash -lzstd)
all_libs=("$criu_prefix/usr/lib/x86_64-linux-gnu/libcriu.a" -lprotobuf-c -ljansson -larchive -lxxhash -lzstd -lm -pthread)

# shellcheck disable=SC2054 # the commas belong to -fsanitize=
flags=(-std=gnu11 -g -O1 -fno-omit-frame-pointer
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
	-D_GNU_SOURCE -DXXH_STATIC_LINKING_ONLY -Isrc
	-DCMT_VERSION="\"$(cat VERSION 2>/dev/null || echo 0.0.0)\"" -DCMT_CRIU_PREFIX='"/nonexistent"'
	-Wall -Wextra -Wno-unused-parameter)

check_toolchain() {
	command -v "$clang" >/dev/null || die "$clang not found (run: bash scripts/deps.sh)"
	local probe=$out/.probe
	mkdir -p "$out"
	printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' >"$probe.c"
	if ! "$clang" -fsanitize=fuzzer -o "$probe" "$probe.c" 2>"$probe.log"; then
		cat "$probe.log" >&2
		die "$clang cannot link libFuzzer programs: install libclang-rt-14-dev (bash scripts/deps.sh)"
	fi
	rm -f "$probe" "$probe.c" "$probe.log"
}

# Every source of cmt but main.c, instrumented, for the targets that need
# them all; rebuilt whenever any file under src/ is newer than the last build.
build_all_objs() {
	local f o stamp=$out/obj/.stamp pids=() objs=() cflags=("${flags[@]}")
	cflags=("${cflags[@]/-fsanitize=fuzzer,address,undefined/-fsanitize=fuzzer-no-link,address,undefined}")
	mkdir -p "$out/obj"
	local stale=1
	[ -e "$stamp" ] && [ -z "$(find src -newer "$stamp" -print -quit)" ] && stale=0
	for f in src/*/*.c; do
		o=$out/obj/$(echo "${f#src/}" | tr / _)
		o=${o%.c}.o
		objs+=("$o")
		[ "$stale" = 0 ] && [ -e "$o" ] && continue
		"$clang" "${cflags[@]}" -I"$criu_prefix/usr/include" -c -o "$o" "$f" &
		pids+=($!)
		if [ ${#pids[@]} -ge "$(nproc)" ]; then
			wait "${pids[0]}" || die "cannot compile the sources for fuzzing"
			pids=("${pids[@]:1}")
		fi
	done
	for o in "${pids[@]}"; do wait "$o" || die "cannot compile the sources for fuzzing"; done
	touch "$stamp"
	ALL_OBJS=("${objs[@]}")
}

build() {
	check_toolchain
	ALL_OBJS=()
	for t in "${targets[@]}"; do
		local srcs
		read -r -a srcs <<<"$(srcs_for "$t")"
		echo "  CLANG $out/$t"
		if [ "${srcs[*]}" = all ]; then
			[ ${#ALL_OBJS[@]} -gt 0 ] || build_all_objs
			"$clang" "${flags[@]}" -I"$criu_prefix/usr/include" -o "$out/$t" "tests/fuzz/$t.c" "${ALL_OBJS[@]}" \
				"${all_libs[@]}"
		else
			"$clang" "${flags[@]}" -o "$out/$t" "tests/fuzz/$t.c" "${srcs[@]}" "${libs[@]}"
		fi
	done
}

seeds() {
	mkdir -p "$out"
	${CC:-cc} -std=gnu11 -Wall -Wextra -Wno-format-truncation -D_GNU_SOURCE -DXXH_STATIC_LINKING_ONLY -Isrc -o "$out/gen_seeds" \
		tests/fuzz/gen_seeds.c src/transport/proto.c src/util/error.c src/util/fault.c src/util/log.c -lxxhash
	rm -rf tests/fuzz/corpus/fuzz_proto tests/fuzz/corpus/fuzz_config
	"$out/gen_seeds" tests/fuzz/corpus
	for t in "${targets[@]}"; do
		echo "fuzz: $(find "tests/fuzz/corpus/$t" -type f | wc -l) seeds in tests/fuzz/corpus/$t"
	done
}

# Runs one target for $2 seconds; returns nonzero when it found something.
run_one() {
	local t=$1 secs=$2 rc=0
	local work=$out/$t.corpus art=$out/$t.artifacts log=$out/$t.log
	mkdir -p "$work" "$art"
	rm -f "$art"/*
	[ -d "tests/fuzz/corpus/$t" ] || die "no seed corpus tests/fuzz/corpus/$t (run: $0 seeds)"
	echo "fuzz: $t for ${secs}s ($(find "tests/fuzz/corpus/$t" -type f | wc -l) seeds)"
	ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
		"$out/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
		-print_final_stats=1 -artifact_prefix="$art/" "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
	local found
	found=$(find "$art" -type f | sort)
	if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
		echo "fuzz: $t FAILED (exit status $rc); the fuzzer's report:"
		# the report: from the sanitizer's or libFuzzer's first error line on
		if grep -qnE '^==[0-9]+==ERROR|runtime error:|check failed|^==[0-9]+== ERROR: libFuzzer' "$log"; then
			sed -n "$(grep -nE '^==[0-9]+==ERROR|runtime error:|check failed|^==[0-9]+== ERROR: libFuzzer' "$log" | head -n1 | cut -d: -f1),\$p" "$log" | head -n 80 | sed 's/^/    /'
		else
			tail -n 40 "$log" | sed 's/^/    /'
		fi
		for f in $found; do
			echo "fuzz: input $f ($(stat -c %s "$f") bytes):"
			od -A x -t x1z -v "$f" | head -n 16 | sed 's/^/    /'
			echo "fuzz: reproduce with: $out/$t $f"
		done
		echo "fuzz: full log in $log"
		return 1
	fi
	local runs cov
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
	cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n1 || true)
	echo "fuzz: $t ok: ${runs:-?} inputs in ${secs}s, ${cov:-cov: ?}, $(find "$work" -type f | wc -l) new corpus entries, no crash"
	return 0
}

run_all() {
	local secs=$1 failed=()
	build
	for t in "${targets[@]}"; do
		run_one "$t" "$secs" || failed+=("$t")
	done
	if [ ${#failed[@]} -gt 0 ]; then
		echo "fuzz: FAILED: ${failed[*]}"
		return 1
	fi
	echo "fuzz: all targets clean"
}

case $mode in
smoke) run_all "${CMT_FUZZ_SECONDS:-15}" ;;
run) run_all "${CMT_FUZZ_SECONDS:-${2:-600}}" ;;
build) build ;;
seeds) seeds ;;
*) die "unknown mode '$mode' (smoke, run [SECONDS], build, seeds)" ;;
esac

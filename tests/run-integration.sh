#!/usr/bin/env bash
# tests/run-integration.sh [TEST...] - run cmt's integration tests.
#
# Without arguments it runs every tests/integration/t*.sh, in sorted order;
# with arguments only those (a path, a file name in tests/integration, or a
# name without .sh: t10-migrate-runc). Each test runs with its output shown as
# it comes, under a time limit (CMT_TEST_TIMEOUT seconds, default 300), and
# counts as one unit: passed (exit 0), skipped (exit 77) or failed (anything
# else, a timeout included). The last line is "N passed, N failed, N skipped";
# the exit status is 1 when a test failed, 2 on bad usage, else 0.
set -u

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=$repo/tests/integration
limit=${CMT_TEST_TIMEOUT:-300}
[[ $limit =~ ^[1-9][0-9]*$ ]] || { echo "run-integration: CMT_TEST_TIMEOUT must be a number of seconds" >&2; exit 2; }
command -v timeout >/dev/null || { echo "run-integration: timeout (coreutils) is missing" >&2; exit 2; }

case ${1:-} in -h | --help)
	sed -n '2,10s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
	exit 0
	;;
esac

tests=()
if [ $# -eq 0 ]; then
	while IFS= read -r t; do tests+=("$t"); done < <(find "$dir" -maxdepth 1 -name 't*.sh' -type f | LC_ALL=C sort)
	[ ${#tests[@]} -gt 0 ] || { echo "run-integration: no tests in $dir" >&2; exit 2; }
else
	for a in "$@"; do
		if [ -f "$a" ]; then
			tests+=("$(cd "$(dirname "$a")" && pwd)/$(basename "$a")")
		elif [ -f "$dir/$a" ]; then
			tests+=("$dir/$a")
		elif [ -f "$dir/$a.sh" ]; then
			tests+=("$dir/$a.sh")
		else
			echo "run-integration: no test '$a' (looked in . and $dir)" >&2
			exit 2
		fi
	done
fi

# Descriptors of whoever started us must not reach the tests (they would leak
# into the hosts' workloads, which CRIU then cannot dump).
for fd in "/proc/$$/fd/"*; do
	fd=${fd##*/}
	[ "$fd" -gt 2 ] && [ "$fd" != 255 ] && eval "exec $fd>&-" 2>/dev/null
done

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
secs() { printf '%d.%01d' $(($1 / 1000)) $(($1 % 1000 / 100)); }

passed=0 failed=0 skipped=0
summary=()
t_all=$(now_ms)
for t in "${tests[@]}"; do
	name=${t##*/}
	echo "=== $name"
	t0=$(now_ms)
	# timeout signals the test with TERM (lib.sh then takes its lab down) and,
	# if that hangs, kills it 30 s later.
	(cd "$repo" && exec timeout -k 30 "$limit" bash "$t" </dev/null)
	rc=$?
	ms=$(($(now_ms) - t0))
	case $rc in
	0) status=PASS passed=$((passed + 1)) ;;
	77) status=SKIP skipped=$((skipped + 1)) ;;
	124 | 137) status="FAIL (timed out after ${limit}s)" failed=$((failed + 1)) ;;
	*) status="FAIL (exit $rc)" failed=$((failed + 1)) ;;
	esac
	echo "--- $name: $status in $(secs "$ms") s"
	summary+=("$(printf '%-32s %-28s %8s s' "$name" "$status" "$(secs "$ms")")")
done

echo
echo "=== summary (total $(secs $(($(now_ms) - t_all))) s)"
printf '%s\n' "${summary[@]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]

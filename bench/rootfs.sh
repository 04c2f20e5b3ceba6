#!/usr/bin/env bash
# bench/rootfs.sh - downtime of a container with a large root filesystem and a
# small process: what the root filesystem costs while frozen.
#
#   CMT_BASE=/path/to/another/cmt bash bench/rootfs.sh
#
# Runs BENCH_RUNS rounds with build/cmt and, if CMT_BASE is set, with that
# other build (e.g. one from before the root-filesystem pre-copy: `git
# worktree add /tmp/base COMMIT && make -C /tmp/base`), alternating, and
# prints the medians of downtime and total time.  BENCH_ROOTFS_MIB=256 of
# random data in the root filesystem.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIB_NO_TAP=1
# shellcheck source=tests/integration/lib.sh
. "$here/tests/integration/lib.sh"
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_ROOTFS_MIB=${BENCH_ROOTFS_MIB:-256}
require_root
require_cmt
lab_start 2
work=$(mktemp -d /tmp/cmt-rb.XXXXXX)
at_exit rm -rf "$work"
results=$work/results

round() { # LABEL CMT ID
	make_bundle "$work/$3" h1 sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.01; done' >/dev/null
	head -c $((BENCH_ROOTFS_MIB << 20)) /dev/urandom >"$work/$3/rootfs/data"
	on h1 sh -c "cd '$work/$3' && exec runc run -d '$3' </dev/null >/dev/null 2>&1"
	wait_until 10 test -s "$work/$3/rootfs/tmp/count" || return 1
	on h1 "$2" migrate "$3" --to h2 --mode cold --rsh "ssh -F $LAB_SSH_CONFIG" --remote-cmt "$2" --json 2>/dev/null | tail -n 1 |
		python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["result"] == "ok", d
print(sys.argv[1], round(d["downtime_ms"]), round(d["total_ms"]))' "$1" >>"$results"
	on h2 runc delete -f "$3" >/dev/null 2>&1
	rm -rf "${work:?}/$3" "$LAB_DIR/h2/cmt/bundles/$3"
}
for i in $(seq 1 "$BENCH_RUNS"); do
	[ -n "${CMT_BASE:-}" ] && { round base "$CMT_BASE" "b$i" || echo "bench: base round $i failed" >&2; }
	round cmt "$CMT" "c$i" || echo "bench: round $i failed" >&2
done
python3 - "$results" "$BENCH_ROOTFS_MIB" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
print("root filesystem of %s MiB, medians (ms):" % sys.argv[2])
for label in ("base", "cmt"):
    r = [x for x in rows if x[0] == label]
    if r:
        print("  %-5s downtime %6.0f  total %6.0f  (%d runs)" % (label, statistics.median(int(x[1]) for x in r),
                                                            statistics.median(int(x[2]) for x in r), len(r)))
PY

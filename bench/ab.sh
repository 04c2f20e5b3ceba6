#!/usr/bin/env bash
# bench/ab.sh - two cmt builds side by side: one bench round each, alternating,
# so that the machine's changing load falls on both alike.
#
#   bash bench/ab.sh OLD_CMT NEW_CMT
#
# Each pair runs bench/bench.sh twice (BENCH_RUNS=1, no warm-up), first with
# CMT=OLD_CMT then with CMT=NEW_CMT (in the next pair the other way round), in
# one scenario; at the end it prints, per build, the medians of the downtime,
# of the gap the workload itself saw, of the dump and restore phases and of
# the total, with every downtime. Copy a build elsewhere before rebuilding:
# the bench runs the binary it is given, while it runs.
#
# Settings (environment): AB_PAIRS=4; AB_SIZE=256 (MiB), AB_METHOD=cmt-postcopy,
# AB_RATE=1gbit, AB_DIRTY=8 (MiB/s); AB_OUT=build/bench/ab-DATE (one JSON
# file per round, bench.sh's format).  Exit status 1 when a round failed.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[ $# -eq 2 ] || { echo "usage: bench/ab.sh OLD_CMT NEW_CMT" >&2; exit 2; }
A=$1 B=$2
for c in "$A" "$B"; do [ -x "$c" ] || { echo "ab: $c is not an executable" >&2; exit 2; }; done
PAIRS=${AB_PAIRS:-4}
OUT=${AB_OUT:-$here/build/bench/ab-$(date +%Y%m%dT%H%M%S)}
mkdir -p "$OUT"
rc=0
for i in $(seq 1 "$PAIRS"); do
	order="A B"
	[ $((i % 2)) = 0 ] && order="B A"
	for v in $order; do
		c=${!v}
		BENCH_SIZES=${AB_SIZE:-256} BENCH_RATES=${AB_RATE:-1gbit} BENCH_DIRTY=${AB_DIRTY:-8} \
			BENCH_METHODS="${AB_METHOD:-cmt-postcopy}" BENCH_RUNS=1 BENCH_WARMUP=0 BENCH_QUIET_WAIT=5 CMT=$c \
			BENCH_OUT="$OUT/$v-$i.jsonl" bash "$here/bench/bench.sh" >"$OUT/$v-$i.log" 2>&1 || rc=1
		grep "bench: mh" "$OUT/$v-$i.log" | sed "s/^/$v /"
	done
done
python3 - "$OUT" "$A" "$B" <<'PY'
import glob, json, statistics, sys
out, names = sys.argv[1], {"A": sys.argv[2], "B": sys.argv[3]}
for v in "AB":
    rs = []
    for f in sorted(glob.glob("%s/%s-*.jsonl" % (out, v))):
        rs += [json.loads(l) for l in open(f) if l.strip()]
    rs = [r for r in rs if r.get("result") == "ok" and not r.get("warmup")]
    if not rs:
        print("%s (%s): no round succeeded" % (v, names[v]))
        continue
    med = lambda f: statistics.median(f(r) for r in rs)
    print("%s (%s): %d rounds; medians: downtime %.0f ms, gap %.0f ms, dump %.0f, restore %.0f, total %.0f; downtimes %s"
          % (v, names[v], len(rs), med(lambda r: r["downtime_ms"]), med(lambda r: r["maxgap_ms"]),
             med(lambda r: r["phases"]["dump_ms"]), med(lambda r: r["phases"]["restore_ms"]),
             med(lambda r: r["total_ms"]), sorted(round(r["downtime_ms"]) for r in rs)))
PY
echo "ab: rounds in $OUT"
exit $rc

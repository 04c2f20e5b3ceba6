#!/usr/bin/env bash
# bench/throughput.sh - how fast cmt moves bytes between two lab hosts,
# against a plain ssh pipe with the same cipher (the same ssh and config), in
# one run.  Run as root after `make` (or `make bench`, which also installs
# dependencies).
#
# For each of BENCH_RUNS rounds (alternating the order):
#   cmt       a memhog container of BENCH_MIB MiB (incompressible memory)
#             migrated h1 -> h2 cold: (image bytes + root filesystem bytes sent
#             while frozen) / transfer_ms from cmt's JSON: the stream as cmt
#             runs it (read from disk, hash, frame, ssh, verify, write to disk);
#   ssh-disk  the same number of bytes of random data through
#             `ssh h2 'cat > FILE'` (the ssh pipe plus a disk write, as cmt does);
#   ssh-null  the same through `ssh h2 'cat > /dev/null'` (the ssh pipe alone).
# Prints the medians in MiB/s and the ratios cmt/ssh (the target of issue 5:
# cmt >= 0.8 x the ssh pipe).
#
# Settings: BENCH_MIB=512, BENCH_RUNS=3, BENCH_RATE= (e.g. 1gbit: tc tbf on eth0).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIB_NO_TAP=1
# shellcheck source=tests/integration/lib.sh
. "$here/tests/integration/lib.sh"
BENCH_MIB=${BENCH_MIB:-512}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_RATE=${BENCH_RATE:-}
require_root
require_cmt
require_cmd runc busybox ssh python3
[[ $BENCH_MIB =~ ^[1-9][0-9]*$ && $BENCH_RUNS =~ ^[1-9][0-9]*$ ]] || { echo "bad BENCH_MIB or BENCH_RUNS" >&2; exit 2; }

make -s -C "$REPO/tests/workload" OUT="$REPO/build/workload" >&2 || exit 1
lab_start 2
work=$(mktemp -d /tmp/cmt-tp.XXXXXX)
at_exit rm -rf "$work"
if [ -n "$BENCH_RATE" ]; then
	for h in h1 h2; do on "$h" tc qdisc replace dev eth0 root tbf rate "$BENCH_RATE" burst 256k latency 50ms; done
fi
RSH="ssh -F $LAB_SSH_CONFIG"
now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
results=$work/results
: >"$results"

cmt_round() { # ID
	local b=$work/$1 out
	make_bundle "$b" h1 /bin/memhog --mib "$BENCH_MIB" --verify-ms 0 --state /tmp/state >/dev/null || return 1
	cp "$REPO/build/workload/memhog" "$b/rootfs/bin/memhog"
	on h1 sh -c "cd '$b' && exec runc run -d '$1' </dev/null >/dev/null 2>&1" || return 1
	wait_until 120 test -s "$b/rootfs/tmp/state" || return 1
	out=$(on h1 "$CMT" migrate "$1" --to h2 --mode cold --rsh "$RSH" --remote-cmt "$CMT" --json 2>/dev/null | tail -n 1)
	on h2 runc delete --force "$1" >/dev/null 2>&1
	rm -rf "$b" "$LAB_DIR/h2/cmt/bundles/$1"
	python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["result"]=="ok", d
b = d["image_bytes"] + d["rootfs_bytes"]; print("cmt %d %.1f" % (b, d["transfer_ms"]))' "$out"
}

ssh_round() { # NAME DEST BYTES
	local t0 t1
	t0=$(now_ms)
	on h1 sh -c "head -c $3 '$work/random' | $SSH_PIPE h2 'cat > $2'" || return 1
	t1=$(now_ms)
	echo "$1 $3 $((t1 - t0))"
}

head -c $((BENCH_MIB << 20)) /dev/urandom >"$work/random"
# the ssh rounds reuse one warm connection (as cmt does): no login in the timing
SSH_PIPE="$RSH -o ControlMaster=auto -o ControlPath=$work/cm-%h -o ControlPersist=120"
on h1 sh -c "$SSH_PIPE h2 true" || { echo "bench: ssh to h2 fails" >&2; exit 1; }
for i in $(seq 1 "$BENCH_RUNS"); do
	line=$(cmt_round "tp$i") || { echo "bench: cmt round $i failed" >&2; exit 1; }
	echo "$line" >>"$results"
	bytes=$(cut -d' ' -f2 <<<"$line")
	if [ $((i % 2)) = 1 ]; then
		ssh_round ssh-disk "/tmp/cmt-tp-$$-h2" "$bytes" >>"$results"
		ssh_round ssh-null /dev/null "$bytes" >>"$results"
	else
		ssh_round ssh-null /dev/null "$bytes" >>"$results"
		ssh_round ssh-disk "/tmp/cmt-tp-$$-h2" "$bytes" >>"$results"
	fi
	rm -f "/tmp/cmt-tp-$$-h2"
done
python3 - "$results" "${BENCH_RATE:-unthrottled}" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
rate = {}
for name, b, ms in rows:
    rate.setdefault(name, []).append(int(b) / 2**20 / (float(ms) / 1000))
med = {k: statistics.median(v) for k, v in rate.items()}
print("throughput, link %s, medians of %d runs (MiB/s):" % (sys.argv[2], len(rate["cmt"])))
for k in ("cmt", "ssh-disk", "ssh-null"):
    print("  %-9s %7.1f   (%s)" % (k, med[k], " ".join("%.0f" % x for x in rate[k])))
print("  cmt / ssh-disk = %.2f, cmt / ssh-null = %.2f (target: >= 0.80)" % (med["cmt"] / med["ssh-disk"], med["cmt"] / med["ssh-null"]))
PY

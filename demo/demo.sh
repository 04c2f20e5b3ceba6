#!/usr/bin/env bash
# The cmt demo: two simulated hosts on this machine, a container on the first
# that keeps counting, a watcher that reads the count wherever the container
# runs, and `cmt migrate` moving it to the second host while the watcher looks.
# Run by `make demo` (which installs dependencies and builds first), as root.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
LIB_NO_TAP=1
. "$here/tests/integration/lib.sh"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

require_root
require_cmt
lab_start 2
work=$(mktemp -d /tmp/cmt-demo.XXXXXX)
at_exit rm -rf "$work"

say "two hosts are up: h1 ($LAB_IP_h1) and h2 ($LAB_IP_h2), each with its own sshd, PID namespace and runc root"

# The workload: a counter whose value lives in the shell's memory; it writes
# it to a file in its root filesystem every 50 ms.  A restart would show as a
# count that starts again from 1.
make_bundle "$work/web1" h1 sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done'
on h1 sh -c "cd '$work/web1' && exec runc run -d web1 </dev/null >/dev/null 2>&1"
count_file_h1=$work/web1/rootfs/tmp/count
count_file_h2=$LAB_DIR/h2/cmt/bundles/web1/rootfs/tmp/count
wait_until 10 test -s "$count_file_h1" || bail "the container did not start counting"
say "container web1 runs on h1:"
on h1 "$CMT" ps

# The watcher: prints where web1 runs and its count, every 250 ms.
watch_log=$work/watch.log
(
	last=0
	for _ in $(seq 1 60); do
		where="" n=""
		if on h1 runc state web1 2>/dev/null | grep -q '"status": "running"'; then
			where=h1 n=$(cat "$count_file_h1" 2>/dev/null || true)
		elif on h2 runc state web1 2>/dev/null | grep -q '"status": "running"'; then
			where=h2 n=$(cat "$count_file_h2" 2>/dev/null || true)
		else
			where="(frozen/moving)"
		fi
		[ -n "$n" ] && last=$n
		printf '  watcher: web1 on %-16s count=%s\n' "$where" "${n:-$last}"
		sleep 0.25
	done
) >"$watch_log" 2>&1 &
watcher=$!
at_exit "kill $watcher 2>/dev/null || true"
sleep 1.5

say "cmt migrate web1 --to h2   (run on h1)"
on h1 "$CMT" migrate web1 --to h2 --rsh "ssh -F $LAB_SSH_CONFIG" --remote-cmt "$CMT" --stats-file "$work/stats.json"
sleep 2
kill "$watcher" 2>/dev/null || true
wait "$watcher" 2>/dev/null || true

say "what the watcher saw:"
cat "$watch_log"

say "after the move:"
echo "h1:"; on h1 "$CMT" ps
echo "h2:"; on h2 "$CMT" ps
before=$(grep ' on h1 ' "$watch_log" | tail -1 | sed 's/.*count=//')
after=$(grep ' on h2 ' "$watch_log" | head -1 | sed 's/.*count=//')
now=$(cat "$count_file_h2")
echo "last count seen on h1: $before, first seen on h2: $after, now: $now"
if [ -n "$before" ] && [ -n "$after" ] && [ "$after" -ge "$before" ] && [ "$now" -gt "$after" ]; then
	echo "the counter went on from where it was: its memory moved with it"
else
	echo "unexpected: the count did not continue" >&2
	exit 1
fi

say "statistics (--stats-file):"
python3 - "$work/stats.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("result", "mode", "downtime_ms", "dump_ms", "transfer_ms", "restore_ms", "total_ms", "bytes_sent",
          "image_bytes", "rootfs_bytes"):
    v = d.get(k)
    print(f"  {k:14} {v:.0f}" if isinstance(v, float) else f"  {k:14} {v}")
print("  checks         " + ", ".join(f"{c['name']} {c['status']}" for c in d.get("checks", [])))
PY
say "tearing the lab down"

#!/usr/bin/env bash
# t10-migrate-runc.sh - cold migration of a runc container from h1 to h2 and
# back: the container keeps its memory (a counter held only in a shell
# variable goes on from where it was), it runs on the destination under the
# destination's cgroup parent with a rewritten config.json, and nothing of it
# is left on the source (runc state, processes, cgroup, migration images).
# LAB_* come from the lab's env file; single quotes keep $ for the shells in the hosts:
# shellcheck disable=SC2154,SC2016
set -u
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

require_root
require_cmt
require_cmd runc busybox python3 pgrep

# --- helpers -----------------------------------------------------------------

# ---------------------------------------------------------------------------

lab_start 2
work=$(mktemp -d /tmp/cmt-t10.XXXXXX)
at_exit rm -rf "$work"
at_exit 'on h1 runc delete --force ct1 >/dev/null 2>&1; on h2 runc delete --force ct1 >/dev/null 2>&1'

# The workload: a counter kept only in the shell's memory, written to a file of
# the container's root filesystem every 50 ms. $0 of that shell is a marker for
# pgrep ("[t]10..." so that pgrep's own command line does not match).
mark=t10ct-$$
pat="[t]${mark#t}"
make_bundle "$work/ct1" h1 sh -c 'i=0; while :; do i=$((i+1)); echo $i >/tmp/count; sleep 0.05; done' "$mark" ||
	bail "make_bundle failed"
# an absolute root.path, which the destination must turn into its own "rootfs"
"$PY" - "$work/ct1" <<'EOF' || bail "cannot edit config.json"
import json, os, sys
p = os.path.join(sys.argv[1], "config.json")
spec = json.load(open(p))
spec["root"]["path"] = os.path.join(sys.argv[1], "rootfs")
json.dump(spec, open(p, "w"), indent=2)
EOF
on h1 sh -c "cd '$work/ct1' && exec runc run -d ct1 </dev/null >/dev/null 2>&1" || bail "runc run ct1 on h1 failed"
count_h1=$work/ct1/rootfs/tmp/count
count_h2=$LAB_DIR/h2/cmt/bundles/ct1/rootfs/tmp/count
count_back=$LAB_DIR/h1/cmt/bundles/ct1/rootfs/tmp/count
if wait_until 10 count_ge "$count_h1" 10; then
	ok "ct1 counts on h1"
else
	bail "ct1 does not count on h1: $(cat "$count_h1" 2>&1)"
fi
pid_h1=$(runc_pid h1 ct1)
procs_h1=$(marker_pids h1 "$pat")
is "$procs_h1" "$pid_h1" "the counting shell is ct1's init, PID $pid_h1 on h1"

# --- h1 -> h2 ------------------------------------------------------------------
last_h1=$(count_read "$count_h1")
# what cmt tells CRIU for the dump, copied while the source waits after it
# (a fault point: the work directory goes with the migration)
echo "source after-dump stall 2000" >"$LAB_DIR/h1/cmt/faults"
conf_copy=$work/criu-dump.conf
(
	for _ in $(seq 200); do
		for f in "$LAB_DIR"/h1/cmt/migrations/*/work/criu-dump.conf; do
			[ -s "$f" ] && cp "$f" "$conf_copy" && exit 0
		done
		sleep 0.05
	done
) &
grab=$!
migrate_from h1 ct1 --to h2
wait "$grab"
is "$MIG_RC" 0 "cmt migrate ct1 --to h2 exits 0"
check "CRIU was told to skip its network lock (ct1's namespace is runc's, with only lo)" \
	grep -qx "network-lock skip" "$conf_copy"
check "... and to run cmt's action script (the late freeze)" grep -q "^action-script /" "$conf_copy"
jtest "JSON result is ok" 'd["result"] == "ok"' \
	"JSON mode is cold" 'd["mode"] == "cold"' \
	"JSON downtime_ms > 0" 'd["downtime_ms"] > 0' \
	"JSON total_ms >= downtime_ms" 'd["total_ms"] >= d["downtime_ms"]' \
	"JSON bytes_sent > 0" 'd["bytes_sent"] > 0' \
	"JSON has no error" '"error" not in d' \
	"CRIU's own parts of the dump and the restore, from its logs, lie within those steps" \
	'0 < d.get("criu_dump_ms", 0) <= d["dump_ms"] and 0 < d.get("criu_restore_ms", 0) <= d["restore_ms"]' \
	"the late freeze: runc and CRIU started while ct1 ran (steps criu-start, no freeze before the dump)" \
	'd["steps_ms"].get("criu-start", 0) > 0 and "freeze" not in d["steps_ms"]' \
	"the staged restore: h2's runc started before the freeze (step restore-staged)" \
	'd["steps_ms"].get("restore-staged", 0) > 0'

is "$(on h1 runc list -q)" "" "ct1 is gone from h1's runc list"
if on h1 test -e "/proc/$pid_h1" || [ -n "$(marker_pids h1 "$pat")" ]; then
	fail "ct1's processes are gone from h1" "$(on h1 ps -o pid,ppid,stat,args)"
else
	ok "ct1's processes are gone from h1"
fi
is "$(ls -d /sys/fs/cgroup/*/"$LAB_CGROUP_h1"/ct1 2>/dev/null)" "" "ct1's (frozen) cgroup on h1 is gone"
is "$(on h2 runc list -q)" ct1 "ct1 is in h2's runc list"
is "$(runc_status h2 ct1)" running "ct1 is running on h2"
pid_h2=$(runc_pid h2 ct1)
is "$(marker_pids h2 "$pat")" "$pid_h2" "the counting shell runs on h2 as ct1's init"
if watch_count "$count_h2" "$last_h1" 10 10; then
	ok "the counter goes on on h2 from at least $last_h1 (the last value seen on h1)"
else
	fail "the counter goes on on h2 from at least $last_h1 (the last value seen on h1)" "h2: $WATCHED"
fi

# the destination's config.json: its own root and cgroup
parent_h2=$(sed -n 's/^cgroup_parent *= *//p' "$LAB_DIR/h2/cmt/config")
cfg=$LAB_DIR/h2/cmt/bundles/ct1/config.json
read -r root_path cg_path < <("$PY" -c 'import json,sys; s=json.load(open(sys.argv[1])); print(s["root"]["path"], s["linux"]["cgroupsPath"])' "$cfg" 2>&1)
is "$root_path" rootfs "h2's config.json has root.path \"rootfs\""
is "$cg_path" "/$parent_h2/ct1" "h2's config.json has cgroupsPath under h2's cgroup_parent"
check "ct1's cgroup on h2 is under h2's cgroup parent" test -d "/sys/fs/cgroup/freezer/$parent_h2/ct1"
is "$(images_left h1)$(images_left h2)" "" "no migration images are left on h1 or h2"
diag "left under migrations/: $(find "$LAB_DIR"/h[12]/cmt/migrations -mindepth 1 2>/dev/null | tr '\n' ' ')"

# --- back: h2 -> h1 ------------------------------------------------------------
wait_until 5 count_ge "$count_h2" $((last_h1 + 10))
last_h2=$(count_read "$count_h2")
# back with the early freeze (config early_freeze = yes): frozen before runc checkpoint starts;
# and without the staged restore (staged_restore = no): h1's runc starts once the images are there
cfg_h2=$(cat "$LAB_DIR/h2/cmt/config")
printf 'early_freeze = yes\nstaged_restore = no\n' >>"$LAB_DIR/h2/cmt/config"
migrate_from h2 ct1 --to h1
printf '%s\n' "$cfg_h2" >"$LAB_DIR/h2/cmt/config"
is "$MIG_RC" 0 "cmt migrate ct1 --to h1 (back, run on h2) exits 0"
jtest "early_freeze = yes: frozen before the dump (a freeze step, no criu-start)" \
	'"freeze" in d["steps_ms"] and "criu-start" not in d["steps_ms"]' \
	"staged_restore = no: no restore-staged step" '"restore-staged" not in d["steps_ms"]' \
	"JSON result is ok (back)" 'd["result"] == "ok" and d["mode"] == "cold"' \
	"JSON downtime_ms > 0, total_ms >= downtime_ms, bytes_sent > 0 (back)" \
	'd["downtime_ms"] > 0 and d["total_ms"] >= d["downtime_ms"] and d["bytes_sent"] > 0' \
	"CRIU's own parts lie within the dump and the restore (back: CRIU started frozen)" \
	'0 < d.get("criu_dump_ms", 0) <= d["dump_ms"] and 0 < d.get("criu_restore_ms", 0) <= d["restore_ms"]'
is "$(on h2 runc list -q)" "" "ct1 is gone from h2's runc list"
if on h2 test -e "/proc/$pid_h2" || [ -n "$(marker_pids h2 "$pat")" ]; then
	fail "ct1's processes are gone from h2" "$(on h2 ps -o pid,ppid,stat,args)"
else
	ok "ct1's processes are gone from h2"
fi
check "the bundle cmt made on h2 is removed" test ! -e "$LAB_DIR/h2/cmt/bundles/ct1"
is "$(ls -d /sys/fs/cgroup/*/"$LAB_CGROUP_h2"/ct1 2>/dev/null)" "" "ct1's cgroup on h2 is gone"
is "$(on h1 runc list -q)" ct1 "ct1 is in h1's runc list again"
is "$(runc_status h1 ct1)" running "ct1 is running on h1 again"
is "$(on h1 runc state ct1 | sed -n 's/^ *"bundle": "\(.*\)",$/\1/p')" \
	/var/lib/cmt/bundles/ct1 "ct1's bundle on h1 is now the one cmt received"
if watch_count "$count_back" "$last_h2" 10 10; then
	ok "the counter goes on on h1 from at least $last_h2 (the last value seen on h2): round trip"
else
	fail "the counter goes on on h1 from at least $last_h2 (the last value seen on h2): round trip" "h1: $WATCHED"
fi
is "$(images_left h1)$(images_left h2)" "" "no migration images are left after the round trip"
check "the original bundle on h1 (the user's) is untouched" test -s "$work/ct1/config.json"

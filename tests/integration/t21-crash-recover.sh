#!/usr/bin/env bash
# Crash recovery and the per-workload lock:
# - cmt killed (SIGKILL) while the container is frozen after the dump: the
#   destination rolls back by itself, `cmt recover` resumes the container on
#   the source, exactly one copy runs;
# - the same for a process tree, recovered by the next `cmt ps`;
# - two migrations of one container at once: the second is refused, naming
#   the first, and the first completes.
set -u
. "$(dirname "$0")/lib.sh"
require_root
require_cmt
lab_start 2
work=$(mktemp -d /tmp/cmt-t21.XXXXXX)
at_exit rm -rf "$work"
RSH="ssh -F $LAB_SSH_CONFIG"

status_of() { on "$1" runc state ct1 2>/dev/null | sed -n 's/.*"status": "\(.*\)".*/\1/p'; }
counting() { local a; a=$(cat "$1"); wait_until 5 sh -c "[ \"\$(cat '$1')\" != '$a' ]"; }
h2_clean() { ! on h2 runc state ct1 >/dev/null 2>&1 && [ -z "$(ls "$LAB_DIR/h2/cmt/bundles" 2>/dev/null)" ]; }
in_own_cgroup() { on h1 grep -q 'freezer:/$' "/proc/$1/cgroup"; }
no_copy_on_h2() { ! on h2 pgrep -f "$1" >/dev/null; }

make_bundle "$work/ct1" h1 sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done'
on h1 sh -c "cd '$work/ct1' && exec runc run -d ct1 </dev/null >/dev/null 2>&1"
count=$work/ct1/rootfs/tmp/count
wait_until 10 test -s "$count" || bail "container did not start"

# --- cmt killed while the container is frozen --------------------------------
on h1 "$CMT" migrate ct1 --to h2 --rsh "$RSH" --remote-cmt "$CMT" --hook-post-dump 'kill -KILL $PPID' \
	>"$work/kill.out" 2>&1
rc=$?
is "$rc" 137 "cmt was killed during the migration"
is "$(status_of h1)" paused "the container is left frozen on h1"
check "a journal says so" sh -c "grep -l 'state=frozen' $LAB_DIR/h1/cmt/migrations/*/journal"
wait_until 15 h2_clean
is "$?" 0 "the destination rolled back by itself (nothing registered, no bundle)"
out=$(on h1 "$CMT" recover)
check "cmt recover says it resumed the container" grep -q 'container ct1 resumed on h1' <<<"$out"
is "$(status_of h1)" running "the container runs on h1 again"
check "and counts on" counting "$count"
check "no journal is left" sh -c "! ls $LAB_DIR/h1/cmt/migrations/*/journal 2>/dev/null"
is "$(on h1 "$CMT" recover)" "nothing to recover" "a second recover has nothing to do"

# --- the per-workload lock ---------------------------------------------------
on_bg h1 "$CMT" migrate ct1 --to h2 --rsh "$RSH" --remote-cmt "$CMT" --hook-pre-dump "sleep 3"
first=$ON_BG_PID
# (held, not just there: the lock file of the killed migration above is
# still there, with its content, and waiting for that raced the second one;
# /proc/locks shows the hold without taking the lock, as a probe would)
lock_held() {
	local ino
	ino=$(stat -c %i "$LAB_DIR/h1/cmt/locks/container-ct1.lock" 2>/dev/null) || return 1
	grep -q " FLOCK .*:$ino " /proc/locks
}
wait_until 10 lock_held
err=$(on h1 "$CMT" migrate ct1 --to h2 --rsh "$RSH" --remote-cmt "$CMT" 2>&1 >/dev/null)
rc=$?
is "$rc" 1 "a second migration of the same container is refused"
check "the message says another migration is in progress" grep -q 'another migration of container ct1 is in progress' <<<"$err"
wait "$first"
is "$?" 0 "the first migration completes"
is "$(status_of h2)" running "the container runs on h2"
is "$(status_of h1)" "" "and not on h1"

# --- a process tree, recovered by the next cmt command -------------------------
marker=cmt-t21-$$
pid=$(on h1 sh -c "setsid sh -c 'j=0; while :; do j=\$((j+1)); echo \$j > /tmp/$marker; sleep 0.05; done' </dev/null >/dev/null 2>&1 & echo \$!")
at_exit "on h1 kill -9 $pid 2>/dev/null; rm -f /tmp/$marker"
wait_until 10 test -s "/tmp/$marker" || bail "process tree did not start"
on h1 "$CMT" migrate --pid "$pid" --to h2 --rsh "$RSH" --remote-cmt "$CMT" --hook-post-dump 'kill -KILL $PPID' \
	>"$work/kill2.out" 2>&1
is "$?" 137 "cmt was killed while the process tree was frozen" || diag "$(cat "$work/kill2.out")"
state=$(on h1 sh -c "grep State /proc/$pid/status")
frozen_cg=$(on h1 sh -c "grep freezer /proc/$pid/cgroup")
check "the tree sits in cmt's freezer cgroup" grep -q 'freeze-' <<<"$frozen_cg"
on h1 "$CMT" ps >/dev/null
wait_until 5 in_own_cgroup "$pid"
is "$?" 0 "the next cmt command put it back in its own cgroup"
check "and it counts on" counting "/tmp/$marker"
check "cmt's freezer cgroup is gone" sh -c "! ls -d /sys/fs/cgroup/freezer/$LAB_CGROUP_h1/freeze-* 2>/dev/null"
wait_until 15 no_copy_on_h2 "$marker"
is "$?" 0 "no copy of the tree on h2"

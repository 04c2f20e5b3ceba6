#!/usr/bin/env bash
# t11-migrate-pid.sh - cold migration of a process tree (no container) with
# `cmt migrate --pid`: a parent shell and the child it waits for, started in
# their own session on h1, move to h2 with their PIDs, their parent/child
# relation and their memory (the child's counter, kept only in a shell
# variable, goes on); nothing of them is left on h1.
# LAB_* come from the lab's env file; single quotes keep $ for the shells in the hosts:
# shellcheck disable=SC2154,SC2016
set -u
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

require_root
require_cmt
require_cmd python3 pgrep ps setsid

# --- helpers -----------------------------------------------------------------

ppid_of() { on "$1" ps -o ppid= -p "$2" | tr -d ' '; }

# ---------------------------------------------------------------------------

lab_start 2
work=$(mktemp -d /tmp/cmt-t11.XXXXXX)
at_exit rm -rf "$work"
count=$work/count # /tmp is the same on both hosts

# Markers for pgrep, in $0 of each shell: the parent's command line must not
# contain the child's marker, so the child's $0 is made from the parent's.
# (Patterns "[t]11..." so that pgrep's own command line does not match.)
mark=t11-$$
pat_parent="[t]${mark#t}-parent"
pat_child="[t]${mark#t}-child"
child_script="i=0; while :; do i=\$((i+1)); echo \$i >$count; sleep 0.05; done"
parent_script='sh -c "$1" "${0%-parent}-child" & wait'
# setsid: the root leads its own session (no --shell-job needed); stdio is
# /dev/null opened inside h1, by the shell that starts it there.
root=$(on h1 sh -c 'setsid sh -c "$1" "$2-parent" "$3" </dev/null >/dev/null 2>&1 & echo $!' \
	start "$parent_script" "$mark" "$child_script")
[[ $root =~ ^[0-9]+$ ]] || bail "could not start the process tree on h1: $root"
if wait_until 10 count_ge "$count" 10; then
	ok "the process tree counts on h1"
else
	bail "the process tree does not count on h1: $(cat "$count" 2>&1); $(on h1 ps -o pid,ppid,args)"
fi
parent_h1=$(marker_pids h1 "$pat_parent")
child_h1=$(marker_pids h1 "$pat_child")
is "$parent_h1" "$root" "the parent shell is the root of the tree, PID $root on h1"
if [[ $child_h1 =~ ^[0-9]+$ ]] && [ "$(ppid_of h1 "$child_h1")" = "$root" ]; then
	ok "the counting child ($child_h1) is the parent's child on h1"
else
	fail "the counting child is the parent's child on h1" "$(on h1 ps -o pid,ppid,sid,args)"
fi
diag "h1's process tree before the move:"
diag "$(on h1 ps -o pid,ppid,sid,args)"

last_h1=$(count_read "$count")
migrate_from h1 --pid "$root" --to h2
is "$MIG_RC" 0 "cmt migrate --pid $root --to h2 exits 0"
jtest "JSON result is ok, mode cold" 'd["result"] == "ok" and d["mode"] == "cold"' \
	"JSON downtime_ms > 0, total_ms >= downtime_ms, bytes_sent > 0" \
	'd["downtime_ms"] > 0 and d["total_ms"] >= d["downtime_ms"] and d["bytes_sent"] > 0' \
	"CRIU's own parts (libcriu's logs) lie within the dump and the restore" \
	'0 < d.get("criu_dump_ms", 0) <= d["dump_ms"] and 0 < d.get("criu_restore_ms", 0) <= d["restore_ms"]'

parent_h2=$(marker_pids h2 "$pat_parent")
child_h2=$(marker_pids h2 "$pat_child")
if [[ $parent_h2 =~ ^[0-9]+$ ]] && [[ $child_h2 =~ ^[0-9]+$ ]]; then
	ok "the parent ($parent_h2) and the child ($child_h2) run on h2"
else
	fail "the parent and the child run on h2" "parent: '$parent_h2' child: '$child_h2'" \
		"$(on h2 ps -o pid,ppid,sid,args)"
fi
is "$(ppid_of h2 "${child_h2:-0}")" "${parent_h2:-none}" "on h2 the child is still the parent's child"
is "$parent_h2 $child_h2" "$parent_h1 $child_h1" "the processes kept their PIDs"
is "$(on h2 ps -o sid= -p "${parent_h2:-0}" | tr -d ' ')" "${parent_h2:-none}" \
	"the parent still leads its own session on h2"
is "$(marker_pids h1 "$pat_parent")$(marker_pids h1 "$pat_child")" "" "the parent and the child are gone from h1"
if watch_count "$count" "$last_h1" 10 10; then
	ok "the counter goes on from at least $last_h1 (the last value seen on h1)"
else
	fail "the counter goes on from at least $last_h1 (the last value seen on h1)" "seen: $WATCHED"
fi
is "$(ls -d /sys/fs/cgroup/freezer/"$LAB_CGROUP_h1"/freeze-* /sys/fs/cgroup/freezer/cmt/freeze-"$root" 2>/dev/null)" "" \
	"the freezer cgroup cmt used on h1 is gone"
is "$(images_left h1)$(images_left h2)" "" "no migration images are left on h1 or h2"
diag "h2's processes after the move:"
diag "$(on h2 ps -o pid,ppid,sid,args)"

# The relation is real, not only what ps shows: the parent's `wait` ends when
# its child ends on h2.
on h2 kill "${child_h2:-0}"
if wait_until 5 ! on h2 kill -0 "${parent_h2:-0}" 2>/dev/null; then
	ok "on h2 the parent's wait returns when the child is killed (it exits)"
else
	fail "on h2 the parent's wait returns when the child is killed (it exits)" "$(on h2 ps -o pid,ppid,stat,args)"
fi

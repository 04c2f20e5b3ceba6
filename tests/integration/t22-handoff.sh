#!/usr/bin/env bash
# The handoff's later half (doc/design.md "Handoff"):
# - a long hook with a short lease: keepalives keep the destination waiting;
# - a migrated container was restored stopped and resumed on COMMIT: it runs on
#   h2, and h2 recorded the outcome `committed` for a later QUERY;
# - a source that lost DONE (journal `committing`) asks the destination, from
#   `cmt recover`: committed -> its frozen copy is removed; aborted -> resumed;
#   unknown or unreachable -> left frozen, journal kept, the message says so;
# - the destination's own recovery: a dead incoming migration that never got
#   COMMIT is removed (and recorded aborted, which is what a QUERY then
#   answers); one that got COMMIT but died before resuming is resumed.
set -u
. "$(dirname "$0")/lib.sh"
require_root
require_cmt
lab_start 2
work=$(mktemp -d /tmp/cmt-t22.XXXXXX)
at_exit rm -rf "$work"
RSH="ssh -F $LAB_SSH_CONFIG"
h1root=$LAB_DIR/h1/cmt
h2root=$LAB_DIR/h2/cmt

counter() { # NAME HOST: a container counting into its rootfs /tmp/count
	make_bundle "$work/$1" "$2" sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done' || bail "bundle $1"
	on "$2" sh -c "cd '$work/$1' && exec runc run -d $1 </dev/null >/dev/null 2>&1" || bail "runc run $1 on $2"
	wait_until 10 test -s "$work/$1/rootfs/tmp/count" || bail "$1 did not start"
}
counting() { # FILE: the number in FILE moves
	local a
	a=$(count_read "$1")
	wait_until 5 sh -c "[ \"\$(cat '$1' 2>/dev/null)\" != '$a' ] && [ -s '$1' ]"
}
journal() { # HOST ID STATE WORKLOAD [RSH]: write a journal as a dead cmt would have left it
	local d=$LAB_DIR/$1/cmt/migrations/$2
	mkdir -p "$d"
	printf 'state=%s\nkind=1\nworkload=%s\nfreeze_cg=\npeer=h2\nbundle=%s\nrsh=%s\nremote_cmt=%s\n' \
		"$3" "$4" "${BUNDLE:-}" "${5:-$RSH}" "$CMT" >"$d/journal"
}
outcome() { mkdir -p "$h2root/outcomes" && echo "$2" >"$h2root/outcomes/$1"; }
stopped() { # HOST CONTAINER: every process of the container is stopped (T)
	local p s pids
	pids=$(on "$1" runc ps --format json "$2" 2>/dev/null | tr -c '0-9' ' ')
	[ -n "${pids// /}" ] || return 1
	for p in $pids; do
		s=$(on "$1" sh -c "sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' /proc/$p/status")
		[ "$s" = T ] || return 1
	done
}

# --- a real migration: restored stopped, resumed on COMMIT, outcome recorded ---
counter ct1 h1
migrate_from h1 ct1 --to h2
is "$MIG_RC" 0 "ct1 migrates to h2"
is "$(runc_status h2 ct1)" running "ct1 runs on h2"
check "and counts there (resumed after the commit)" counting "$LAB_DIR/h2/cmt/bundles/ct1/rootfs/tmp/count"
mid=$(sed -n 's/.*"migration_id": *"\([^"]*\)".*/\1/p' <<<"$MIG_JSON")
check "h2 recorded the outcome 'committed' for migration $mid" grep -qx committed "$h2root/outcomes/$mid"

# --- a long local step is not silence: keepalives carry the lease over it ---------
counter ck h1
migrate_from h1 ck --to h2 --lease 2 --hook-post-dump 'sleep 5'
is "$MIG_RC" 0 "a 5 s hook while frozen does not expire a 2 s lease (keepalives)"
is "$(runc_status h2 ck)" running "ck runs on h2"
on h2 runc delete --force ck >/dev/null 2>&1

# --- lost DONE, destination says committed: the frozen copy goes ----------------
counter ct2 h1
on h1 runc pause ct2
journal h1 t22-a committing ct2
outcome t22-a committed
out=$(on h1 "$CMT" recover 2>&1)
check "recover asks h2 and reports the commit" grep -q 'ct2 runs on h2 (committed)' <<<"$out"
is "$(runc_status h1 ct2)" "" "the frozen copy on h1 is removed"
check "the journal is gone" test ! -e "$h1root/migrations/t22-a/journal"

# --- destination says aborted: resumed -------------------------------------------
counter ct3 h1
on h1 runc pause ct3
journal h1 t22-b committing ct3
outcome t22-b aborted
out=$(on h1 "$CMT" recover 2>&1)
check "recover reports the rollback" grep -q 'ct3 rolled back on h2' <<<"$out"
is "$(runc_status h1 ct3)" running "ct3 runs on h1 again"
check "and counts" counting "$work/ct3/rootfs/tmp/count"

# --- destination does not know, then cannot be reached: left frozen ---------------
counter ct4 h1
on h1 runc pause ct4
journal h1 t22-c committing ct4
out=$(on h1 "$CMT" recover 2>&1)
check "unknown outcome: in doubt, said so" grep -q 'in doubt.*ct4 is left frozen' <<<"$out"
is "$(runc_status h1 ct4)" paused "ct4 stays frozen on h1 (never two copies)"
check "the journal is kept for the next recover" test -e "$h1root/migrations/t22-c/journal"
journal h1 t22-c committing ct4 "ssh -F $LAB_SSH_CONFIG -o ConnectTimeout=2 -p 1"
out=$(on h1 "$CMT" recover 2>&1)
check "unreachable destination: in doubt, the reason given" grep -q 'cannot ask the destination' <<<"$out"
is "$(runc_status h1 ct4)" paused "ct4 still frozen"
journal h1 t22-c committing ct4
outcome t22-c aborted
out=$(on h1 "$CMT" recover 2>&1)
is "$(runc_status h1 ct4)" running "once h2 answers (aborted), the next recover resumes ct4"

# --- the destination's own recovery ------------------------------------------------
# a dead incoming migration that never got COMMIT: its copy (stopped) goes
counter ct5 h2
on h2 runc kill --all ct5 STOP
wait_until 5 stopped h2 ct5
is "$?" 0 "ct5 is stopped on h2 (as a restore leaves it)"
# a journal that would make recovery remove something outside the state root
# is refused and nothing is touched
mkdir -p "$work/precious" && touch "$work/precious/file"
BUNDLE=$work/precious journal h2 t22-x dest-restored ct5
out=$(on h2 "$CMT" recover 2>&1)
check "a journal naming a bundle outside the state root is refused" grep -q 'corrupted journal.*not under' <<<"$out"
check "and what it named is untouched" test -e "$work/precious/file"
is "$(runc_status h2 ct5)" running "ct5 untouched too"
rm -rf "$LAB_DIR/h2/cmt/migrations/t22-x"
BUNDLE=/var/lib/cmt/bundles/ct5 journal h2 t22-d dest-restored ct5
out=$(on h2 "$CMT" recover 2>&1)
check "h2 removes the uncommitted copy" grep -q 'half-restored container ct5 was removed' <<<"$out"
is "$(runc_status h2 ct5)" "" "ct5 is gone from h2"
check "and records the outcome 'aborted' (what a QUERY answers)" grep -qx aborted "$h2root/outcomes/t22-d"

# COMMIT arrived, the agent died before resuming: recovery resumes it
counter ct6 h2
on h2 runc kill --all ct6 STOP
wait_until 5 stopped h2 ct6
BUNDLE=$work/ct6 journal h2 t22-e dest-committed ct6
out=$(on h2 "$CMT" recover 2>&1)
check "h2 finishes the committed migration" grep -q 'committed; container ct6 runs on h2' <<<"$out"
wait_until 5 ! stopped h2 ct6
is "$?" 0 "ct6's processes are no longer stopped"
check "ct6 counts again" counting "$work/ct6/rootfs/tmp/count"
check "outcome 'committed' recorded" grep -qx committed "$h2root/outcomes/t22-e"

for c in ct1; do on h2 runc delete --force $c >/dev/null 2>&1; done
for c in ct3 ct4; do on h1 runc delete --force $c >/dev/null 2>&1; done
on h2 runc delete --force ct6 >/dev/null 2>&1

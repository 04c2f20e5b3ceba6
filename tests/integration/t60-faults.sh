#!/usr/bin/env bash
# Fault injection: a fault at every step of the handoff, on either side, and
# after each one the promise holds: the workload runs exactly once (on the
# host the scenario says), its memory is intact (memhog checks every page),
# it is neither frozen nor stopped and it ticks on; no journal, image
# directory, half-restored bundle or CRIU network-lock rule is left on either
# host; cmt's exit status and message say what happened.
#
# Faults are injected through <state root>/faults (src/util/fault.c), except
# the disk (a small tmpfs over the destination's migrations directory) and
# the failing restore (a runc wrapper on the destination).  A crash is
# followed by what the user would do next: any cmt command on that host,
# here `cmt recover`.
#
# While each migration runs, a watcher samples both copies' tick counters:
# both advancing in one window, while a memhog on the destination is not
# stopped, means two copies ran at once, which fails the scenario (the
# destination's copy is restored stopped until COMMIT).
#
# The table below is the one in README.md ("Fault injection"); each row:
#   NAME  MODE  SIDE  POINT  ACTION  ARG  RC  RUNS_ON  MESSAGE (regex)
# SIDE/POINT/ACTION: see src/util/fault.h; "disk", "memory" and "runc" are special.
# RC is cmt migrate's exit status (137: killed); RUNS_ON where the workload
# must run in the end.  T60_ONLY=REGEX runs only the rows whose name matches.
set -u
. "$(dirname "$0")/lib.sh"
require_root
require_cmt
require_cmd runc busybox iptables-save

SCENARIOS=(
	"ssh-cut-mid-stream        cold source mid-stream        cut     -    1   h1 connection .*(closed|lost)"
	"ssh-cut-mid-stream-frozen cold source mid-stream@frozen cut     -    1   h1 connection .*(closed|lost)"
	"ssh-cut-after-restored    cold source after-restored    cut     -    1   h1 connection .*(closed|lost)"
	"ssh-cut-after-commit      cold source after-commit-sent cut     -    0   h2 -"
	"agent-killed-after-ready  cold agent  after-prepare     kill    -    1   h1 connection .*(closed|lost)"
	"agent-killed-mid-stream   cold agent  mid-stream        kill    -    1   h1 connection .*(closed|lost)"
	"agent-killed-mid-images   cold agent  mid-stream@frozen kill    -    1   h1 connection .*(closed|lost)"
	"agent-killed-restored     cold agent  after-restore     kill    -    1   h1 connection .*(closed|lost)"
	"agent-killed-committed    cold agent  after-commit      kill    -    0   h2 -"
	"source-killed-frozen      cold source after-freeze      kill    -    137 h1 -"
	"source-killed-restored    cold source after-restored    kill    -    137 h1 -"
	"source-killed-committing  cold source after-commit-sent kill    -    137 h2 -"
	"source-killed-destroying  cold source before-destroy    kill    -    137 h2 -"
	"disk-full                 cold disk   -                 -       -    1   h1 (space|ENOSPC|No space)"
	"images-memory-full        cold memory -                 -       -    1   h1 (space|ENOSPC|No space)"
	"restore-fails             cold runc   -                 -       -    1   h1 restore"
	"corrupted-stream          cold source mid-stream        corrupt -    1   h1 (hash|XXH3|corrupt|damaged|mismatch)"
	"corrupted-images          cold source mid-stream@frozen corrupt -    1   h1 (hash|XXH3|corrupt|damaged|mismatch)"
	"dest-too-slow-restore     cold agent  before-restore    stall   9000 1   h1 did not answer"
	"source-too-slow-commit    cold source after-restored    stall   5000 1   h1 (too late|lease)"
	"dest-too-slow-commit      cold agent  after-commit      stall   6000 0   h2 confirms the commit"
	"ssh-cut-precopy           precopy source mid-precopy    cut     -    1   h1 connection .*(closed|lost)"
	"agent-killed-precopy      precopy agent  mid-precopy    kill    -    1   h1 connection .*(closed|lost)"
	"corrupted-precopy         precopy source mid-precopy    corrupt -    1   h1 (hash|XXH3|corrupt|damaged|mismatch)"
	"agent-killed-page-images  precopy agent  mid-stream@frozen kill -    1   h1 connection .*(closed|lost)"
	"corrupted-page-images     precopy source mid-stream@frozen corrupt - 1   h1 (hash|XXH3|corrupt|damaged|mismatch)"
	"slow-precopy-round        precopy source mid-precopy    stall   5000 0   h2 -"
	"checkpoint-fails-precopy  precopy runc-dump -           -       -    1   h1 injected checkpoint failure"
	"late-freeze-fails         cold runc-pause  -            -       -    1   h1 injected pause failure"
	"late-freeze-fails-postcopy postcopy runc-pause -        -       -    1   h1 injected pause failure"
	"criu-skips-action-script  cold criu-noconf -            -       -    1   h1 without running cmt's action script"
)
LEASE=3 # seconds: short, so that the lease scenarios are quick
CRIU_BIN=$REPO/.deps/criu/usr/sbin/criu # the one cmt finds first (src/criu/access.c)
[ -x "$CRIU_BIN" ] || CRIU_BIN=$(command -v criu) || bail "no CRIU"

lab_start 2
# post-copy rows need CRIU's pipes large enough (machine-wide: raised for those
# rows only, as t31 does, and put back)
old_pipe=$(sysctl -n fs.pipe-max-size) || bail "cannot read fs.pipe-max-size"
at_exit "sysctl -q -w fs.pipe-max-size=$old_pipe"
work=$(mktemp -d /tmp/cmt-t60.XXXXXX)
at_exit rm -rf "$work"
RSH="ssh -F $LAB_SSH_CONFIG"
make -s -C "$REPO/tests/workload" OUT="$work/bin" >/dev/null || bail "cannot build memhog"

state_of() { # ID HOST: memhog's state file of container ID on HOST
	if [ "$2" = h1 ]; then echo "$work/$1/rootfs/tmp/state"; else echo "$LAB_DIR/h2/cmt/bundles/$1/rootfs/tmp/state"; fi
}
agents_gone() { ! on h2 pgrep -f 'agent --stdio' >/dev/null; }
procs_stopped() { # HOST ID: some process of the container is stopped (T)
	local p pids
	pids=$(on "$1" runc ps --format json "$2" 2>/dev/null | tr -c '0-9' ' ')
	for p in $pids; do
		[ "$(on "$1" sh -c "sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' /proc/$p/status")" = T ] && return 0
	done
	return 1
}

start_memhog() { # ID
	local b=$work/$1
	make_bundle "$b" h1 /bin/memhog --mib 16 --dirty-mib-s 2 --verify-ms 500 --state /tmp/state >/dev/null ||
		{ echo "make_bundle failed"; return 1; }
	cp "$work/bin/memhog" "$b/rootfs/bin/memhog"
	on h1 sh -c "cd '$b' && exec runc run -d '$1' </dev/null >/dev/null 2>&1" || { echo "runc run failed"; return 1; }
	wait_until 30 test -s "$b/rootfs/tmp/state" || { echo "no state file"; return 1; }
	wait_until 5 mh_ge "$b/rootfs/tmp/state" ticks 1 || { echo "no ticks: $(cat "$b/rootfs/tmp/state")"; return 1; }
}

# the state (/proc/PID/stat field 3) of every memhog on HOST that is not
# stopped (T, t) or dead (Z, X): what runs there
memhog_running() {
	on "$1" sh -c 'for p in $(pgrep -x memhog); do s=$(cut -d" " -f3 "/proc/$p/stat" 2>/dev/null); case "$s" in T|t|Z|X|"") ;; *) echo "$p:$s" ;; esac; done' 2>/dev/null
}

# watch_twice ID OUT: until killed, sample both copies' tick counters every
# 200 ms; a window in which both advanced while a memhog runs on h2 means two
# copies ran at once.  (h2's state file is the one in its bundle: the root
# filesystem's delta copies h1's there while h1 is frozen, and h1 may tick
# again in the same window after a rollback; that copy alone, with h2's
# memhog stopped or not there, is not a second copy running.)
watch_twice() {
	local a=$work/$1/rootfs/tmp/state b=$LAB_DIR/h2/cmt/bundles/$1/rootfs/tmp/state pa="" pb="" ta tb run
	while :; do
		ta=$(mh_get "$a" ticks 2>/dev/null || echo "")
		tb=$(mh_get "$b" ticks 2>/dev/null || echo "")
		if [ -n "$pa" ] && [ -n "$pb" ] && [ -n "$ta" ] && [ -n "$tb" ] && [ "$ta" -gt "$pa" ] && [ "$tb" -gt "$pb" ]; then
			run=$(memhog_running h2)
			if [ -n "$run" ]; then
				echo "both copies ticked between two samples: h1 $pa->$ta, h2 $pb->$tb (running on h2: $run)" >>"$2"
			else
				echo "h2's state file changed while its memhog was stopped or gone: h1 $pa->$ta, h2 $pb->$tb" >>"$2.copies"
			fi
		fi
		pa=$ta pb=$tb
		sleep 0.2
	done
}

cleanup_ct() { # ID
	local h
	for h in h1 h2; do on "$h" runc delete --force "$1" >/dev/null 2>&1; done
	rm -rf "${work:?}/$1" "$LAB_DIR/h2/cmt/bundles/$1" "$LAB_DIR/h1/cmt/bundles/$1"
}

results=()
n=0
for row in "${SCENARIOS[@]}"; do
	read -r name mode side point action arg want_rc runs_on msg <<<"$row"
	# T60_ONLY=REGEX: only the rows whose name matches (while working on one)
	[ -n "${T60_ONLY:-}" ] && ! [[ $name =~ $T60_ONLY ]] && continue
	n=$((n + 1))
	id=f$n
	diag "--- scenario $name: $side $point $action $arg (mode $mode)"
	cleanup_ct "$id"
	why=$(start_memhog "$id" 2>&1) || bail "$name: memhog did not start: $why"
	restore="" restore1=""
	case $side in
	source) echo "source $point $action ${arg/-/}" >"$LAB_DIR/h1/cmt/faults" ;;
	agent) echo "agent $point $action ${arg/-/}" >"$LAB_DIR/h2/cmt/faults" ;;
	disk)
		# the images on the (full) disk, not in memory
		restore=$(cat "$LAB_DIR/h2/cmt/config")
		echo "images_tmpfs = no" >>"$LAB_DIR/h2/cmt/config"
		on h2 mount -t tmpfs -o size=2m "cmt-t60-$LAB_NAME" /var/lib/cmt/migrations || bail "cannot mount the small tmpfs"
		;;
	memory)
		# the images' tmpfs on the destination too small for them
		restore=$(cat "$LAB_DIR/h2/cmt/config")
		echo "images_tmpfs = 2m" >>"$LAB_DIR/h2/cmt/config"
		;;
	runc)
		printf '#!/bin/sh\nfor a in "$@"; do [ "$a" = restore ] && { echo %s >&2; exit 1; }; done\nexec %s "$@"\n' \
			"'time=\"x\" level=error msg=\"injected restore failure\"'" "$(command -v runc)" >"$work/runc-fail"
		chmod +x "$work/runc-fail"
		restore=$(cat "$LAB_DIR/h2/cmt/config")
		echo "runc = $work/runc-fail" >>"$LAB_DIR/h2/cmt/config"
		;;
	runc-dump)
		# the source's checkpoint writes every image, then fails: in pre-copy the
		# page image has travelled meanwhile (engine/dumpsend.h)
		printf '#!/bin/sh\nfor a in "$@"; do [ "$a" = checkpoint ] && { %s "$@"; echo %s >&2; exit 1; }; done\nexec %s "$@"\n' \
			"$(command -v runc)" "'time=\"x\" level=error msg=\"injected checkpoint failure\"'" "$(command -v runc)" \
			>"$work/runc-dump-fail"
		chmod +x "$work/runc-dump-fail"
		restore1=$(cat "$LAB_DIR/h1/cmt/config")
		echo "runc = $work/runc-dump-fail" >>"$LAB_DIR/h1/cmt/config"
		;;
	runc-pause)
		# the late freeze (CRIU's pre-dump action script asks cmt, which runs
		# runc pause) fails: CRIU gives the dump up before it froze anything
		printf '#!/bin/sh\nfor a in "$@"; do [ "$a" = pause ] && { echo %s >&2; exit 1; }; done\nexec %s "$@"\n' \
			"'time=\"x\" level=error msg=\"injected pause failure\"'" "$(command -v runc)" >"$work/runc-pause-fail"
		chmod +x "$work/runc-pause-fail"
		restore1=$(cat "$LAB_DIR/h1/cmt/config")
		echo "runc = $work/runc-pause-fail" >>"$LAB_DIR/h1/cmt/config"
		;;
	criu-noconf)
		# a CRIU that never reads cmt's configuration file (so never runs its
		# action script): it dumps a running container and resumes it
		printf '#!/bin/sh\nunset CRIU_CONFIG_FILE\nexec %s "$@"\n' "$CRIU_BIN" >"$work/criu-noconf"
		chmod +x "$work/criu-noconf"
		restore1=$(cat "$LAB_DIR/h1/cmt/config")
		echo "criu = $work/criu-noconf" >>"$LAB_DIR/h1/cmt/config"
		;;
	esac

	if [ "$mode" = postcopy ] && [ "$old_pipe" -lt 4194304 ]; then
		sysctl -q -w fs.pipe-max-size=4194304 || bail "cannot raise fs.pipe-max-size"
	fi
	: >"$work/twice"
	: >"$work/twice.copies"
	watch_twice "$id" "$work/twice" &
	watcher=$!
	on h1 "$CMT" migrate "$id" --to h2 --mode "$mode" --lease "$LEASE" --rsh "$RSH" --remote-cmt "$CMT" \
		>"$work/out" 2>"$work/err" </dev/null
	rc=$?
	# undo the environment's fault, let a stalled agent finish, then do what a
	# user does next: any cmt command on each host runs the recovery
	[ "$side" = disk ] && on h2 umount /var/lib/cmt/migrations
	[ -n "$restore" ] && printf '%s\n' "$restore" >"$LAB_DIR/h2/cmt/config"
	[ -n "$restore1" ] && printf '%s\n' "$restore1" >"$LAB_DIR/h1/cmt/config"
	[ "$mode" = postcopy ] && sysctl -q -w fs.pipe-max-size="$old_pipe"
	wait_until 30 agents_gone || diag "$name: an agent is still running on h2"
	on h2 "$CMT" recover >"$work/rec2" 2>&1
	on h1 "$CMT" recover >"$work/rec1" 2>&1
	on h2 "$CMT" recover >>"$work/rec2" 2>&1 # after h1 asked, nothing may be left here either
	sleep 0.5 # one more sample after the recovery
	kill "$watcher" 2>/dev/null
	wait "$watcher" 2>/dev/null

	bad=()
	[ -s "$work/twice" ] && bad+=("TWO RUNNING COPIES: $(head -n 3 "$work/twice")")
	[ -s "$work/twice.copies" ] && diag "$name: $(head -n 1 "$work/twice.copies")"
	[ "$rc" = "$want_rc" ] || bad+=("exit status $rc, want $want_rc")
	if [ "$msg" != - ] && ! grep -Eq "$msg" "$work/err"; then bad+=("message does not match /$msg/"); fi
	where=()
	for h in h1 h2; do [ "$(runc_status "$h" "$id")" = running ] && where+=("$h"); done
	other=h1
	[ "$runs_on" = h1 ] && other=h2
	[ "${where[*]:-}" = "$runs_on" ] || bad+=("runs on [${where[*]:-nowhere}], want exactly [$runs_on]")
	[ "$(runc_status "$other" "$id")" = "" ] || bad+=("a copy is registered on $other: $(runc_status "$other" "$id")")
	procs_stopped "$runs_on" "$id" && bad+=("processes are stopped on $runs_on")
	st=$(state_of "$id" "$runs_on")
	if [ "${where[*]:-}" = "$runs_on" ]; then
		t0=$(mh_get "$st" ticks)
		wait_until 10 mh_ge "$st" ticks $((${t0:-0} + 1)) || bad+=("memhog does not tick on $runs_on")
		u=$(mh_get "$st" usr1 || echo 0)
		on "$runs_on" runc kill "$id" USR1
		if wait_until 30 mh_ge "$st" usr1 $((u + 1)); then
			[ "$(mh_get "$st" verify_fail)" = 0 ] || bad+=("memory damaged: $(cat "$st")")
		else
			bad+=("memhog did not verify its memory on $runs_on")
		fi
	fi
	left=$(find "$LAB_DIR"/h[12]/cmt/migrations -name images -o -name journal 2>/dev/null)
	[ -z "$left" ] || bad+=("left behind: $left")
	[ -e "$LAB_DIR/$other/cmt/bundles/$id" ] && bad+=("bundle left on $other")
	for h in h1 h2; do
		# a staged restore (runc waiting at cmt's restore gate) never outlives its migration
		on "$h" pgrep -f criu-gate >/dev/null && bad+=("a staged runc restore or its gate is left on $h: $(on "$h" pgrep -af criu-gate)")
		on "$h" iptables-save 2>/dev/null | grep -q CRIU && bad+=("CRIU network-lock rules left on $h")
		ls -d /sys/fs/cgroup/freezer/"$(sed -n 's/^cgroup_parent *= *//p' "$LAB_DIR/$h/cmt/config")"/freeze-* \
			>/dev/null 2>&1 && bad+=("a cmt freezer cgroup is left on $h")
	done
	[ -e "$LAB_DIR/h1/cmt/faults" ] || [ -e "$LAB_DIR/h2/cmt/faults" ] && bad+=("the fault did not fire")
	rm -f "$LAB_DIR/h1/cmt/faults" "$LAB_DIR/h2/cmt/faults"

	if [ ${#bad[@]} -eq 0 ]; then
		ok "$name: exit $rc, runs once on $runs_on, memory intact, nothing left"
		results+=("| $name | $mode | $side $point $action ${arg/-/} | $rc | $runs_on | ok |")
	else
		fail "$name" "${bad[@]}" "stderr: $(tail -n 6 "$work/err")" "recover h1: $(cat "$work/rec1")" \
			"recover h2: $(cat "$work/rec2")"
		results+=("| $name | $mode | $side $point $action ${arg/-/} | $rc | ${where[*]:-none} | FAILED |")
	fi
	diag "$(tail -n 2 "$work/err" | tr '\n' ' ')"
	cleanup_ct "$id"
done

diag "scenario | mode | fault | exit | runs on | result"
for r in "${results[@]}"; do diag "$r"; done

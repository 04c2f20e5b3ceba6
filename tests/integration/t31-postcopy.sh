#!/usr/bin/env bash
# t31-postcopy.sh - post-copy (--mode postcopy, CRIU lazy pages) of a runc
# container running memhog (tests/workload/memhog.c, which verifies every
# page of its memory):
#   - refused with a clear message while fs.pipe-max-size is too small for
#     a root without CAP_SYS_RESOURCE (checked first, then the test raises
#     the sysctl and restores the old value on exit);
#   - h1 -> h2: exit 0, the JSON statistics (mode, frozen_ms, downtime_ms,
#     total_ms, bytes_sent, postcopy_ms, lazy_bytes), the memory verified on
#     h2, the workload runs once (a watcher samples both copies: both ticking
#     at once fails), nothing left on h1 (runc state, processes, CRIU's page
#     server, the relay, images) or h2 (lazy-pages daemon, images);
#   - CRIU's page server never listens on anything but 127.0.0.1 (sampled
#     while the migration runs);
#   - failures before the destination resumes leave the workload running on
#     h1, its memory intact: the agent killed after the lazy restore (pages
#     flowing into its stopped copy), the source cut after RESTORED, and the
#     source killed while frozen with its page server up (then `cmt recover`),
#     and h2's lazy-pages daemon (started as the images arrive) dying before
#     it listens;
#   - cmt killed right after COMMIT: its relay carries the remaining pages,
#     the workload runs on h2 intact, `cmt recover` removes the frozen copy;
#     the agent killed right after it resumed its copy: its lazy-pages daemon
#     finishes, cmt says the end was not confirmed and keeps the frozen copy,
#     `cmt recover` (committed) removes it;
#   - --mode auto without --allow-postcopy never migrates post-copy;
#   - a process tree (--pid, libcriu) moved post-copy and hybrid;
#   - hybrid (pre-copy rounds, then lazy pages, most of them rebuilt on h2
#     from its page store): the same guarantees, the lazy transfer far below
#     its size on the link, nothing left (page store included); --mode auto
#     --allow-postcopy picks it; the agent killed after the lazy restore
#     (h1 keeps it, intact) and cmt killed after COMMIT (its relay, which
#     knows the store, carries the rest; h2 runs it, intact).
# LAB_* come from the lab's env file; single quotes keep $ for the hosts' shells:
# shellcheck disable=SC2154,SC2016
set -u
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"
require_root
require_cmt
require_cmd runc busybox sysctl ss script

MIB=${T31_MIB:-64}
LEASE=5
lab_start 2
work=$(mktemp -d /tmp/cmt-t31.XXXXXX)
at_exit rm -rf "$work"
make -s -C "$REPO/tests/workload" OUT="$work/bin" >/dev/null || bail "cannot build memhog"

state_of() { # ID HOST
	if [ "$2" = h1 ]; then echo "$work/$1/rootfs/tmp/state"; else echo "$LAB_DIR/h2/cmt/bundles/$1/rootfs/tmp/state"; fi
}
start_memhog() { # ID
	local b=$work/$1
	make_bundle "$b" h1 /bin/memhog --mib "$MIB" --dirty-mib-s 4 --verify-ms 500 --state /tmp/state >/dev/null ||
		{ echo "make_bundle failed"; return 1; }
	cp "$work/bin/memhog" "$b/rootfs/bin/memhog"
	on h1 sh -c "cd '$b' && exec runc run -d '$1' </dev/null >/dev/null 2>&1" || { echo "runc run failed"; return 1; }
	wait_until 30 test -s "$b/rootfs/tmp/state" || { echo "no state file"; return 1; }
	wait_until 5 mh_ge "$b/rootfs/tmp/state" ticks 1 || { echo "no ticks: $(cat "$b/rootfs/tmp/state")"; return 1; }
}
cleanup_ct() { # ID
	local h
	for h in h1 h2; do on "$h" runc delete --force "$1" >/dev/null 2>&1; done
	rm -rf "${work:?}/$1" "$LAB_DIR/h2/cmt/bundles/$1" "$LAB_DIR/h1/cmt/bundles/$1"
}
# verified HOST ID: memhog ticks on and a verification pass asked now finds no bad page
verified() {
	local st t0 u
	st=$(state_of "$2" "$1")
	t0=$(mh_get "$st" ticks) || { echo "no state on $1"; return 1; }
	wait_until 10 mh_ge "$st" ticks $((t0 + 1)) || { echo "memhog does not tick on $1"; return 1; }
	u=$(mh_get "$st" usr1 || echo 0)
	on "$1" runc kill "$2" USR1
	wait_until 60 mh_ge "$st" usr1 $((u + 1)) || { echo "memhog did not verify on $1"; return 1; }
	[ "$(mh_get "$st" verify_fail)" = 0 ] || { echo "memory damaged on $1: $(cat "$st")"; return 1; }
}
# watch ID OUT: until killed, sample both copies every 100 ms: both ticking
# means two running copies; CRIU listening on anything but loopback on h1 is
# recorded too
watch() {
	local a=$work/$1/rootfs/tmp/state b=$LAB_DIR/h2/cmt/bundles/$1/rootfs/tmp/state pa="" pb="" ta tb l
	while :; do
		ta=$(mh_get "$a" ticks 2>/dev/null || echo "")
		tb=$(mh_get "$b" ticks 2>/dev/null || echo "")
		if [ -n "$pa" ] && [ -n "$pb" ] && [ -n "$ta" ] && [ -n "$tb" ] && [ "$ta" -gt "$pa" ] && [ "$tb" -gt "$pb" ]; then
			echo "TWICE: both copies ticked: h1 $pa->$ta, h2 $pb->$tb" >>"$2"
		fi
		l=$(on h1 ss -Hltnp 2>/dev/null | grep criu)
		[ -n "$l" ] && echo "LISTEN $l" >>"$2"
		pa=$ta pb=$tb
		sleep 0.1
	done
}
# leftovers HOST: what a finished migration must not leave
leftovers() {
	local h=$1 out=""
	out+=$(on "$h" ss -Hltnp 2>/dev/null | grep -v sshd)
	out+=$(on "$h" pgrep -af 'criu|checkpoint --lazy|agent --stdio' 2>/dev/null | grep -v pgrep)
	out+=$(find "$LAB_DIR/$h/cmt/migrations" \( -name images -o -name journal -o -name lazy-dump \) 2>/dev/null)
	echo "$out"
}
agents_gone() { ! on h2 pgrep -f 'agent --stdio' >/dev/null; }
# watched_move ID MODE: a fresh memhog container ID moved h1 -> h2 in MODE
# while watch samples both copies into $work/watch
watched_move() {
	local watcher why
	cleanup_ct "$1"
	why=$(start_memhog "$1" 2>&1) || bail "memhog did not start: $why"
	: >"$work/watch"
	watch "$1" "$work/watch" &
	watcher=$!
	migrate_from h1 "$1" --to h2 --mode "$2" --lease "$LEASE"
	sleep 0.3 # a few more samples
	kill "$watcher" 2>/dev/null
	wait "$watcher" 2>/dev/null
}

# --- the pipe-size limit ---------------------------------------------------------
old_pipe=$(sysctl -n fs.pipe-max-size) || bail "cannot read fs.pipe-max-size"
at_exit "sysctl -q -w fs.pipe-max-size=$old_pipe"
cleanup_ct p0
why=$(start_memhog p0 2>&1) || bail "memhog did not start: $why"
if [ "$old_pipe" -lt 4194304 ]; then
	migrate_from h1 p0 --to h2 --mode postcopy --lease "$LEASE"
	is "$MIG_RC" 1 "post-copy is refused while fs.pipe-max-size is $old_pipe"
	jtest "the failing lazy-pages check names fs.pipe-max-size and the sysctl that fixes it" \
		'any(c["name"] == "lazy-pages" and c["status"] == "fail" and "fs.pipe-max-size" in c["detail"] and "sysctl fs.pipe-max-size=4194304" in c["hint"] for c in d["checks"])' \
		"the workload still runs on the source" 'd["source_running"] is True'
	is "$(runc_status h1 p0)" running "p0 still runs on h1 after the refusal"
	is "$(on h2 runc list -q)" "" "nothing was restored on h2"
	# --force skips the checks, not this one
	migrate_from h1 p0 --to h2 --mode postcopy --lease "$LEASE" --force
	is "$MIG_RC" 1 "post-copy is refused with --force too"
	jtest "... naming the pipe-size limit and the sysctl that fixes it" \
		'"fs.pipe-max-size" in d["error"] and "sysctl fs.pipe-max-size=4194304" in d["hint"] and d["source_running"] is True'
	is "$(runc_status h1 p0)" running "p0 still runs on h1 after the second refusal"
else
	skip_msg="fs.pipe-max-size is already $old_pipe here"
	ok "# SKIP refusal with a small fs.pipe-max-size: $skip_msg"
fi
sysctl -q -w fs.pipe-max-size=4194304 || bail "cannot raise fs.pipe-max-size"

# --- --mode auto without --allow-postcopy -----------------------------------------
migrate_from h1 p0 --to h2 --mode auto --lease "$LEASE"
jtest "--mode auto without --allow-postcopy does not migrate post-copy" 'd["mode"] != "postcopy" and d["mode"] != "hybrid"' \
	"... and says nothing arrived lazily" '"lazy_bytes" not in d or d["lazy_bytes"] == 0'
for h in h1 h2; do on "$h" "$CMT" recover >/dev/null 2>&1; done
cleanup_ct p0

# --- h1 -> h2 ---------------------------------------------------------------------
watched_move p1 postcopy
is "$MIG_RC" 0 "cmt migrate p1 --to h2 --mode postcopy exits 0"
jtest "JSON result ok, mode postcopy" 'd["result"] == "ok" and d["mode"] == "postcopy"' \
	"JSON downtime_ms > 0 and frozen_ms > 0" 'd["downtime_ms"] > 0 and d["frozen_ms"] > 0' \
	"JSON total_ms >= downtime_ms + postcopy_ms" 'd["total_ms"] >= d["downtime_ms"] + d["postcopy_ms"]' \
	"JSON postcopy_ms > 0 (resumed until the last page arrived)" 'd["postcopy_ms"] > 0' \
	"the lazy restore was staged (h2's runc started before the freeze)" \
	'd["steps_ms"].get("restore-staged", 0) > 0' \
	"CRIU's own part of the lazy dump ends with its page server's start, within the dump step" \
	'0 < d.get("criu_dump_ms", 0) <= d["dump_ms"] and 0 < d.get("criu_restore_ms", 0) <= d["restore_ms"]' \
	"JSON lazy_bytes >= the workload's memory" "d['lazy_bytes'] >= $MIB * 1048576" \
	"JSON bytes_sent >= lazy_bytes + image_bytes" 'd["bytes_sent"] >= d["lazy_bytes"] + d["image_bytes"]' \
	"JSON image_bytes far below the memory (the pages came lazily)" "d['image_bytes'] < $MIB * 1048576 / 4" \
	"JSON has no error" '"error" not in d'
diag "downtime $("$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print("%.0f ms, post-copy %.0f ms, lazy %d bytes" % (d["downtime_ms"], d["postcopy_ms"], d["lazy_bytes"]))' "$MIG_JSON" 2>&1)"
if grep -q TWICE "$work/watch"; then fail "the workload never ran twice" "$(grep TWICE "$work/watch" | head -3)"; else ok "the workload never ran twice"; fi
if grep LISTEN "$work/watch" | grep -qv '127\.0\.0\.1:'; then
	fail "CRIU's page server listened only on 127.0.0.1" "$(grep LISTEN "$work/watch" | sort -u | head -3)"
else
	ok "CRIU's page server listened only on 127.0.0.1 ($(grep -c LISTEN "$work/watch") samples saw it)"
fi
is "$(runc_status h2 p1)" running "p1 runs on h2"
is "$(on h1 runc list -q)" "" "p1 is gone from h1's runc list"
if out=$(verified h2 p1); then
	ok "memhog verified all of its memory on h2"
else
	fail "memhog verified all of its memory on h2" "$out"
fi
is "$(leftovers h1)" "" "nothing left on h1 (page server, relay, CRIU, images)"
wait_until 10 agents_gone
is "$(leftovers h2)" "" "nothing left on h2 (lazy-pages daemon, agents, images)"
cleanup_ct p1

# --- h1 -> h2 hybrid: pre-copy rounds, then the lazy pages mostly from h2's store ----
watched_move p1 hybrid
is "$MIG_RC" 0 "cmt migrate p1 --to h2 --mode hybrid exits 0"
jtest "JSON result ok, mode hybrid, at least one pre-copy round" 'd["result"] == "ok" and d["mode"] == "hybrid" and d["rounds"] >= 1' \
	"JSON the rounds sent about the workload's memory" "d['precopy_bytes'] >= $MIB * 1048576 * 0.9" \
	"JSON postcopy_ms > 0, lazy_bytes >= the workload's memory" "d['postcopy_ms'] > 0 and d['lazy_bytes'] >= $MIB * 1048576" \
	"JSON most lazy pages came from h2's store" "d['lazy_pages_from_store'] * 4096 >= $MIB * 1048576 / 2" \
	"JSON ... so the lazy transfer took far less than its size on the link" 'd["lazy_wire_bytes"] < d["lazy_bytes"] / 2' \
	"JSON the lazy page counts add up to the stream" \
	'(d["lazy_pages_sent"] + d["lazy_pages_from_store"] + d["lazy_pages_zero"]) * 4096 <= d["lazy_bytes"] < (d["lazy_pages_sent"] + d["lazy_pages_from_store"] + d["lazy_pages_zero"] + 1024) * 4160' \
	"JSON has no error" '"error" not in d'
diag "hybrid: $("$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print("downtime %.0f ms, %d rounds, post-copy %.0f ms; lazy pages: %d from the store, %d sent, %d zero; %d bytes on the link for %d" % (d["downtime_ms"], d["rounds"], d["postcopy_ms"], d["lazy_pages_from_store"], d["lazy_pages_sent"], d["lazy_pages_zero"], d["lazy_wire_bytes"], d["lazy_bytes"]))' "$MIG_JSON" 2>&1)"
if grep -q TWICE "$work/watch"; then fail "hybrid: the workload never ran twice" "$(grep TWICE "$work/watch" | head -3)"; else ok "hybrid: the workload never ran twice"; fi
is "$(runc_status h2 p1)" running "hybrid: p1 runs on h2"
if out=$(verified h2 p1); then
	ok "hybrid: memhog verified all of its memory on h2"
else
	fail "hybrid: memhog verified all of its memory on h2" "$out"
fi
is "$(leftovers h1)" "" "hybrid: nothing left on h1"
wait_until 10 agents_gone
is "$(leftovers h2)" "" "hybrid: nothing left on h2 (daemon, agents, images, page store)"
is "$(find "$LAB_DIR/h2/cmt/migrations" -name 'pagestore*' 2>/dev/null)" "" "hybrid: no page store file or reference left on h2"
cleanup_ct p1

# --mode auto picks hybrid when post-copy is allowed and both hosts can
cleanup_ct p1
why=$(start_memhog p1 2>&1) || bail "memhog did not start: $why"
migrate_from h1 p1 --to h2 --mode auto --allow-postcopy --lease "$LEASE"
is "$MIG_RC" 0 "cmt migrate p1 --mode auto --allow-postcopy exits 0"
jtest "... as hybrid, and says why" 'd["mode"] == "hybrid" and "hybrid" in d["mode_reason"] and "--allow-postcopy" in d["mode_reason"]'
if out=$(verified h2 p1); then ok "auto (hybrid): memory intact on h2"; else fail "auto (hybrid): memory intact on h2" "$out"; fi
cleanup_ct p1

# on a terminal, the lazy transfer has a progress line too (drawn by the relay)
why=$(start_memhog p1 2>&1) || bail "memhog did not start: $why"
on h1 script -qfec "$CMT migrate p1 --to h2 --mode hybrid --lease $LEASE --rsh 'ssh -F $LAB_SSH_CONFIG' --remote-cmt $CMT" \
	/dev/null >"$work/tty.out" 2>&1
is "$?" 0 "hybrid on a terminal exits 0"
check "... with a progress line of the lazy transfer, most of it from h2's store" \
	grep -Eq 'cmt: lazy .*MiB/s.*% from the store' <(tr '\r' '\n' <"$work/tty.out")
if out=$(verified h2 p1); then ok "hybrid on a terminal: memory intact on h2"; else fail "hybrid on a terminal: memory intact on h2" "$out"; fi
cleanup_ct p1

# --- a process tree (--pid: libcriu), post-copy and hybrid -----------------------------
not_on() { ! on "$1" kill -0 "$2" 2>/dev/null; }
tstate=$work/tree.state
for tmode in postcopy hybrid; do
	rm -f "$tstate"
	tpid=$(on h1 sh -c 'setsid "$1" --mib "$2" --dirty-mib-s 4 --verify-ms 0 --state "$3" </dev/null >/dev/null 2>&1 & echo $!' \
		sh "$work/bin/memhog" "$MIB" "$tstate")
	[ -n "$tpid" ] || bail "no memhog process on h1"
	at_exit "on h2 kill $tpid 2>/dev/null; on h1 kill $tpid 2>/dev/null; true"
	wait_until 60 test -s "$tstate" || bail "the process tree did not fill its memory"
	migrate_from h1 --pid "$tpid" --to h2 --mode "$tmode" --lease "$LEASE"
	is "$MIG_RC" 0 "cmt migrate --pid $tpid --to h2 --mode $tmode exits 0"
	jtest "JSON: a process tree moved $tmode, its memory lazily" \
		"d['result'] == 'ok' and d['mode'] == '$tmode' and d['lazy_bytes'] >= $MIB * 1048576 and d['postcopy_ms'] > 0" \
		"JSON: libcriu's lazy dump: CRIU's own parts lie within the dump and the restore" \
		'0 < d.get("criu_dump_ms", 0) <= d["dump_ms"] and 0 < d.get("criu_restore_ms", 0) <= d["restore_ms"]'
	if [ "$tmode" = hybrid ]; then
		jtest "JSON: ... most of it rebuilt from h2's store" "d['rounds'] >= 1 and d['lazy_pages_from_store'] * 4096 >= $MIB * 1048576 / 2"
	fi
	check "the tree's root runs on h2 ($tmode)" on h2 kill -0 "$tpid"
	check "... and no longer on h1" not_on h1 "$tpid"
	u=$(mh_get "$tstate" usr1 || echo 0)
	on h2 kill -USR1 "$tpid"
	if wait_until 60 mh_ge "$tstate" usr1 $((u + 1)) && [ "$(mh_get "$tstate" verify_fail)" = 0 ]; then
		ok "the process tree verified all of its memory on h2 ($tmode)"
	else
		fail "the process tree verified all of its memory on h2 ($tmode)" "$(cat "$tstate")"
	fi
	is "$(leftovers h1)" "" "nothing left on h1 after the process tree moved ($tmode)"
	wait_until 10 agents_gone
	is "$(leftovers h2)" "" "nothing left on h2 after the process tree moved ($tmode)"
	on h2 kill "$tpid" 2>/dev/null
	wait_until 10 not_on h2 "$tpid" || diag "memhog $tpid still runs on h2"
done

# --- failures: before the destination resumed, and cmt killed after COMMIT ---------
#   NAME  SIDE  POINT  ACTION  RC  RUNS_ON  MODE  MESSAGE (regex)
SCENARIOS=(
	"agent-killed-lazy-restored agent  after-restore     kill 1   h1 postcopy connection .*(closed|lost)"
	"ssh-cut-after-restored     source after-restored    cut  1   h1 postcopy connection .*(closed|lost)"
	"source-killed-page-server  source after-dump        kill 137 h1 postcopy -"
	"source-killed-committed    source after-commit-sent kill 137 h2 postcopy -"
	"agent-killed-resumed       agent  after-resume      kill 1   h2 postcopy (last page|not confirmed)"
	"hybrid-agent-killed-lazy   agent  after-restore     kill 1   h1 hybrid   connection .*(closed|lost)"
	"hybrid-source-killed-commit source after-commit-sent kill 137 h2 hybrid  -"
	"daemon-fails-early         criu   -                 -    1   h1 postcopy lazy-pages daemon failed to start: injected"
)
CRIU_BIN=$REPO/.deps/criu/usr/sbin/criu # the one cmt finds first (src/criu/access.c)
[ -x "$CRIU_BIN" ] || CRIU_BIN=$(command -v criu) || bail "no CRIU"
n=1
for row in "${SCENARIOS[@]}"; do
	read -r name side point action want_rc runs_on mode msg <<<"$row"
	other=h2
	[ "$runs_on" = h2 ] && other=h1
	n=$((n + 1))
	id=p$n
	cleanup_ct "$id"
	why=$(start_memhog "$id" 2>&1) || bail "$name: memhog did not start: $why"
	restore2=""
	case $side in
	source) echo "source $point $action" >"$LAB_DIR/h1/cmt/faults" ;;
	agent) echo "agent $point $action" >"$LAB_DIR/h2/cmt/faults" ;;
	criu)
		# h2's lazy-pages daemon dies before it listens (it starts as soon as
		# the images are in; RESTORE waits for it)
		printf '#!/bin/sh\n[ "$1" = lazy-pages ] && { echo "injected lazy-pages failure" >&2; exit 1; }\nexec %s "$@"\n' \
			"$CRIU_BIN" >"$work/criu-nodaemon"
		chmod +x "$work/criu-nodaemon"
		restore2=$(cat "$LAB_DIR/h2/cmt/config")
		echo "criu = $work/criu-nodaemon" >>"$LAB_DIR/h2/cmt/config"
		;;
	esac
	: >"$work/watch"
	watch "$id" "$work/watch" &
	watcher=$!
	migrate_from h1 "$id" --to h2 --mode "$mode" --lease "$LEASE"
	[ -n "$restore2" ] && printf '%s\n' "$restore2" >"$LAB_DIR/h2/cmt/config"
	if [ "$runs_on" = h1 ]; then
		# at once: a relay outliving a killed cmt holds the migration
		# until the agent has rolled back; recover waits for it
		on h1 "$CMT" recover >"$work/rec1" 2>&1
		wait_until 30 agents_gone || diag "$name: an agent is still running on h2"
		on h2 "$CMT" recover >"$work/rec2" 2>&1
	else
		wait_until 30 agents_gone || diag "$name: an agent is still running on h2"
		# the relay carries the pages the destination still needs
		wait_until 30 ! on h1 pgrep -f "[m]igrate $id --to" >/dev/null || diag "$name: cmt's relay still runs on h1"
		on h2 "$CMT" recover >"$work/rec2" 2>&1
		on h1 "$CMT" recover >"$work/rec1" 2>&1
	fi
	sleep 0.3
	kill "$watcher" 2>/dev/null
	wait "$watcher" 2>/dev/null
	bad=()
	[ "$MIG_RC" = "$want_rc" ] || bad+=("exit status $MIG_RC, want $want_rc")
	if [ "$msg" != - ] && ! grep -Eq "$msg" "$work/mig.err"; then bad+=("message does not match /$msg/"); fi
	grep -q TWICE "$work/watch" && bad+=("$(grep TWICE "$work/watch" | head -1)")
	[ "$(runc_status "$runs_on" "$id")" = running ] || bad+=("not running on $runs_on: $(runc_status "$runs_on" "$id")")
	[ -z "$(on "$other" runc list -q)" ] || bad+=("a copy is registered on $other")
	out=$(verified "$runs_on" "$id") || bad+=("$out")
	l=$(leftovers h1)
	[ -z "$l" ] || bad+=("left on h1: $l")
	l=$(leftovers h2)
	[ -z "$l" ] || bad+=("left on h2: $l")
	[ -e "$LAB_DIR/h1/cmt/faults" ] || [ -e "$LAB_DIR/h2/cmt/faults" ] && bad+=("the fault did not fire")
	rm -f "$LAB_DIR/h1/cmt/faults" "$LAB_DIR/h2/cmt/faults"
	if [ ${#bad[@]} -eq 0 ]; then
		ok "$name: exit $MIG_RC, the workload runs on $runs_on with its memory intact, nothing left"
	else
		fail "$name" "${bad[@]}" "stderr: $(tail -n 6 "$work/mig.err")" "recover h1: $(cat "$work/rec1")" \
			"recover h2: $(cat "$work/rec2")"
	fi
	diag "$(tail -n 2 "$work/mig.err" | tr '\n' ' ')"
	cleanup_ct "$id"
done

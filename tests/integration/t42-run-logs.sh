#!/usr/bin/env bash
# t42-run-logs.sh - `cmt run` gives a container a monitor that logs its stdout
# and stderr (`cmt logs`), and the log moves with the container: after
# `cmt migrate` a monitor on the destination takes over and the log goes on
# there with no line lost or repeated (the workload numbers its lines), also
# when the pipes still hold output at the moment of the dump. A failed
# migration (a cut, a dead agent) leaves the source's monitor logging on and,
# after recovery, nothing on the destination; a source killed after the
# commit has its monitor released by `cmt recover`. A container that asks for
# a terminal is refused, one whose stdout is a host file too (the
# workload-files check), and a pipe no monitor owns gets a warning.
# LAB_* come from the lab's env file; single quotes keep $ for the shells in the hosts:
# shellcheck disable=SC2154,SC2016
set -u
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

require_root
require_cmt
require_cmd runc busybox python3 pgrep

# --- helpers -----------------------------------------------------------------

# logs HOST: `cmt logs $ct` on HOST into $work/out (stdout) and $work/err (stderr)
logs() { on "$1" "$CMT" logs "$ct" >"$work/out" 2>"$work/err"; }
# out_lines HOST: how many stdout lines the log on HOST holds
out_lines() { on "$1" "$CMT" logs "$ct" 2>/dev/null | wc -l; }
lines_ge() { [ "$(out_lines "$1")" -ge "$2" ]; }
# err_intact FILE: FILE holds e10, e20, e30, ... one a line, none missing or repeated
err_intact() {
	python3 - "$1" <<'PY'
import sys
v = [l.strip() for l in open(sys.argv[1]) if l.strip()]
assert v, "no stderr lines"
bad = [i for i, x in enumerate(v) if x != "e%d" % (10 * (i + 1))]
assert not bad, "broken at line %d: %r" % (bad[0] + 1, v[max(0, bad[0] - 2):bad[0] + 3])
PY
}
# format_ok FILE: every line of the raw log is a record TIME STREAM F|P TEXT
format_ok() {
	python3 - "$1" <<'PY'
import re, sys
rx = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) [FP]( .*)?$")
lines = open(sys.argv[1], "rb").read().split(b"\n")
assert lines[-1] == b"", "the log does not end with a newline"
bad = [l for l in lines[:-1] if not rx.match(l)]
assert not bad, "%d bad records, e.g. %r" % (len(bad), bad[0])
print(len(lines) - 1)
PY
}
monitor_pids_of() { on "$1" pgrep -f "[m]onitor --(run|adopt) $2( |\$)" | tr '\n' ' ' | sed 's/ $//'; }
monitor_pids() { monitor_pids_of "$1" "$ct"; }
mon_pid() { cat "$LAB_DIR/$1/cmt/monitors/$ct.pid" 2>/dev/null; }
# pipe_bytes HOST PID FD: bytes waiting in the pipe that is fd FD of PID on HOST
pipe_bytes() {
	on "$1" python3 -c '
import fcntl, os, struct, sys, termios
fd = os.open("/proc/%s/fd/%s" % (sys.argv[1], sys.argv[2]), os.O_RDONLY | os.O_NONBLOCK)
print(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0])' "$2" "$3"
}
pipe_bytes_gt() { local n; n=$(pipe_bytes "$1" "$2" "$3") && [ "$n" -gt "$4" ]; }
# check_log HOST WHAT: the log on HOST is well formed and complete
check_log() {
	local host=$1 what=$2 n
	logs "$host"
	check "$what: stdout is 1..N, none missing or repeated ($(wc -l <"$work/out") lines)" seq_intact "$work/out"
	check "$what: stderr is e10, e20, ... none missing or repeated ($(wc -l <"$work/err") lines)" err_intact "$work/err"
	if n=$(format_ok "$LAB_DIR/$host/cmt/logs/$ct.log" 2>&1); then
		ok "$what: each of the $n lines of the log file is a record TIME STREAM F|P TEXT"
	else
		fail "$what: each line of the log file is a record TIME STREAM F|P TEXT" "$n"
	fi
}

# ---------------------------------------------------------------------------

lab_start 2
work=$(mktemp -d /tmp/cmt-t42.XXXXXX)
ct=lg-$$
at_exit rm -rf "$work"
at_exit 'for h in h1 h2; do p=$(mon_pid $h) && on $h kill -CONT $p 2>/dev/null; on $h runc delete --force $ct >/dev/null 2>&1; done'

mark=t42ct-$$
pat="[t]${mark#t}"
# numbered lines on stdout every 3 ms, each written in two parts (the number,
# 3 ms later the newline: a freeze mostly lands inside a line, so the drain
# cuts it into a P record and the destination writes its end), and every
# tenth number as eN on stderr
make_bundle "$work/$ct" h1 sh -c \
	'i=0; while :; do i=$((i+1)); printf %s $i; usleep 3000; echo; [ $((i % 10)) = 0 ] && echo "e$i" >&2; done' "$mark" ||
	bail "make_bundle failed"

# --- a terminal is refused; no log, no monitor -----------------------------------
make_bundle "$work/tty" h1 sh -c 'echo hi' || bail "make_bundle failed"
"$PY" -c 'import json,sys; p=sys.argv[1]+"/config.json"; s=json.load(open(p)); s["process"]["terminal"]=True; json.dump(s,open(p,"w"))' \
	"$work/tty" || bail "cannot edit config.json"
out=$(on h1 "$CMT" run --name "tty-$$" "$work/tty" 2>&1)
rc=$?
is "$rc" 1 "cmt run of a bundle with process.terminal true exits 1"
case $out in
*"asks for a terminal"*"terminal\": false"*) ok "and says it needs \"terminal\": false" ;;
*) fail "and says it needs \"terminal\": false" "$out" ;;
esac
is "$(on h1 runc list -q)" "" "no container was started"
make_bundle "$work/nox" h1 /bin/nonexistent || bail "make_bundle failed"
out=$(on h1 "$CMT" run --name "nox-$$" "$work/nox" 2>&1)
rc=$?
is "$rc" 1 "cmt run of a container whose program does not exist exits 1"
case $out in
*"runc cannot start container nox-$$"*"/bin/nonexistent"*) ok "and quotes runc's reason" ;;
*) fail "and quotes runc's reason" "$out" ;;
esac
is "$(monitor_pids_of h1 "nox-$$")$(ls "$LAB_DIR/h1/cmt/logs")" "" "no monitor and no log are left"
out=$(on h1 "$CMT" logs "nothere-$$" 2>&1)
rc=$?
is "$rc" 1 "cmt logs of an unknown container exits 1"
case $out in *"no log for container nothere-$$ on h1"*"cmt run"*) ok "and says there is no log" ;; *) fail "and says there is no log" "$out" ;; esac

# --- cmt run, cmt logs ---------------------------------------------------------------
out=$(on h1 "$CMT" run --name "$ct" "$work/$ct" 2>&1)
rc=$?
is "$rc" 0 "cmt run --name $ct exits 0"
diag "$out"
is "$(runc_status h1 "$ct")" running "$ct runs on h1"
mon1=$(mon_pid h1)
is "$(monitor_pids h1)" "$mon1" "one monitor of $ct runs on h1 (pid $mon1)"
pid1=$(runc_pid h1 "$ct")
check "the monitor is the container's parent (a subreaper, as conmon)" \
	test "$(on h1 ps -o ppid= -p "$pid1" | tr -d ' ')" = "$mon1"
check "the container's stdin is /dev/null, stdout and stderr are pipes" \
	on h1 sh -c "[ \"\$(readlink /proc/$pid1/fd/0)\" = /dev/null ] && readlink /proc/$pid1/fd/1 | grep -q '^pipe:' && readlink /proc/$pid1/fd/2 | grep -q '^pipe:'"
ps_json=$(on h1 "$CMT" ps --json)
check "cmt ps --json names the monitor" "$PY" -c \
	'import json,sys; d={c["id"]: c for c in json.loads(sys.argv[1])}; assert d[sys.argv[2]]["monitor"] == int(sys.argv[3])' \
	"$ps_json" "$ct" "$mon1"
wait_until 10 lines_ge h1 100 || bail "the log of $ct on h1 does not grow: $(on h1 "$CMT" logs "$ct" 2>&1 | tail -3)"
check_log h1 "h1"
out=$(on h1 "$CMT" run --name "$ct" "$work/$ct" 2>&1)
is "$?" 1 "a second cmt run of the same name is refused"

# --- a container whose stdout is someone else's pipe: the check warns ---------------------
make_bundle "$work/pp" h1 sh -c 'while :; do echo x; sleep 1; done' || bail "make_bundle failed"
on h1 sh -c "cd '$work/pp' && runc run -d pp-$$ </dev/null 2>&1 | cat >/dev/null &"
at_exit "on h1 runc delete --force pp-$$ >/dev/null 2>&1"
pp_runs() { [ "$(runc_status h1 "pp-$$")" = running ]; }
wait_until 10 pp_runs || bail "pp-$$ did not start"
out=$(on h1 "$CMT" check "pp-$$" --to h2 --rsh "ssh -F $LAB_SSH_CONFIG" --remote-cmt "$CMT" --json 2>/dev/null)
check "cmt check warns that a pipe no cmt monitor owns loses its output" "$PY" -c '
import json, sys
d = json.loads(sys.argv[1])
c = [c for c in d["checks"] if c["name"] == "workload-stdio"]
assert c and c[0]["status"] == "warn" and "no cmt monitor" in c[0]["detail"] and "cmt run" in c[0]["hint"], c' "$out"
on h1 runc delete --force "pp-$$"

# --- a container whose stdout is a host file is refused, pointing at cmt run -----------------
on h1 sh -c "cd '$work/pp' && exec runc run -d hf-$$ </dev/null >'$work/hostfile' 2>&1"
at_exit "on h1 runc delete --force hf-$$ >/dev/null 2>&1"
hf_runs() { [ "$(runc_status h1 "hf-$$")" = running ]; }
wait_until 10 hf_runs || bail "hf-$$ did not start"
migrate_from h1 "hf-$$" --to h2
is "$MIG_RC" 1 "cmt migrate of a container whose stdout is a host file exits 1"
case $MIG_ERR in
*"workload-files"*"cmt run"*) ok "the workload-files check refuses it and points at cmt run" ;;
*) fail "the workload-files check refuses it and points at cmt run" "$MIG_ERR" ;;
esac
is "$(runc_status h1 "hf-$$")" running "and it keeps running on h1"
on h1 runc delete --force "hf-$$"

# --- a failed migration: the source's monitor logs on -------------------------------------
echo "source after-restored cut" >"$LAB_DIR/h1/cmt/faults"
migrate_from h1 "$ct" --to h2
is "$MIG_RC" 1 "a migration cut after the restore exits 1"
jtest "JSON: failed, the container runs on h1" 'd["result"] == "failed" and d["source_running"]'
is "$(runc_status h1 "$ct")" running "$ct runs on h1 again"
is "$(mon_pid h1)" "$mon1" "the same monitor (pid $mon1) still owns it"
is "$(monitor_pids h1)" "$mon1" "and it is the only one on h1"
if wait_until 10 sh -c "[ -z \"\$($LAB exec $LAB_NAME h2 -- pgrep -f '[m]onitor --adopt $ct')\" ]"; then
	ok "the destination's monitor is gone (h2 rolled back)"
else
	fail "the destination's monitor is gone (h2 rolled back)" "$(monitor_pids h2)"
fi
check "h2 has no log of $ct" test ! -e "$LAB_DIR/h2/cmt/logs/$ct.log"
wait_until 10 sh -c "[ -z \"\$($LAB exec $LAB_NAME h2 -- runc list -q)\" ]"
is "$(on h2 runc list -q)" "" "h2 has no container"
n=$(out_lines h1)
if wait_until 10 lines_ge h1 $((n + 100)); then ok "the log on h1 goes on growing"; else fail "the log on h1 goes on growing"; fi
check_log h1 "h1 after the failed migration"

# --- the agent dies after the restore: recovery on h2 removes its monitor and log ---------
echo "agent after-restore kill" >"$LAB_DIR/h2/cmt/faults"
migrate_from h1 "$ct" --to h2
is "$MIG_RC" 1 "a migration whose agent dies after the restore exits 1"
is "$(runc_status h1 "$ct")" running "$ct runs on h1 again"
is "$(mon_pid h1)" "$mon1" "the same monitor (pid $mon1) still owns it"
on h2 "$CMT" recover >"$work/recover.out" 2>&1
diag "cmt recover on h2: $(cat "$work/recover.out")"
is "$(on h2 runc list -q)" "" "after cmt recover on h2, h2 has no container"
is "$(monitor_pids h2)" "" "nor a monitor"
check "nor a log of $ct" test ! -e "$LAB_DIR/h2/cmt/logs/$ct.log"
n=$(out_lines h1)
if wait_until 10 lines_ge h1 $((n + 100)); then ok "the log on h1 goes on growing"; else fail "the log on h1 goes on growing"; fi
check_log h1 "h1 after the agent died"

# --- h1 -> h2 ----------------------------------------------------------------------------
n=$(out_lines h1)
migrate_from h1 "$ct" --to h2 --mode precopy
is "$MIG_RC" 0 "cmt migrate $ct --to h2 --mode precopy exits 0"
jtest "JSON: ok, precopy" 'd["result"] == "ok" and d["mode"] == "precopy"' \
	"JSON: the log travelled mostly before the freeze (log_precopy_bytes > 0), the rest after (log_bytes > 0)" \
	'd["log_precopy_bytes"] > 0 and d["log_bytes"] > 0' \
	"JSON: the workload-stdio check passes, naming the monitor" \
	'[c for c in d["checks"] if c["name"] == "workload-stdio" and c["status"] == "pass" and "cmt monitor" in c["detail"]]'
is "$(runc_status h2 "$ct")" running "$ct runs on h2"
is "$(on h1 runc list -q)" "" "$ct is gone from h1"
is "$(monitor_pids h1)" "" "h1's monitor has exited"
is "$(marker_pids h1 "$pat")" "" "the workload's processes are gone from h1"
check "h1 keeps no log of $ct" test ! -e "$LAB_DIR/h1/cmt/logs/$ct.log"
mon2=$(mon_pid h2)
is "$(monitor_pids h2)" "$mon2" "a monitor of $ct runs on h2 (pid $mon2)"
pid2=$(runc_pid h2 "$ct")
check "h2's monitor holds the read ends of the container's pipes" on h2 sh -c \
	"[ \"\$(readlink /proc/$pid2/fd/1)\" = \"\$(readlink /proc/$mon2/fd/4)\" ] && [ \"\$(readlink /proc/$pid2/fd/2)\" = \"\$(readlink /proc/$mon2/fd/5)\" ]"
if wait_until 10 lines_ge h2 $((n + 100)); then
	ok "the log on h2 goes on from the $n+ lines h1 had"
else
	fail "the log on h2 goes on from the $n+ lines h1 had" "$(on h2 "$CMT" logs "$ct" 2>&1 | tail -3)"
fi
check_log h2 "h2 after the migration"
out=$(on h1 "$CMT" logs "$ct" 2>&1)
rc=$?
is "$rc" 1 "cmt logs $ct on h1 now says there is no log"
case $out in *"moved to h2 with its log"*) ok "and that it moved to h2" ;; *) fail "and that it moved to h2" "$out" ;; esac

# --- h2 -> h1 with output still in the pipes at the dump ---------------------------------
# `cmt logs -f` on h2 follows until the container leaves
on_bg h2 "$CMT" logs -f "$ct" >"$work/follow.out" 2>"$work/follow.err"
follower=$ON_BG_PID
# The monitor stops reading, so the pipe fills. A post-dump hook (the
# container frozen and dumped) notes what the pipe holds, then lets the
# monitor go on only once the source cmt's drain request waits on its socket
# (ss: a pending connection on the listening socket). So the monitor wakes up
# with output in the pipe and the drain request together: the drain must read
# the pipe to its end (else those lines are lost), and the destination, whose
# CRIU saw the same bytes in the dumped pipe, must not write them again.
on h2 kill -STOP "$mon2"
wait_until 5 pipe_bytes_gt h2 "$mon2" 4 200 || fail "stdout's pipe fills while h2's monitor is stopped"
cat >"$work/hook.sh" <<'EOF'
# $1 monitor pid, $2 file for the bytes in the pipe, $3 its socket, $4 marker file
python3 -c '
import fcntl, os, struct, sys, termios
fd = os.open("/proc/%s/fd/4" % sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
print(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0])' "$1" >"$2"
(
	i=0
	while [ $i -lt 200 ]; do
		q=$(ss -xlnH | awk -v p="$3" '$5 == p { print $3 }')
		[ "${q:-0}" -gt 0 ] && { echo pending >"$4"; break; }
		sleep 0.05
		i=$((i + 1))
	done
	kill -CONT "$1"
) </dev/null >/dev/null 2>&1 &
EOF
migrate_from h2 "$ct" --to h1 --hook-post-dump "sh $work/hook.sh $mon2 $work/inpipe /var/lib/cmt/monitors/$ct.sock $work/pending"
is "$MIG_RC" 0 "cmt migrate $ct --to h1 exits 0"
inpipe=$(cat "$work/inpipe" 2>/dev/null)
check "stdout's pipe held output when CRIU dumped ($inpipe bytes)" test "${inpipe:-0}" -gt 200
is "$(cat "$work/pending" 2>/dev/null)" pending "the drain request was waiting when h2's monitor went on"
drained=$(sed -n 's/.*drained: \([0-9]*\) bytes were left in the pipes.*/\1/p' "$LAB_DIR/h2/cmt/monitors/$ct.err" | tail -n 1)
check "h2's monitor read what was left in the pipes when the source drained it (${drained:-no} bytes)" \
	test "${drained:-0}" -gt 0
is "$(runc_status h1 "$ct")" running "$ct runs on h1 again"
is "$(monitor_pids h2)" "" "h2's monitor has exited"
check "h2 keeps no log" test ! -e "$LAB_DIR/h2/cmt/logs/$ct.log"
mon3=$(mon_pid h1)
is "$(monitor_pids h1)" "$mon3" "a monitor of $ct runs on h1 (pid $mon3)"
n=$(out_lines h1)
if wait_until 10 lines_ge h1 $((n + 100)); then ok "the log on h1 goes on growing"; else fail "the log on h1 goes on growing"; fi
check_log h1 "h1 after the round trip"
if wait_until 10 sh -c "! kill -0 $follower 2>/dev/null"; then
	ok "cmt logs -f on h2 ended when the container left"
else
	fail "cmt logs -f on h2 ended when the container left"
	kill "$follower" 2>/dev/null
fi
check "what cmt logs -f printed is 1..N ($(wc -l <"$work/follow.out") lines)" seq_intact "$work/follow.out"
check "and it covers the lines h1 had before the first move" test "$(wc -l <"$work/follow.out")" -ge 200

# --- h1 -> h2, the source cmt killed after DONE: cmt recover on h1 releases its monitor ----
echo "source before-destroy kill" >"$LAB_DIR/h1/cmt/faults"
migrate_from h1 "$ct" --to h2
is "$MIG_RC" 137 "a source killed before removing its frozen copy exits 137"
is "$(runc_status h2 "$ct")" running "$ct runs on h2"
is "$(monitor_pids h1)" "$mon3" "h1's monitor waits, not released yet"
on h1 "$CMT" recover >"$work/recover.out" 2>&1
diag "cmt recover on h1: $(cat "$work/recover.out")"
is "$(on h1 runc list -q)" "" "after cmt recover on h1, the frozen copy is gone"
is "$(monitor_pids h1)" "" "h1's monitor has exited"
check "h1 keeps no log of $ct" test ! -e "$LAB_DIR/h1/cmt/logs/$ct.log"
out=$(on h1 "$CMT" logs "$ct" 2>&1)
case $out in *"moved to h2 with its log"*) ok "cmt logs on h1 says it moved to h2" ;; *) fail "cmt logs on h1 says it moved to h2" "$out" ;; esac
n=$(out_lines h2)
if wait_until 10 lines_ge h2 $((n + 100)); then ok "the log on h2 goes on growing"; else fail "the log on h2 goes on growing"; fi
check_log h2 "h2 after the recovered migration"

# the drains cut lines (P records); cmt logs rebuilt them (the checks above)
parts=$(grep -c '^[^ ]* stdout P ' "$LAB_DIR/h2/cmt/logs/$ct.log")
check "the log holds lines cut by a drain ($parts P records), rebuilt whole by cmt logs" test "$parts" -ge 1

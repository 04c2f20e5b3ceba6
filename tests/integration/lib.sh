# shellcheck shell=bash
# tests/integration/lib.sh - helpers for cmt's integration tests. Source it:
#
#   . "$(dirname "$0")/lib.sh"
#
# A test is a bash script that prints TAP-ish lines ("ok N - what",
# "not ok N - what", "# diagnostics") and exits 0 when everything passed, 1 when
# something failed, 77 when it was skipped (with the reason printed).
#
# Variables:
#   REPO        the repository's root (absolute)
#   CMT         the cmt binary under test (default $REPO/build/cmt, absolute)
#   LAB         $REPO/lab/lab.sh
#   after lab_start: everything in the lab's env file, exported (LAB_NAME,
#   LAB_DIR, LAB_HOSTS, LAB_SSH_CONFIG, LAB_IP_hK, LAB_NETNS_hK, LAB_CGROUP_hK)
#
# Functions:
#   lab_start N             bring up hosts h1..hN of a lab named after this shell's
#                           PID; the lab goes down when this shell exits
#   on HOST CMD...          run CMD on HOST (its namespaces; stdio and status passed through)
#   at_exit CMD...          run CMD when this shell exits, before the lab goes down
#                           (handlers run last-registered first; one argument is
#                           evaluated as shell code, several are run as a command)
#   on_bg HOST CMD...       start CMD on HOST in the background; ON_BG_PID to kill/wait
#   wait_until SECS [!] CMD...
#                           poll CMD every 50 ms until it succeeds (with "!": fails);
#                           returns 1 on timeout
#   make_bundle DIR HOST CMD...
#                           an OCI bundle in DIR (busybox rootfs) running CMD, whose
#                           cgroup is /<HOST's cgroup_parent>/<basename DIR>
#   seq_intact FILE         FILE holds 1, 2, 3, ... one a line, nothing missing or repeated
#   mh_get FILE KEY | mh_ge FILE KEY N
#                           a value of memhog's status line / whether it is >= N
#   ok DESC | fail DESC [DETAIL...] | diag MSG...
#   check DESC CMD...       ok if CMD succeeds, else fail showing its output
#   is GOT WANT DESC        ok if the strings are equal, else fail showing both
#   skip REASON             skip the whole test (exit 77)
#   bail REASON             give up the whole test (exit 1)
#   require_root | require_cmd CMD... | require_cmt
#
# The lab and the at_exit handlers belong to the shell that made them: a test can
# run part of itself in a ( subshell ) with its own lab, which is gone when the
# subshell ends. Test numbering is shared with subshells.

# Descriptors inherited from whatever started the test would leak into the
# workloads it starts (and CRIU, rightly, refuses files from outside them).
# (No redirection on this loop: an `exec` inside a redirected loop makes the
# loop's redirection permanent, and a `2>/dev/null` here silenced the stderr
# of every test and of the demo. Closing an fd that is already closed is no
# error.)
for _lib_fd in /proc/$$/fd/*; do
	_lib_fd=${_lib_fd##*/}
	[[ $_lib_fd =~ ^[0-9]+$ ]] && [ "$_lib_fd" -gt 2 ] && [ "$_lib_fd" != 255 ] && eval "exec $_lib_fd>&-"
done
unset _lib_fd

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CMT=${CMT:-$REPO/build/cmt}
case $CMT in /*) ;; *) CMT=$(pwd)/$CMT ;; esac
LAB=$REPO/lab/lab.sh
export REPO CMT LAB

_LIB_MAIN_PID=$BASHPID
_LIB_TAP_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cmt-test.XXXXXX")
echo 0 >"$_LIB_TAP_DIR/count"
echo 0 >"$_LIB_TAP_DIR/failed"
_LIB_LAB_OWNER=""
_lib_at_exit=()

# --- TAP ---------------------------------------------------------------------

_lib_bump() { # FILE: increment the number in FILE, print the new value
	local n
	read -r n <"$1"
	n=$((n + 1))
	echo "$n" >"$1"
	echo "$n"
}

diag() {
	local line
	while IFS= read -r line; do echo "# $line"; done <<<"$*"
}

ok() {
	echo "ok $(_lib_bump "$_LIB_TAP_DIR/count") - $*"
}

fail() {
	local desc=$1
	shift
	echo "not ok $(_lib_bump "$_LIB_TAP_DIR/count") - $desc"
	_lib_bump "$_LIB_TAP_DIR/failed" >/dev/null
	local detail
	for detail in "$@"; do diag "$detail"; done
}

# check DESC CMD...: ok if CMD succeeds, else fail showing its output.
check() {
	local desc=$1 out
	shift
	if out=$("$@" 2>&1); then
		ok "$desc"
	else
		fail "$desc" "command failed (status $?): $*" "$out"
	fi
}

is() {
	if [ "$1" = "$2" ]; then
		ok "$3"
	else
		fail "$3" "got:  $1" "want: $2"
	fi
}

skip() {
	local n
	read -r n <"$_LIB_TAP_DIR/count"
	if [ "$n" = 0 ]; then echo "1..0 # SKIP $*"; else echo "# SKIP $*"; fi
	exit 77
}

bail() {
	echo "Bail out! $*"
	exit 1
}

require_root() { [ "$(id -u)" = 0 ] || skip "needs root"; }

require_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null || skip "$c is not installed (run scripts/deps.sh)"
	done
}

require_cmt() { [ -x "$CMT" ] || skip "$CMT is not built (run make)"; }

# --- exit handling ---------------------------------------------------------------

at_exit() {
	local cmd
	if [ $# -eq 1 ]; then cmd=$1; else cmd=$(printf '%q ' "$@"); fi
	# remember which shell registered it: a subshell inherits a copy of the list
	_lib_at_exit+=("$BASHPID $cmd")
	_lib_install_trap
}

_lib_install_trap() {
	trap _lib_on_exit EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP
}

_lib_on_exit() {
	local rc=$? i entry
	trap - EXIT INT TERM HUP
	set +e
	for ((i = ${#_lib_at_exit[@]} - 1; i >= 0; i--)); do
		entry=${_lib_at_exit[i]}
		[ "${entry%% *}" = "$BASHPID" ] || continue
		eval "${entry#* }" || diag "at_exit handler failed: ${entry#* }"
	done
	if [ -n "$_LIB_LAB_OWNER" ] && [ "$_LIB_LAB_OWNER" = "$BASHPID" ]; then
		"$LAB" down "$LAB_NAME" || diag "lab down $LAB_NAME failed"
	fi
	[ "$BASHPID" = "$_LIB_MAIN_PID" ] || exit "$rc"

	# The test itself is over: print the plan and decide its status.
	local count failed
	read -r count <"$_LIB_TAP_DIR/count"
	read -r failed <"$_LIB_TAP_DIR/failed"
	rm -rf "$_LIB_TAP_DIR"
	[ "$rc" = 77 ] && exit 77
	if [ "$rc" != 0 ] && [ "$failed" = 0 ]; then
		echo "not ok $((count + 1)) - the test script stopped with status $rc"
		count=$((count + 1)) failed=1
	fi
	[ -n "${LIB_NO_TAP:-}" ] || echo "1..$count" # LIB_NO_TAP: for the demo, which is no test
	[ "$failed" = 0 ] || exit 1
	exit "$rc"
}
_lib_install_trap

# --- the lab -----------------------------------------------------------------

_lib_now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

_lib_proc_start() { # PID: its start time, field 22 of /proc/PID/stat
	local stat
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
	stat=${stat##*) }
	# shellcheck disable=SC2086
	set -- $stat
	echo "${20}"
}

lab_start() {
	local n=${1:-2} name="t$BASHPID" pid start t0
	name=${name:0:8}
	[ -z "$_LIB_LAB_OWNER" ] || [ "$_LIB_LAB_OWNER" != "$BASHPID" ] || bail "lab_start called twice in one shell"
	require_root

	# A lab with our name can only be left over from a dead test that had our PID.
	if [ -e "/run/cmt-lab/$name" ] || [ -e "/run/netns/cmt-$name-sw" ]; then
		read -r pid start 2>/dev/null <"/run/cmt-lab/$name/owner" || true
		if [ -n "${pid:-}" ] && [ "$(_lib_proc_start "$pid")" = "$start" ]; then
			bail "lab $name exists and belongs to the live process $pid"
		fi
		diag "removing the stale lab $name"
		"$LAB" down "$name" || bail "cannot remove the stale lab $name"
	fi

	_LIB_LAB_OWNER=$BASHPID
	LAB_NAME=$name
	_lib_install_trap
	t0=$(_lib_now_ms)
	# sessions opened by ssh on the hosts find the cmt under test on their PATH
	LAB_EXTRA_PATH=$(dirname "$CMT") "$LAB" up "$name" "$n" || bail "lab up $name $n failed"
	echo "$BASHPID $(_lib_proc_start "$BASHPID")" >"/run/cmt-lab/$name/owner"
	set -a
	# shellcheck disable=SC1090
	. "/run/cmt-lab/$name/env"
	set +a
	diag "lab $LAB_NAME up with $n hosts in $(($(_lib_now_ms) - t0)) ms"
}

on() {
	local host=$1
	shift
	[ -n "${LAB_NAME:-}" ] || bail "on $host: no lab (call lab_start first)"
	"$LAB" exec "$LAB_NAME" "$host" -- "$@"
}

# on_bg HOST CMD...: start CMD on HOST in the background; ON_BG_PID is the
# process to kill or wait for (killing it sends SIGTERM to CMD in the host; a
# plain `on HOST CMD &` would give the PID of a subshell instead).
on_bg() {
	local host=$1
	shift
	[ -n "${LAB_NAME:-}" ] || bail "on_bg $host: no lab (call lab_start first)"
	"$LAB" exec "$LAB_NAME" "$host" -- "$@" &
	# shellcheck disable=SC2034 # for the caller
	ON_BG_PID=$!
}

# wait_until SECS [!] CMD...: SECS may have a fraction (0.5); "!" waits for CMD
# to fail instead.
wait_until() {
	local secs=$1 ms deadline neg=""
	shift
	[ "${1:-}" = "!" ] && { neg=1; shift; }
	if [[ $secs == *.* ]]; then
		local frac=${secs#*.}000
		ms=$((${secs%.*} * 1000 + 10#${frac:0:3}))
	else
		ms=$((secs * 1000))
	fi
	deadline=$(($(_lib_now_ms) + ms))
	while :; do
		if [ -n "$neg" ]; then "$@" || return 0; else "$@" && return 0; fi
		[ "$(_lib_now_ms)" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}

# make_bundle DIR HOST CMD...
make_bundle() {
	local dir=$1 host=$2
	shift 2
	[ $# -gt 0 ] || { echo "make_bundle: no command given" >&2; return 1; }
	[ -n "${LAB_DIR:-}" ] || { echo "make_bundle: no lab (call lab_start first)" >&2; return 1; }
	local config=$LAB_DIR/$host/cmt/config parent busybox
	parent=$(sed -n 's/^cgroup_parent *= *//p' "$config" 2>/dev/null)
	[ -n "$parent" ] || { echo "make_bundle: no cgroup_parent in $config" >&2; return 1; }
	busybox=$(command -v busybox) || { echo "make_bundle: busybox is not installed" >&2; return 1; }

	mkdir -p "$dir/rootfs"
	dir=$(cd "$dir" && pwd)
	mkdir -p "$dir/rootfs/bin" "$dir/rootfs/proc" "$dir/rootfs/sys" "$dir/rootfs/dev" \
		"$dir/rootfs/tmp" "$dir/rootfs/etc" "$dir/rootfs/root"
	cp "$busybox" "$dir/rootfs/bin/busybox"
	rm -f "$dir/config.json"
	runc spec --bundle "$dir" || return 1
	"$busybox" --list | python3 -c "$_LIB_BUNDLE_PY" "$dir" "/$parent/${dir##*/}" "$@"
}

# make_bundle's second half: busybox applet links (names on stdin) and the edits
# of runc's default config.json. Arguments: BUNDLE CGROUPS_PATH ARGS...
_LIB_BUNDLE_PY='
import json, os, sys

bundle, cgroups_path, args = sys.argv[1], sys.argv[2], sys.argv[3:]
bindir = os.path.join(bundle, "rootfs", "bin")
for applet in sys.stdin.read().split():
    link = os.path.join(bindir, applet)
    if applet != "busybox" and not os.path.lexists(link):
        os.symlink("busybox", link)

path = os.path.join(bundle, "config.json")
with open(path) as f:
    spec = json.load(f)
spec["process"]["terminal"] = False
spec["process"]["args"] = args
spec["root"]["readonly"] = False
spec["hostname"] = "ct"
spec.setdefault("linux", {})["cgroupsPath"] = cgroups_path
with open(path + ".tmp", "w") as f:
    json.dump(spec, f, indent=2)
os.rename(path + ".tmp", path)
'

# --- migration test helpers ----------------------------------------------------
# (used by the migration tests; migrate_from writes into $work, which the
# test sets to its own temporary directory)

# the system's python for the JSON checks (a python3 found earlier on PATH can
# be a version manager's shim that costs half a second a call)
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3

# jtest evaluates its Python expressions on the JSON object d with this
_JSON_PY='
import json, re, sys
args = sys.argv[2:]
try:
    d = json.loads(sys.argv[1])
except Exception as e:
    d, bad = None, "the last line of stdout is not JSON: %s" % e
for i in range(1, len(args), 2):
    if d is None:
        print("F " + bad)
        continue
    try:
        r = eval(args[i], {"d": d, "re": re, "json": json})
        print("P" if r else "F %s is false" % args[i])
    except Exception as e:
        print(("F %s: %s: %s" % (args[i], type(e).__name__, e)).replace("\n", " "))
'

# migrate_from HOST ARGS...: `cmt migrate ARGS... --json` on HOST through the
# lab's ssh; sets MIG_RC, MIG_JSON (the last line of stdout), MIG_ERR (stderr).
migrate_from() {
	local host=$1
	shift
	on "$host" "$CMT" migrate "$@" --rsh "ssh -F $LAB_SSH_CONFIG" --remote-cmt "$CMT" --json \
		>"$work/mig.out" 2>"$work/mig.err" </dev/null
	MIG_RC=$?
	MIG_JSON=$(tail -n 1 "$work/mig.out")
	MIG_ERR=$(cat "$work/mig.err")
	diag "cmt migrate $* (on $host): exit $MIG_RC"
	diag "$MIG_ERR"
}

# jtest DESC EXPR [DESC EXPR...]: for each pair, ok when the Python expression
# EXPR holds for the JSON object d, the result of the last migrate_from (re
# and json are there too). One python run for all the pairs.
jtest() {
	local res i=0 line
	mapfile -t res < <("$PY" -c "$_JSON_PY" "$MIG_JSON" "$@" 2>&1)
	while [ $# -ge 2 ]; do
		line=${res[i]:-F no answer from python: ${res[*]}}
		if [ "$line" = P ]; then
			ok "$1"
		else
			fail "$1" "${line#F }" "JSON: $MIG_JSON"
		fi
		shift 2
		i=$((i + 1))
	done
}

# count_now FILE: the number in FILE (fails while the file is empty or absent,
# e.g. between the truncation and the write of `echo $i >FILE`).
count_now() {
	local v
	v=$(cat "$1" 2>/dev/null) || return 1
	[[ $v =~ ^[0-9]+$ ]] || return 1
	echo "$v"
}

# count_read FILE: the number in FILE, retrying through the moment between the
# truncation and the write of `echo $i >FILE`
count_read() {
	local i
	for i in $(seq 1 40); do
		count_now "$1" && return 0
		sleep 0.05
	done
	echo 0
	return 1
}

count_ge() { local v; v=$(count_now "$1") && [ "$v" -ge "$2" ]; }

# watch_count FILE MIN ADVANCE SECS: sample FILE every 50 ms until its number
# has grown by ADVANCE since the first sample. Fails at once if a sample is
# below MIN or below the sample before it (a counter that started again), or
# after SECS without the advance. WATCHED: what was seen.
watch_count() {
	local file=$1 min=$2 adv=$3 secs=$4 first="" prev="" v deadline
	deadline=$((${EPOCHREALTIME/./} / 1000 + secs * 1000))
	WATCHED=""
	while :; do
		if v=$(count_now "$file"); then
			WATCHED+="$v "
			[ -n "$first" ] || first=$v
			if [ "$v" -lt "$min" ] || { [ -n "$prev" ] && [ "$v" -lt "$prev" ]; }; then
				WATCHED+="(went back: a fresh counter, not the migrated one)"
				return 1
			fi
			prev=$v
			[ "$v" -ge $((first + adv)) ] && return 0
		fi
		[ $((${EPOCHREALTIME/./} / 1000)) -lt "$deadline" ] || { WATCHED+="(timed out)"; return 1; }
		sleep 0.05
	done
}

runc_status() { on "$1" runc state "$2" 2>/dev/null | sed -n 's/^ *"status": "\(.*\)",$/\1/p'; }

runc_pid() { on "$1" runc state "$2" 2>/dev/null | sed -n 's/^ *"pid": \([0-9]*\),$/\1/p'; }

marker_pids() { on "$1" pgrep -f "$2" | tr '\n' ' ' | sed 's/ $//'; }

# what is left of migrations under a host's state root: image directories,
# page stores and the images' tmpfs mounts (a failed run keeps its CRIU logs,
# but images must always go)
images_left() {
	find "$LAB_DIR/$1/cmt/migrations" \( -name images -o -name 'pagestore*' \) 2>/dev/null
	on "$1" grep ' cmt-images ' /proc/self/mountinfo 2>/dev/null # the images' tmpfs
}

# seq_intact FILE: FILE holds the numbers 1, 2, 3, ... one a line, none
# missing or repeated (a workload appending its counter across a migration)
seq_intact() {
	python3 - "$1" <<'PY'
import sys
v = [int(l) for l in open(sys.argv[1]) if l.strip()]
bad = [i for i, x in enumerate(v) if x != i + 1]
assert not bad, "broken at line %d: %r" % (bad[0] + 1, v[max(0, bad[0] - 2):bad[0] + 3])
PY
}

# memhog's status line (tests/workload/memhog.c): mh_get FILE KEY prints a
# value; mh_ge FILE KEY N succeeds when it is at least N
mh_get() {
	local line kv
	read -r line 2>/dev/null <"$1" || return 1
	for kv in $line; do [ "${kv%%=*}" = "$2" ] && { echo "${kv#*=}"; return 0; }; done
	return 1
}
mh_ge() { local v; v=$(mh_get "$1" "$2") && [ "${v%%.*}" -ge "$3" ]; }

#!/usr/bin/env bash
# t00-lab.sh - the lab of simulated hosts itself (lab/lab.sh and lib.sh): each
# host has its own hostname, /proc, state dirs, sshd and runc root; hosts reach
# each other by ssh; two labs coexist; `up` cleans up after itself when it fails;
# and when a test ends its lab is gone without a trace, frozen containers included.
#
# LAB_IP_hK &c come from the lab's env file; small check functions are called indirectly:
# shellcheck disable=SC2154,SC2317
set -uo pipefail
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

require_root
require_cmd runc ip nsenter unshare setpriv ssh /usr/sbin/sshd busybox python3

state=$(mktemp -d /tmp/cmt-t00.XXXXXX)
at_exit rm -rf "$state"

# Part 1 runs in a subshell with its own lab, which goes down when the subshell
# exits; part 2 then looks for anything left of it.
(
	lab_start 3
	echo "$LAB_NAME" >"$state/name"
	for h in $LAB_HOSTS; do
		cp "$LAB_DIR/$h/init.pid" "$state/$h.init.pid"
		cp "$LAB_DIR/$h/init.start" "$state/$h.init.start"
	done

	# --- hostnames, PID namespaces, /proc
	for h in $LAB_HOSTS; do
		is "$(on "$h" cat /proc/sys/kernel/hostname)" "$h" "$h: hostname is $h"
	done

	seen=" $(readlink /proc/self/ns/pid) "
	for h in $LAB_HOSTS; do
		init=$(cat "$LAB_DIR/$h/init.pid")
		outer=$(readlink "/proc/$init/ns/pid")
		inner=$(on "$h" readlink /proc/self/ns/pid)
		pid1=$(on "$h" cat /proc/1/cmdline | tr '\0' ' ')
		if [ "$outer" = "$inner" ] && [[ $seen != *" $inner "* ]] && [[ $pid1 == *"__host-init $LAB_NAME $h "* ]]; then
			ok "$h: own PID namespace and /proc, its init ($init outside) is PID 1 there"
		else
			fail "$h: own PID namespace and /proc" "init $init is in $outer, $h sees $inner" \
				"namespaces seen before: $seen" "PID 1 there: $pid1"
		fi
		seen+="$inner "
	done
	nprocs=$(on h1 sh -c 'ls -d /proc/[0-9]* | wc -l')
	check "h1's /proc shows only its own processes ($nprocs)" test "$nprocs" -lt 30

	# --- per-host state directories
	configs=""
	for h in $LAB_HOSTS; do
		cfg=$(on "$h" cat /var/lib/cmt/config)
		is "$cfg" "$(printf 'name = %s\ncgroup_parent = cmt-%s-%s' "$h" "$LAB_NAME" "$h")" \
			"$h: /var/lib/cmt/config names $h and its cgroup parent"
		configs+="$cfg"$'\n'
	done
	is "$(sort <<<"$configs" | uniq -d)" "" "each host has its own /var/lib/cmt/config"
	on h1 touch /run/runc/.lab-probe
	if [ -e "$LAB_DIR/h1/runc/.lab-probe" ] && [ ! -e "$LAB_DIR/h2/runc/.lab-probe" ] &&
		on h2 test ! -e /run/runc/.lab-probe; then
		ok "each host has its own /run/runc"
	else
		fail "each host has its own /run/runc"
	fi
	on h1 rm -f /run/runc/.lab-probe

	# --- network and ssh
	for h in h2 h3; do
		ip_var=LAB_IP_$h
		check "h1 pings $h (${!ip_var})" on h1 busybox ping -c 1 -W 2 "${!ip_var}"
		is "$(on h1 ssh -F "$LAB_SSH_CONFIG" "$h" hostname 2>&1)" "$h" "h1 runs a command on $h by ssh"
	done
	is "$(on h3 ssh -F "$LAB_SSH_CONFIG" "$LAB_IP_h1" hostname 2>&1)" h1 "h3 reaches h1 by ssh to its address"
	is "$(echo through | on h1 ssh -F "$LAB_SSH_CONFIG" h2 cat 2>&1)" through "stdin goes through ssh between hosts"
	is "$(ip -o addr show | grep ' 10\.77\.0\.')$(ip -o link show | grep -E ': (br0|h[0-9]+)[@:]')" "" \
		"nothing of the lab in the root network namespace"

	# --- lab.sh exec
	on h2 sh -c 'exit 3'
	is $? 3 "exec returns the command's status"
	is "$(cd "$state" && on h2 pwd)" "$state" "exec runs in the caller's directory"
	is "$(echo hello | on h3 cat)" hello "exec passes stdin through"

	on_bg h2 sleep 4242
	sleeping() { on h2 sh -c 'cat /proc/[0-9]*/cmdline 2>/dev/null | tr "\0" " "' | grep -q 'sleep 4242'; }
	wait_until 5 sleeping
	kill "$ON_BG_PID"
	wait "$ON_BG_PID" 2>/dev/null
	if wait_until 5 ! sleeping; then
		ok "killing a backgrounded exec ends its command in the host"
	else
		fail "killing a backgrounded exec ends its command in the host" "$(on h2 ps -o pid,ppid,args)"
	fi

	# --- the init reaps orphans
	on h1 sh -c 'sleep 0.1 & exit 0'
	zombies() { on h1 sh -c 'cat /proc/[0-9]*/stat 2>/dev/null' | grep -q '^[0-9]* ([^)]*) Z'; }
	if wait_until 5 ! zombies; then
		ok "h1's init reaps orphans"
	else
		fail "h1's init reaps orphans" "$(on h1 ps -o pid,ppid,stat,args)"
	fi

	# --- a runc container on h1, left frozen so that `down` has to thaw it
	check "make_bundle builds a bundle" make_bundle "$state/ct1" h1 sleep 1000
	# (stdio on /dev/null: a dump fails on fds pointing at files outside the container)
	(cd "$state/ct1" && on h1 runc run -d ct1 </dev/null >/dev/null 2>"$state/run.err")
	is "$?:$(cat "$state/run.err")" "0:" "runc run -d on h1"
	is "$(on h1 runc list -q)" ct1 "runc list on h1 shows ct1"
	is "$(on h2 runc list -q)" "" "runc list on h2 does not show ct1"
	is "$(on h1 runc state ct1 | sed -n 's/^ *"status": "\(.*\)",$/\1/p')" running "ct1 is running"
	is "$(on h1 runc exec ct1 hostname 2>&1)" ct "the container's hostname is ct"
	cg=/sys/fs/cgroup/freezer/$LAB_CGROUP_h1/ct1
	check "the container's cgroup is under h1's cgroup parent" test -d "$cg"
	on h1 runc pause ct1
	is "$(cat "$cg/freezer.state" 2>&1)" FROZEN "runc pause freezes ct1"

	# --- a second lab at the same time, on the same subnet
	name2=s${LAB_NAME#t}
	dir2=/run/cmt-lab/$name2
	at_exit "$LAB" down "$name2"
	if "$LAB" up "$name2" 2 2>"$state/up2.log"; then
		ok "a second lab $name2 comes up beside $LAB_NAME"
		is "$("$LAB" exec "$name2" h1 ssh -F "$dir2/ssh_config" h2 hostname 2>&1)" h2 \
			"in lab $name2, h1 reaches h2 by ssh"
		# Both labs have an h2 at 10.77.0.12; each h1 must reach its own (the
		# other lab's h2 has another host key, which ssh refuses). Not through
		# a ControlMaster: its socket is a file, reachable from every network
		# namespace, and lab 1's h1 has one open to lab 1's h2.
		if "$LAB" exec "$name2" h1 ssh -F "$LAB_SSH_CONFIG" -o ControlPath=none h2 true 2>/dev/null; then
			fail "the labs' networks are separate" "lab $name2's h1 reached lab $LAB_NAME's h2"
		else
			ok "the labs' networks are separate"
		fi
		check "lab $LAB_NAME still works beside $name2" on h1 ssh -F "$LAB_SSH_CONFIG" h2 true
		labs=" $("$LAB" list | tr '\n' ' ')"
		if [[ $labs == *" $LAB_NAME "* && $labs == *" $name2 "* ]]; then
			ok "lab.sh list shows both labs"
		else
			fail "lab.sh list shows both labs" "$labs"
		fi
	else
		fail "a second lab $name2 comes up beside $LAB_NAME" "$(cat "$state/up2.log")"
	fi
	t0=$(_lib_now_ms)
	check "lab $name2 goes down" "$LAB" down "$name2"
	diag "lab.sh down of 2 hosts took $(($(_lib_now_ms) - t0)) ms"
	check "lab $name2 left no directory" test ! -e "$dir2"
	check "lab $LAB_NAME still works after $name2 went down" on h1 ssh -F "$LAB_SSH_CONFIG" h2 true

	# --- up refuses an existing name and leaves that lab alone; and bad names
	if "$LAB" up "$LAB_NAME" 1 2>"$state/up-again.log"; then
		fail "up refuses a lab name in use"
	elif grep -q 'already exists' "$state/up-again.log" && on h3 true && [ -e "$LAB_DIR/env" ]; then
		ok "up refuses a lab name in use, and the lab is intact"
	else
		fail "up refuses a lab name in use, and the lab is intact" "$(cat "$state/up-again.log")"
	fi
	if "$LAB" up 'Bad!' 1 2>/dev/null; then fail "up refuses a bad name"; else ok "up refuses a bad name"; fi

	_lib_now_ms >"$state/exit-ms"
	exit 0
	# the EXIT trap of this subshell takes the lab down (the frozen container too)
)
rc=$?
[ $rc = 77 ] && exit 77
[ $rc = 0 ] || fail "the lab part ended with status $rc"

# Part 2: nothing is left of the first lab.
name=$(cat "$state/name" 2>/dev/null) || bail "the lab part did not record its lab's name"
[ -e "$state/exit-ms" ] &&
	diag "lab.sh down of 3 hosts (with a frozen container) took $(($(_lib_now_ms) - $(cat "$state/exit-ms"))) ms"
is "$("$LAB" list | grep -x "$name")" "" "lab.sh list no longer shows $name"
check "/run/cmt-lab/$name is gone" test ! -e "/run/cmt-lab/$name"
is "$(ip netns list | grep "^cmt-$name-")" "" "no network namespace of $name is left"
is "$(ls -d /sys/fs/cgroup/*/cmt-"$name"-* 2>/dev/null)" "" "no cgroup of $name is left"
left=""
for f in "$state"/h*.init.pid; do
	pid=$(cat "$f")
	# a zombie has exited: it waits for this machine's PID 1 to reap it
	# (which may take seconds), not for anything of the lab's
	[ "$(_lib_proc_start "$pid")" = "$(cat "${f%.pid}.start")" ] &&
		! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null && left+=" $pid"
done
is "$left" "" "the hosts' init processes are gone"
is "$(grep " /run/cmt-lab/${name}[/ ]" /proc/self/mountinfo)" "" "no mount of $name is left"
check "lab.sh down again is harmless" "$LAB" down "$name"

# A failing `up` tears down what it made (here it fails once the switch and the
# first host's network namespace exist).
bad=f${name#t}
if LAB_EXTRA_PATH='/bad"path' "$LAB" up "$bad" 2 2>"$state/up-bad.log"; then
	fail "a failing up exits nonzero"
	"$LAB" down "$bad"
else
	check "a failing up says why" grep -q 'LAB_EXTRA_PATH' "$state/up-bad.log"
	is "$(ip netns list | grep "^cmt-$bad-")$(ls -d "/run/cmt-lab/$bad" 2>/dev/null)" "" \
		"a failing up leaves nothing behind"
fi

# A half-built lab (as after a crash) goes down too.
mkdir -p "/run/cmt-lab/$bad/h1" "/sys/fs/cgroup/pids/cmt-$bad-h1/x"
ip netns add "cmt-$bad-h1"
"$LAB" down "$bad"
is "$(ip netns list | grep "^cmt-$bad-")$(ls -d "/run/cmt-lab/$bad" /sys/fs/cgroup/*/"cmt-$bad-"* 2>/dev/null)" "" \
	"down removes a half-built lab"

#!/usr/bin/env bash
# lab/lab.sh - a lab of simulated hosts on this one machine, for cmt's tests and demos.
#
#   lab/lab.sh up NAME N            create hosts h1..hN of lab NAME (NAME: 1-8 of [a-z0-9])
#   lab/lab.sh exec NAME HOST [--] [CMD...]
#                                   run CMD (default: a shell) inside HOST's namespaces
#   lab/lab.sh down NAME            remove everything of lab NAME (idempotent)
#   lab/lab.sh list                 print the names of the labs present, one a line
#
# A host hK is:
#   - a network namespace cmt-NAME-hK whose eth0 (10.77.0.(K+10)/24) is a veth whose
#     peer is enslaved to the bridge br0 of the lab's switch namespace cmt-NAME-sw.
#     Nothing is created in the root network namespace, so labs can share a subnet;
#   - an init process (PID 1 of its own PID namespace, with its own mount and UTS
#     namespaces, hostname hK, its own /proc) that reaps orphans. Its PID as seen
#     from the root namespace is in $LAB_DIR/hK/init.pid;
#   - per-host directories bind-mounted over the standard paths in its mount
#     namespace: $LAB_DIR/hK/cmt over /var/lib/cmt (cmt's state root, with a
#     `config` naming the host and its cgroup parent cmt-NAME-hK),
#     $LAB_DIR/hK/runc over /run/runc (runc's root) and $LAB_DIR/hK/netns over
#     /run/netns (so `ip netns add` inside a host is private to it), all on a
#     /run of its own (a tmpfs, as on a real host; /run/cmt-lab is bound in);
#   - its own sshd on 10.77.0.(K+10):22. `ssh -F $LAB_DIR/ssh_config hJ CMD` works
#     from inside any host of the lab;
#   - a bridge cmt0 for containers with network namespaces of their own (cmt's
#     default attachment), linked to the switch by a veth (uplink0 in the host,
#     hK-c0 on br0): a container attached to cmt0 on any host is on the lab's
#     segment, so its own address in 10.77.0.0/24 (tests use .220-.250, above
#     every host's) reaches every host, and keeps working after a move.
#
# The lab's files live in /run/cmt-lab/NAME ($LAB_DIR); $LAB_DIR/env is a file to
# source (LAB_NAME, LAB_DIR, LAB_HOSTS, LAB_SSH_CONFIG, LAB_IP_hK, ...). It is
# written last: a lab with an env file is complete.
#
# Everything here is named after the lab, and `down` kills only processes that
# belong to the lab: the recorded init processes (checked by start time), what is
# left in the hosts' network namespaces, and what is in the hosts' cgroups.
set -euo pipefail

LAB_ROOT=/run/cmt-lab
LAB_NET=10.77.0            # hK gets $LAB_NET.(K+10)/24
LAB_MAX_HOSTS=200
READY_TIMEOUT_S=20         # how long `up` waits for every host to answer ssh
GONE_TIMEOUT_S=10          # how long `down` waits for the lab's processes to exit

SELF=$(readlink -f "${BASH_SOURCE[0]}")
SSHD=/usr/sbin/sshd        # sshd insists on being started by absolute path

die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }
warn() { printf 'lab: warning: %s\n' "$*" >&2; }

usage() {
	sed -n '2,8s/^# \{0,1\}//p' "$SELF" >&2
	exit 2
}

check_name() {
	[[ ${1:-} =~ ^[a-z0-9]{1,8}$ ]] || die "bad lab name '${1:-}': use 1 to 8 characters of [a-z0-9]"
}

check_host() {
	[[ ${1:-} =~ ^h[1-9][0-9]{0,2}$ ]] || die "bad host name '${1:-}': hosts are named h1, h2, ..."
}

need_root() {
	[ "$(id -u)" = 0 ] || die "must run as root (it creates namespaces, mounts and cgroups)"
}

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# Start time of a process (field 22 of /proc/PID/stat, clock ticks since boot):
# a PID together with its start time names one process, even if the PID is reused.
proc_start() {
	local stat
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
	stat=${stat##*) }        # drop "pid (comm) ", comm may contain anything
	# shellcheck disable=SC2086
	set -- $stat             # now $1 is field 3 (state), so field 22 is ${20}
	echo "${20}"
}

proc_state() {
	local stat
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
	stat=${stat##*) }
	echo "${stat%% *}"
}

# True when PID is still the process that started at START and has not exited
# (a zombie counts as gone: its parent will reap it, nothing can run in it).
proc_is() {
	local pid=$1 start=$2
	[ -n "$pid" ] && [ -n "$start" ] || return 1
	[ "$(proc_start "$pid")" = "$start" ] || return 1
	[ "$(proc_state "$pid")" != Z ]
}

# Record PID (with its start time) in FILE.pid / FILE.start.
record_pid() {
	local pid=$1 file=$2 start
	start=$(proc_start "$pid") || return 1
	echo "$pid" >"$file.pid"
	echo "$start" >"$file.start"
}

# Print the recorded PID of FILE.pid if that process is still alive.
recorded_pid() {
	local file=$1 pid start
	read -r pid 2>/dev/null <"$file.pid" || return 1
	read -r start 2>/dev/null <"$file.start" || return 1
	proc_is "$pid" "$start" || return 1
	echo "$pid"
}

# Close every fd above 2, so that long-lived lab processes do not hold on to the
# caller's pipes (a test runner waiting for EOF would hang until `down`).
close_extra_fds() {
	local fd
	for fd in "/proc/$BASHPID/fd/"*; do
		fd=${fd##*/}
		[ "$fd" -gt 2 ] 2>/dev/null || continue
		eval "exec $fd>&-" 2>/dev/null || true
	done
}

# Mount points at or below DIR in the current mount namespace, deepest first.
mounts_under() {
	local dir=${1%/}
	awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
		sed 's/\\040/ /g' | sort -r -u
}

umount_under() {
	local m
	while IFS= read -r m; do
		umount -l "$m" 2>/dev/null || warn "could not unmount $m"
	done < <(mounts_under "$1")
}

# ---------------------------------------------------------------------------
# up

# Runs as PID 1 of a host: `lab.sh __host-init NAME HOST`, started by cmd_up as
#   nsenter --net=/run/netns/cmt-NAME-HOST unshare --pid --mount --uts --fork --mount-proc
# Sets up the host's mounts and hostname, starts its sshd, then reaps orphans forever.
host_init() {
	local name=$1 h=$2
	local hd=$LAB_ROOT/$name/$h

	mount --make-rprivate /
	echo "$h" >/proc/sys/kernel/hostname

	# This mount namespace started as a copy of the machine's, including the
	# bind mounts of every named network namespace: they would keep the
	# namespaces of other labs (and of this one) alive after their `down`.
	# Drop them; the host gets its own, empty, /run/netns.
	umount_under /run/netns
	# A /run of its own, a tmpfs as on any real host (this machine's /run is
	# not one, and CRIU keeps its cache of kernel features, /run/criu.kdat,
	# only on a tmpfs: without it each CRIU run probes the kernel again, 25-60
	# ms here); the lab's directory is bound back into it.
	local labfd
	exec {labfd}<"$LAB_ROOT"
	mount -t tmpfs -o mode=755,size=64m "cmt-lab-$name-$h-run" /run
	mkdir -p "$LAB_ROOT" /run/netns /run/runc /run/sshd /run/lock
	mount --no-canonicalize --bind "/proc/self/fd/$labfd" "$LAB_ROOT" # the fd, not its path: hidden now
	exec {labfd}<&-
	mount --bind "$hd/netns" /run/netns
	mount --bind "$hd/cmt" /var/lib/cmt
	mount --bind "$hd/runc" /run/runc

	"$SSHD" -f "$hd/sshd_config" -E "$hd/sshd.log"
	: >"$hd/ready"

	# Reap: processes orphaned in this PID namespace are re-parented to us.
	# While bash waits for its own child it reaps every child that exits
	# (it calls waitpid(-1)), so a sleeping loop is a complete init.
	set +e
	exec </dev/null
	while :; do
		sleep 3600 &
		wait
	done
}

write_sshd_config() {
	local hd=$1 ip=$2
	# Sessions get PATH=$LAB_EXTRA_PATH (if given to `up`) before the usual
	# directories, so that e.g. `ssh h2 cmt agent --stdio` finds a cmt under test.
	local path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	if [ -n "${LAB_EXTRA_PATH:-}" ]; then path=$LAB_EXTRA_PATH:$path; fi
	[[ $path != *[\"$'\n']* ]] || die "LAB_EXTRA_PATH must not contain double quotes or newlines"
	cat >"$hd/sshd_config" <<EOF
# sshd of lab host ${hd##*/}, written by lab/lab.sh
ListenAddress $ip:22
AddressFamily inet
HostKey $hd/ssh_host_ed25519_key
PidFile $hd/sshd.pid
AuthorizedKeysFile $hd/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
X11Forwarding no
MaxStartups 100
MaxSessions 100
Subsystem sftp internal-sftp
# Debian's bash reads ~/.bashrc even for "ssh host cmd" when SHLVL is unset,
# which on a developer machine can cost most of a second per command (pyenv &c).
# Starting the session's shell at level 1 skips that, as on most systems.
SetEnv SHLVL=1 "PATH=$path"
EOF
}

# The client side: one block per host, then defaults that also serve plain IPs.
write_ssh_config() {
	local dir=$1 n=$2 k
	{
		echo "# ssh client configuration of lab ${dir##*/}, written by lab/lab.sh"
		echo "# usage, from inside any host of the lab: ssh -F $dir/ssh_config hK CMD"
		for ((k = 1; k <= n; k++)); do
			echo
			echo "Host h$k"
			echo "    HostName $LAB_NET.$((k + 10))"
			ssh_common_options "$dir"
		done
		echo
		echo "Host *"
		ssh_common_options "$dir"
	} >"$dir/ssh_config"
}

ssh_common_options() {
	local dir=$1
	cat <<EOF
    User root
    Port 22
    IdentityFile $dir/id_ed25519
    IdentitiesOnly yes
    BatchMode yes
    UserKnownHostsFile $dir/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    ConnectTimeout 5
    LogLevel ERROR
    ControlMaster auto
    ControlPath $dir/cm/%C
    ControlPersist 60
EOF
}

write_env() {
	local name=$1 dir=$2 n=$3 k hosts=""
	for ((k = 1; k <= n; k++)); do hosts+="${hosts:+ }h$k"; done
	{
		echo "# lab $name, written by lab/lab.sh up; source it"
		echo "LAB_NAME=$name"
		echo "LAB_DIR=$dir"
		echo "LAB_HOSTS=\"$hosts\""
		echo "LAB_SSH_CONFIG=$dir/ssh_config"
		echo "LAB_SUBNET=$LAB_NET.0/24"
		echo "LAB_CT_NET=$LAB_NET"
		for ((k = 1; k <= n; k++)); do
			echo "LAB_IP_h$k=$LAB_NET.$((k + 10))"
			echo "LAB_NETNS_h$k=cmt-$name-h$k"
			echo "LAB_CGROUP_h$k=cmt-$name-h$k"
		done
	} >"$dir/env.tmp"
	mv "$dir/env.tmp" "$dir/env"
}

# Create the host's network namespace, its link to the switch, its files, and
# start its init (which starts its sshd).
make_host() {
	local name=$1 dir=$2 k=$3
	local h=h$k ip=$LAB_NET.$((k + 10))
	local ns=cmt-$name-$h sw=cmt-$name-sw hd=$dir/$h

	mkdir -p "$hd/cmt" "$hd/runc" "$hd/netns"
	printf 'name = %s\ncgroup_parent = %s\n' "$h" "$ns" >"$hd/cmt/config"

	# The veth is made in the switch and its eth0 end moved to the host, so
	# nothing ever appears in the root network namespace.
	ip netns add "$ns"
	ip -n "$sw" -batch - <<-EOF
		link add $h type veth peer name eth0 netns $ns
		link set $h master br0 up
	EOF
	ip -n "$ns" -batch - <<-EOF
		link set lo up
		addr add $ip/24 dev eth0
		link set eth0 up
	EOF
	# the containers' bridge, on the same segment
	ip -n "$sw" -batch - <<-EOF
		link add $h-c0 type veth peer name uplink0 netns $ns
		link set $h-c0 master br0 up
	EOF
	ip -n "$ns" -batch - <<-EOF
		link add cmt0 type bridge
		link set uplink0 master cmt0 up
		link set cmt0 up
	EOF

	ssh-keygen -q -t ed25519 -N '' -C "cmt-lab-$name-$h" -f "$hd/ssh_host_ed25519_key"
	echo "$h,$ip $(cut -d' ' -f1,2 "$hd/ssh_host_ed25519_key.pub")" >>"$dir/known_hosts"
	cp "$dir/id_ed25519.pub" "$hd/authorized_keys"
	write_sshd_config "$hd" "$ip"

	# setsid: the host must not share the caller's session or get its terminal's
	# signals. The launcher (nsenter, exec'ing unshare) stays in the root PID
	# namespace and waits for the init, its only child.
	(
		close_extra_fds
		exec setsid nsenter --net="/run/netns/$ns" \
			unshare --pid --mount --uts --fork --mount-proc --propagation private \
			bash "$SELF" __host-init "$name" "$h"
	) </dev/null >"$hd/init.log" 2>&1 &
	record_pid $! "$hd/launcher"
}

# Wait for every host's init to have set itself up, and record its PID.
wait_inits() {
	local dir=$1 n=$2 k hd launcher init deadline
	deadline=$(($(now_ms) + READY_TIMEOUT_S * 1000))
	for ((k = 1; k <= n; k++)); do
		hd=$dir/h$k
		read -r launcher <"$hd/launcher.pid"
		until [ -e "$hd/ready" ]; do
			if ! recorded_pid "$hd/launcher" >/dev/null; then
				die "host h$k did not start: $(tail -n 5 "$hd/init.log" 2>/dev/null | tr '\n' ' ')"
			fi
			[ "$(now_ms)" -lt "$deadline" ] || die "host h$k did not get ready in ${READY_TIMEOUT_S}s (see $hd/init.log)"
			sleep 0.02
		done
		init=$(ps -o pid= --ppid "$launcher")
		init=${init//[[:space:]]/}
		[ -n "$init" ] || die "cannot find the init process of host h$k (child of $launcher)"
		record_pid "$init" "$hd/init"
	done
}

# Wait until every sshd answers a login from h1, all hosts in parallel (this also
# proves the network and the client configuration, and leaves warm ControlMaster
# connections from h1 behind).
wait_sshds() {
	local name=$1 dir=$2 n=$3 hosts=() k out
	for ((k = 1; k <= n; k++)); do hosts+=("h$k"); done
	# shellcheck disable=SC2016
	if ! out=$(cmd_exec "$name" h1 -- bash -c '
		cfg=$1 timeout_s=$2; shift 2
		deadline=$((${EPOCHREALTIME%.*} + timeout_s))
		ready() {
			local err
			until err=$(ssh -F "$cfg" "$1" true 2>&1 </dev/null); do
				if [ "${EPOCHREALTIME%.*}" -ge "$deadline" ]; then
					echo "sshd of $1 does not answer from h1 after ${timeout_s}s: $err"
					return 1
				fi
				sleep 0.05
			done
		}
		pids=()
		for h in "$@"; do ready "$h" & pids+=($!); done
		rc=0
		for p in "${pids[@]}"; do wait "$p" || rc=1; done
		exit $rc' lab-ready "$dir/ssh_config" "$READY_TIMEOUT_S" "${hosts[@]}" 2>&1); then
		die "${out:-the readiness check failed}"
	fi
}

up_exit() {
	local rc=$1 name=$2
	[ "$rc" -eq 0 ] && return 0
	echo "lab: tearing down the half-built lab $name" >&2
	cmd_down "$name" >&2 || true
	exit "$rc"
}

cmd_up() {
	[ $# -eq 2 ] || usage
	local name=$1 n=$2
	check_name "$name"
	if ! [[ $n =~ ^[1-9][0-9]*$ ]] || [ "$n" -gt $LAB_MAX_HOSTS ]; then
		die "bad host count '$n': 1 to $LAB_MAX_HOSTS"
	fi
	need_root
	local t
	for t in ip nsenter unshare setsid setpriv ssh ssh-keygen ps "$SSHD"; do
		command -v "$t" >/dev/null || die "$t is missing (run scripts/deps.sh)"
	done

	local dir=$LAB_ROOT/$name
	mkdir -p "$LAB_ROOT"
	mkdir "$dir" 2>/dev/null || die "lab '$name' already exists ($dir); remove it with: lab/lab.sh down $name"
	if [ -e "/run/netns/cmt-$name-sw" ]; then
		rmdir "$dir"
		die "network namespaces of a lab '$name' exist already; remove them with: lab/lab.sh down $name"
	fi

	# From here on, any failure tears down whatever was made.
	trap 'up_exit $? "$name"' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap 'exit 129' HUP

	# Mount points (in the shared root filesystem) and sshd's privilege
	# separation directory; creating them is harmless if they exist.
	mkdir -p /var/lib/cmt /run/runc /run/netns /run/sshd "$dir/cm"
	ssh-keygen -q -t ed25519 -N '' -C "cmt-lab-$name" -f "$dir/id_ed25519"
	: >"$dir/known_hosts"

	local sw=cmt-$name-sw
	ip netns add "$sw"
	ip -n "$sw" -batch - <<-EOF
		link set lo up
		link add br0 type bridge
		link set br0 up
	EOF

	local k
	for ((k = 1; k <= n; k++)); do
		make_host "$name" "$dir" "$k"
	done
	write_ssh_config "$dir" "$n"
	wait_inits "$dir" "$n"
	wait_sshds "$name" "$dir" "$n"
	write_env "$name" "$dir" "$n"
	trap - EXIT INT TERM HUP
}

# ---------------------------------------------------------------------------
# exec

cmd_exec() {
	[ $# -ge 2 ] || usage
	local name=$1 h=$2
	shift 2
	[ "${1:-}" = -- ] && shift
	check_name "$name"
	check_host "$h"
	need_root
	local hd=$LAB_ROOT/$name/$h pid
	[ -d "$hd" ] || die "no host $h in lab $name"
	pid=$(recorded_pid "$hd/init") || die "host $h of lab $name is not running"
	[ $# -gt 0 ] || set -- bash
	# nsenter forks CMD into the host's PID namespace and waits for it, but
	# forwards no signal: CMD gets SIGTERM when nsenter dies (`kill $!` of a
	# backgrounded `lab.sh exec` must not leave CMD running in the host).
	# Entering the mount namespace moves us to its root: go back to the caller's
	# directory if it exists there (it is the same filesystem).
	# shellcheck disable=SC2016
	exec nsenter -t "$pid" -n -p -m -u -- setpriv --pdeathsig TERM \
		/bin/sh -c 'cd -- "$1" 2>/dev/null || cd /; shift; exec "$@"' lab-exec "$PWD" "$@"
}

# ---------------------------------------------------------------------------
# down

# The hosts of a lab, from whatever is left of it: its directory, its network
# namespaces, its cgroups (a half-built lab may have any subset of them).
lab_hosts() {
	local name=$1 p
	{
		for p in "$LAB_ROOT/$name"/h*/; do
			if [ -d "$p" ]; then p=${p%/}; echo "${p##*/}"; fi
		done
		for p in /run/netns/cmt-"$name"-h* /sys/fs/cgroup/*/cmt-"$name"-h*; do
			if [ -e "$p" ]; then echo "${p##*/cmt-"$name"-}"; fi
		done
	} | grep -E '^h[0-9]+$' | sort -u || true
}

# Every cgroup directory of the lab, in every hierarchy, deepest first.
lab_cgroups() {
	local name=$1 tops=() p
	for p in /sys/fs/cgroup/*/cmt-"$name"-h[0-9]*; do
		if [ -d "$p" ]; then tops+=("$p"); fi
	done
	[ ${#tops[@]} -eq 0 ] || find "${tops[@]}" -depth -type d 2>/dev/null || true
}

thaw_cgroups() {
	local cg state
	while IFS= read -r cg; do
		if read -r state 2>/dev/null <"$cg/freezer.state" && [ "$state" != THAWED ]; then
			echo THAWED >"$cg/freezer.state" 2>/dev/null || warn "could not thaw $cg"
		fi
		if read -r state 2>/dev/null <"$cg/cgroup.freeze" && [ "$state" != 0 ]; then
			echo 0 >"$cg/cgroup.freeze" 2>/dev/null || warn "could not thaw $cg"
		fi
	done < <(lab_cgroups "$1")
}

# Processes still in the lab's cgroups (they belong to the lab by where they live).
cgroup_pids() {
	local cg pid
	while IFS= read -r cg; do
		while read -r pid; do echo "$pid"; done 2>/dev/null <"$cg/cgroup.procs" || true
	done < <(lab_cgroups "$1")
}

# Processes in the network namespace NS (given by name), other than this one.
netns_pids() {
	local ino
	ino=$(stat -L -c %i "/run/netns/$1" 2>/dev/null) || return 0
	# shellcheck disable=SC2016
	stat -L -c '%i %n' /proc/[0-9]*/ns/net 2>/dev/null |
		awk -v ino="$ino" -v self="$BASHPID" '$1 == ino { split($2, p, "/"); if (p[3] != self) print p[3] }' || true
}

# SIGKILL each PID and remember it (with its start time) in the array `killed`.
kill_pids() {
	local pid start
	for pid in "$@"; do
		start=$(proc_start "$pid") || continue
		kill -KILL "$pid" 2>/dev/null || true
		killed+=("$pid:$start")
	done
}

cmd_down() {
	[ $# -eq 1 ] || usage
	local name=$1
	check_name "$name"
	need_root
	local dir=$LAB_ROOT/$name h hd pid
	local -a hosts killed=()
	mapfile -t hosts < <(lab_hosts "$name")

	# 1. Frozen tasks do not die from SIGKILL until thawed.
	thaw_cgroups "$name"

	# 2. Kill each host's init: the kernel then kills everything in its PID
	#    namespace (containers included). Then its launcher, if it is somehow
	#    left, and anything else that entered the host's network namespace.
	for h in "${hosts[@]}"; do
		hd=$dir/$h
		if pid=$(recorded_pid "$hd/init"); then
			kill_pids "$pid"
		elif pid=$(recorded_pid "$hd/launcher"); then
			# half-built: the init was not recorded yet; it is the launcher's child
			# shellcheck disable=SC2046
			kill_pids $(ps -o pid= --ppid "$pid")
		fi
		if pid=$(recorded_pid "$hd/launcher"); then kill_pids "$pid"; fi
		# shellcheck disable=SC2046
		kill_pids $(netns_pids "cmt-$name-$h")
	done
	# shellcheck disable=SC2046
	kill_pids $(cgroup_pids "$name")

	# 3. Wait for all of them to be gone (re-thawing and re-killing anything
	#    that shows up in the lab's cgroups meanwhile).
	local deadline entry left
	deadline=$(($(now_ms) + GONE_TIMEOUT_S * 1000))
	while :; do
		left=()
		for entry in "${killed[@]}"; do
			if proc_is "${entry%%:*}" "${entry#*:}"; then left+=("${entry%%:*}"); fi
		done
		[ ${#left[@]} -eq 0 ] && break
		if [ "$(now_ms)" -ge "$deadline" ]; then
			warn "processes of lab $name still alive after ${GONE_TIMEOUT_S}s: ${left[*]}"
			break
		fi
		thaw_cgroups "$name"
		# shellcheck disable=SC2046
		kill_pids $(cgroup_pids "$name")
		sleep 0.02
	done

	# 4. Remove the cgroups, deepest first. A cgroup cannot be removed until
	#    its last (dying) task is gone, so retry for a while.
	local -a cgs
	deadline=$(($(now_ms) + GONE_TIMEOUT_S * 1000))
	while :; do
		mapfile -t cgs < <(lab_cgroups "$name")
		[ ${#cgs[@]} -eq 0 ] && break
		rmdir "${cgs[@]}" 2>/dev/null && break
		if [ "$(now_ms)" -ge "$deadline" ]; then
			mapfile -t cgs < <(lab_cgroups "$name")
			warn "cannot remove the cgroups ${cgs[*]}"
			break
		fi
		# shellcheck disable=SC2046
		kill_pids $(cgroup_pids "$name")
		sleep 0.02
	done

	# 5. The network namespaces (the veths and the bridge go with them).
	local ns
	for ns in /run/netns/cmt-"$name"-h[0-9]* /run/netns/cmt-"$name"-sw; do
		[ -e "$ns" ] || continue
		ip netns del "${ns##*/}" 2>/dev/null || warn "could not delete network namespace ${ns##*/}"
	done

	# 6. Anything still mounted in the lab directory, then the directory.
	if [ -d "$dir" ]; then
		umount_under "$dir"
		rm -rf --one-file-system "$dir" || warn "could not remove $dir"
	fi
	return 0
}

# ---------------------------------------------------------------------------
# list

cmd_list() {
	[ $# -eq 0 ] || usage
	local p
	{
		for p in "$LAB_ROOT"/*/; do
			if [ -d "$p" ]; then p=${p%/}; echo "${p##*/}"; fi
		done
		# also labs whose directory is gone but whose switch is still there
		for p in /run/netns/cmt-*-sw; do
			if [ -e "$p" ]; then p=${p#/run/netns/cmt-}; echo "${p%-sw}"; fi
		done
	} | sort -u
}

# ---------------------------------------------------------------------------

main() {
	local cmd=${1:-}
	[ $# -gt 0 ] && shift
	case $cmd in
	up) cmd_up "$@" ;;
	exec) cmd_exec "$@" ;;
	down) cmd_down "$@" ;;
	list) cmd_list "$@" ;;
	__host-init) host_init "$@" ;;
	-h | --help | help) usage ;;
	*) usage ;;
	esac
}

main "$@"

#!/usr/bin/env bash
# t13-host-file-stdout.sh - a container whose stdout and stderr are a file of
# the host (outside the container's mounts) cannot be dumped by CRIU: cmt must
# fail (exit 1) saying which descriptor refers to which file and how to fix it
# (/dev/null or pipes), and the container must keep running on the source, not
# paused, with nothing left on the destination. Checked through the
# pre-migration checks and, when cmt has --force, through CRIU's own failure.
# LAB_* come from the lab's env file; single quotes keep $ for the shells in the hosts:
# shellcheck disable=SC2154,SC2016
set -u
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

require_root
require_cmt
require_cmd runc busybox python3

# --- helpers -----------------------------------------------------------------

lines_ge() { [ "$(wc -l <"$1")" -ge "$2" ]; }

# refused WHAT: what must hold after each refused migration
refused() {
	local what=$1 n l
	is "$MIG_RC" 1 "$what: cmt exits 1"
	jtest "$what: JSON result is failed" 'd["result"] == "failed"' \
		"$what: the JSON error or hint names the file and the fix" \
		'"'"$out"'" in json.dumps(d) and re.search("/dev/null|pipe", d.get("hint", "") + json.dumps(d.get("checks", "")))'
	if grep -qF "$out" <<<"$MIG_ERR" && grep -qE '(fd|file descriptor) [12]([^0-9]|$)' <<<"$MIG_ERR"; then
		ok "$what: the message says that fd 1 or 2 refers to $out"
	else
		fail "$what: the message says that fd 1 or 2 refers to $out"
	fi
	if grep -qE '/dev/null|pipe' <<<"$MIG_ERR"; then
		ok "$what: the message says how to fix it (/dev/null or pipes)"
	else
		fail "$what: the message says how to fix it (/dev/null or pipes)"
	fi
	is "$(runc_status h1 ct1)" running "$what: ct1 is still running on h1 (not paused)"
	n=$(count_read "$count")
	l=$(wc -l <"$out")
	if wait_until 5 count_ge "$count" $((n + 5)) && wait_until 5 lines_ge "$out" $((l + 5)); then
		ok "$what: ct1 keeps counting on h1, and writing to $out"
	else
		fail "$what: ct1 keeps counting on h1, and writing to $out" "count: $n, then $(cat "$count" 2>&1)" \
			"lines of $out: $l, then $(wc -l <"$out")"
	fi
	is "$(on h2 runc list -q)" "" "$what: nothing is registered in h2's runc root"
	check "$what: no bundle of ct1 is left on h2" test ! -e "$LAB_DIR/h2/cmt/bundles/ct1"
	is "$(ls -d /sys/fs/cgroup/*/"$LAB_CGROUP_h2"/ct1 2>/dev/null)" "" "$what: no cgroup of ct1 on h2"
	is "$(images_left h1)$(images_left h2)" "" "$what: no migration images are left on h1 or h2"
}

# ---------------------------------------------------------------------------

lab_start 2
work=$(mktemp -d /tmp/cmt-t13.XXXXXX)
at_exit rm -rf "$work"
at_exit 'on h1 runc delete --force ct1 >/dev/null 2>&1; on h2 runc delete --force ct1 >/dev/null 2>&1'

# The container prints its count too: to its stdout, the host file $out
# (outside the bundle, so in none of the container's mounts).
out=$work/ct1-stdout.log
make_bundle "$work/ct1" h1 sh -c 'i=0; while :; do i=$((i+1)); echo $i >/tmp/count; echo "count $i"; sleep 0.05; done' ||
	bail "make_bundle failed"
on h1 sh -c "cd '$work/ct1' && exec runc run -d ct1 </dev/null >'$out' 2>&1" || bail "runc run ct1 on h1 failed"
count=$work/ct1/rootfs/tmp/count
wait_until 10 count_ge "$count" 5 || bail "ct1 does not count on h1"
pid=$(runc_pid h1 ct1)
is "$(on h1 readlink "/proc/$pid/fd/1")" "$out" "ct1's stdout is the host file $out"
check "ct1 writes to it" wait_until 5 lines_ge "$out" 3

migrate_from h1 ct1 --to h2
refused "default"

if "$CMT" migrate --help 2>&1 | grep -q -- '--force'; then
	# without the pre-migration checks: CRIU itself fails to dump, and cmt
	# must explain CRIU's "Can't lookup mount" and resume the container
	migrate_from h1 ct1 --to h2 --force
	refused "--force (CRIU's own failure)"
	jtest "--force: JSON error_host is h1 (the dump failed on the source)" 'd.get("error_host") == "h1"' \
		"--force: JSON source_running is true" 'd.get("source_running") is True'
else
	diag "this cmt has no --force: CRIU's own failure is not reached"
fi

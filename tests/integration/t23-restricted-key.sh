#!/usr/bin/env bash
# The destination can restrict the key used for migrations to the agent alone
# (README, "Restricting the SSH key"): with
#     command="cmt agent --stdio",restrict <key>
# in its authorized_keys, checks and migrations work through that key, and
# the key runs nothing else: whatever command the client asks for, sshd runs
# the agent, which speaks only the protocol.
set -u
. "$(dirname "$0")/lib.sh"
require_root
require_cmt
require_cmd ssh-keygen runc busybox
lab_start 2
work=$(mktemp -d /tmp/cmt-t23.XXXXXX)
at_exit rm -rf "$work"

ssh-keygen -q -t ed25519 -N '' -C "cmt-t23-restricted" -f "$work/key" || bail "ssh-keygen"
echo "command=\"$CMT agent --stdio\",restrict $(cat "$work/key.pub")" >>"$LAB_DIR/h2/authorized_keys"
# only this key (no connection sharing with the lab's unrestricted key)
RSH="ssh -F $LAB_SSH_CONFIG -i $work/key -o IdentitiesOnly=yes -o ControlPath=none"

out=$(ssh -F "$LAB_SSH_CONFIG" -i "$work/key" -o IdentitiesOnly=yes -o ControlPath=none h2 id </dev/null 2>&1)
if grep -q 'uid=' <<<"$out"; then fail "the restricted key does not run 'id' on h2" "$out"; else ok "the restricted key does not run 'id' on h2"; fi
out=$(ssh -F "$LAB_SSH_CONFIG" -i "$work/key" -o IdentitiesOnly=yes -o ControlPath=none h2 "touch /tmp/t23-pwned-$$" </dev/null 2>&1)
check "nor any other command" on h2 test ! -e "/tmp/t23-pwned-$$"

make_bundle "$work/ct1" h1 sh -c 'i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done' >/dev/null ||
	bail "bundle"
on h1 sh -c "cd '$work/ct1' && exec runc run -d ct1 </dev/null >/dev/null 2>&1" || bail "runc run"
at_exit "on h1 runc delete --force ct1 >/dev/null 2>&1; on h2 runc delete --force ct1 >/dev/null 2>&1"
wait_until 10 test -s "$work/ct1/rootfs/tmp/count" || bail "ct1 did not start"

on h1 "$CMT" check ct1 --to h2 --rsh "$RSH" --remote-cmt cmt >"$work/check.out" 2>&1
is "$?" 0 "cmt check works through the restricted key" || diag "$(cat "$work/check.out")"
on h1 "$CMT" migrate ct1 --to h2 --rsh "$RSH" --remote-cmt cmt >"$work/mig.out" 2>&1
is "$?" 0 "cmt migrate works through the restricted key" || diag "$(cat "$work/mig.out")"
is "$(runc_status h2 ct1)" running "ct1 runs on h2"
is "$(runc_status h1 ct1)" "" "and not on h1"

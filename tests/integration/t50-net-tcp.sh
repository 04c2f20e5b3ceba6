#!/usr/bin/env bash
# t50-net-tcp.sh - network identity: a container with a network namespace of
# its own at a path (as CNI sets it up: /run/netns/NAME, a veth on the host's
# bridge cmt0, its own address and MAC on the lab's segment) serves TCP on h1;
# a client on h3 sends a numbered request every 5 ms on one connection and
# checks every answer. While the client talks:
#   0. a process outside the container in its namespace: refused before anything;
#   1. h1 -> h2: cmt recreates the namespace on h2 (same address, MAC, route),
#      locked, restores with --tcp-established, moves the traffic, and removes
#      h1's namespace;
#   2. h2 -> h1 with a pre-restore hook that prepares the namespace on h1 the
#      way a CNI plugin would: cmt restores into that one and makes none;
#   3. h1 -> h2 failing after the restore (the source's connection is cut):
#      h2's namespace is removed and the container keeps serving from h1;
#   4. cmt killed on h1 while the container is frozen: `cmt recover` resumes
#      and unlocks it;
#   5. the agent killed on h2 after the restore: the source resumes, and
#      `cmt recover` on h2 removes what the agent made;
#   6. h1 -> h2 (in precopy mode when cmt has it) where h2 attaches through a
#      program (net_attach) and runs a route hook: first the program fails
#      (the migration fails, h1 serves on), then it works;
#   and then the client must have seen no reset, no lost, duplicated or
#   reordered answer, and must have kept talking after each step.
# CMT_T50_MODE=precopy (or hybrid: t51) runs the moves in that mode.
# shellcheck disable=SC2154,SC2016
set -u
# shellcheck source=tests/integration/lib.sh
. "$(dirname "$0")/lib.sh"

require_root
require_cmt
require_cmd runc busybox python3 ip nsenter iptables-restore

mode=${CMT_T50_MODE:-cold}
make -s -C "$REPO/tests/workload" OUT="$REPO/build/workload" >/dev/null || bail "cannot build tests/workload"
NETPP=$REPO/build/workload/netpp

lab_start 3
work=$(mktemp -d /tmp/cmt-t50.XXXXXX)
at_exit rm -rf "$work"
ct=web$$
ns=ctnet$$
ip=$LAB_CT_NET.220
ip6=fd00:77::220
mac=02:42:0a:4d:00:dc
port=7777
nspath=/run/netns/$ns
at_exit "on h1 runc delete --force $ct >/dev/null 2>&1; on h2 runc delete --force $ct >/dev/null 2>&1; true"

# What a CNI bridge plugin does: a namespace at /run/netns/NAME, a veth pair
# (eth0 inside, HOSTIF on cmt0), the addresses, two routes (one onlink). Also
# the pre-restore hook's work in step 2, which first locks the namespace the
# way README says (its interfaces come up while the source is frozen: a peer's
# retransmission reaching it unlocked would get a reset; IPv6's MLD reports
# are enough to draw the container's MAC to this host).
cat >"$work/cni-add.sh" <<EOF
#!/bin/sh
set -e
ip netns add $ns
LOCK
ip link add HOSTIF type veth peer name eth0 netns $ns
ip -n $ns link set eth0 address $mac
ip -n $ns link set eth0 addrgenmode none
ip -n $ns addr add $ip/24 dev eth0
ip -n $ns addr add $ip6/64 dev eth0 nodad
ip -n $ns link set lo up
ip -n $ns link set eth0 up
ip -n $ns route add 198.51.100.0/24 via $LAB_CT_NET.1 dev eth0
ip -n $ns route add 203.0.113.0/24 via 169.254.1.1 dev eth0 onlink
ip link set HOSTIF master cmt0 up
EOF
sed "s/HOSTIF/cni-a$$/g; /^LOCK\$/d" "$work/cni-add.sh" >"$work/cni-a.sh"
# the hook of step 2 adds "cni-b" on h1 (the host with a fresh namespace), locked
lock='for t in iptables ip6tables; do printf "*filter\\n:CMT-NETLOCK - [0:0]\\n-I INPUT -j CMT-NETLOCK\\n-I OUTPUT -j CMT-NETLOCK\\n-A CMT-NETLOCK -m mark --mark 0xC114 -j ACCEPT\\n-A CMT-NETLOCK -j DROP\\nCOMMIT\\n" | nsenter --net=/run/netns/'"$ns"' $t-restore -w --noflush; done'
sed "s/HOSTIF/cni-b$$/g" "$work/cni-add.sh" | while IFS= read -r l; do
	if [ "$l" = LOCK ]; then printf '%s\n' "$lock"; else printf '%s\n' "$l"; fi
done >"$work/cni-b.sh"
out=$(on h1 sh "$work/cni-a.sh" 2>&1) || bail "cannot set up the container's network namespace on h1: $out"

make_bundle "$work/$ct" h1 /bin/netpp server $port || bail "make_bundle failed"
cp "$NETPP" "$work/$ct/rootfs/bin/netpp"
"$PY" - "$work/$ct/config.json" "$nspath" <<'EOF' || bail "cannot edit config.json"
import json, sys
p, path = sys.argv[1], sys.argv[2]
spec = json.load(open(p))
for n in spec["linux"]["namespaces"]:
    if n["type"] == "network":
        n["path"] = path
json.dump(spec, open(p, "w"), indent=2)
EOF
# (stdio on /dev/null: CRIU cannot dump a container holding a host file)
on h1 sh -c "cd '$work/$ct' && exec runc run -d $ct </dev/null >/dev/null 2>&1" || bail "runc run $ct on h1 failed"

# the client on h3
status=$work/client.status
on_bg h3 sh -c 'exec "$@" >/dev/null' client "$NETPP" client "$ip" $port --interval-ms 5 --status "$status" --timeout-ms 30000
client=$ON_BG_PID
at_exit "kill $client 2>/dev/null; true"
client_ok() { mh_get "$status" ok; }
client_ge() { local v; v=$(client_ok) && [ "$v" -ge "$1" ]; }
if wait_until 15 client_ge 100; then
	ok "the client on h3 talks to $ct on h1 ($ip:$port)"
else
	bail "the client does not get answers: $(cat "$status" 2>&1)"
fi

# talks_on N: the client got N more answers, and is still fine
talks_on() {
	local from
	from=$(client_ok) || from=0
	if wait_until 20 client_ge $((from + $1)) && [ "$(mh_get "$status" state)" = running ]; then
		ok "$2"
	else
		fail "$2" "client: $(cat "$status")"
	fi
}

addr_of() { # HOST: "ADDR MAC" of eth0 in the container's namespace there
	on "$1" nsenter --net="$nspath" ip -json addr show eth0 2>/dev/null |
		"$PY" -c 'import json,sys; l=json.load(sys.stdin)[0]; print(" ".join([a["local"]+"/"+str(a["prefixlen"]) for a in l["addr_info"] if a["family"]=="inet"] + [l["address"]]))'
}
locked() { on "$1" nsenter --net="$nspath" iptables -w -n -L CMT-NETLOCK >/dev/null 2>&1; }
veths() { on "$1" ip -o link show type veth | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -Ev '^(eth0|uplink0)$' | sort | tr '\n' ' '; }

# --- 0. a process outside the container shares its namespace: refused, nothing moves --
on_bg h1 nsenter --net="$nspath" sleep 7$$
intruder=$ON_BG_PID
intruder_in() { on h1 pgrep -xf "sleep 7$$" >/dev/null; }
wait_until 5 intruder_in || diag "the process in the namespace did not start"
migrate_from h1 "$ct" --to h2 --mode "$mode"
is "$MIG_RC" 1 "a namespace shared with a process outside the container is refused (exit 1)"
jtest "JSON: the error names the other process, the container never stopped" \
	"'shared with process' in d['error'] and '(sleep)' in d['error'] and d['source_running'] is True and d['downtime_ms'] == 0"
kill "$intruder" 2>/dev/null
wait "$intruder" 2>/dev/null
wait_until 5 '!' intruder_in || diag "the process in the namespace is still there"

# IPv6 too: h3 gets an address on the segment (this lab's own host)
on h3 ip addr add fd00:77::13/64 dev eth0 nodad || bail "cannot add an IPv6 address to h3"
ping6_ok() { on h3 busybox ping -c 1 -W 2 "$ip6" >/dev/null 2>&1; }
check "h3 reaches the container's IPv6 address $ip6 on h1" wait_until 5 ping6_ok

# --- 1. h1 -> h2: recreated -----------------------------------------------------
migrate_from h1 "$ct" --to h2 --mode "$mode"
is "$MIG_RC" 0 "cmt migrate $ct --to h2 exits 0"
jtest "JSON: ok, the namespace $nspath moved and was recreated on h2" \
	"d['result'] == 'ok' and d['netns'] == '$nspath' and d['netns_existed'] is False" \
	"the restore was staged (h2's runc opened the namespace's path before the freeze: bound there early)" \
	"d['steps_ms'].get('restore-staged', 0) > 0"
is "$(runc_status h2 "$ct")" running "$ct runs on h2"
talks_on 200 "the client keeps talking to $ip after the move to h2"
is "$(addr_of h2)" "$ip/24 $mac" "on h2 the container has the same address and MAC"
check "on h2 the container's route is there" \
	sh -c "$LAB exec $LAB_NAME h2 nsenter --net=$nspath ip route show 198.51.100.0/24 | grep -q 'via $LAB_CT_NET.1'"
check "h3 reaches the container's IPv6 address $ip6 on h2" wait_until 5 ping6_ok
check "on h2 the container has its IPv6 address" \
	sh -c "$LAB exec $LAB_NAME h2 nsenter --net=$nspath ip -6 addr show dev eth0 | grep -q '$ip6/64'"
check "on h2 the container's onlink route is there (a gateway outside its subnet)" \
	sh -c "$LAB exec $LAB_NAME h2 nsenter --net=$nspath ip route show 203.0.113.0/24 | grep -q 'via 169.254.1.1 dev eth0 onlink'"
if locked h2; then fail "the lock of h2's namespace is gone"; else ok "the lock of h2's namespace is gone"; fi
check "h1's namespace is gone" on h1 test ! -e "$nspath"
is "$(veths h1)" "" "no veth of the container is left on h1 (cni-a$$ went with the namespace)"
h2if=$(veths h2)
check "h2's host end ($h2if) is on bridge cmt0" sh -c "$LAB exec $LAB_NAME h2 ip -o link show master cmt0 | grep -q '${h2if% }'"
is "$(on h2 ls /run/netns | grep -c '^cmt-')" 0 "no staging namespace of cmt is left on h2"
jtest "the network check passed (bridge cmt0 on h2)" \
	"any(c['name'] == 'network' and c['status'] == 'pass' and 'cmt0' in c['detail'] for c in d['checks'])"
# a destination without the bridge: `cmt check` says so before anything moves
echo "net_bridge = nosuch0" >>"$LAB_DIR/h3/cmt/config"
out=$(on h2 "$CMT" check "$ct" --to h3 --rsh "ssh -F $LAB_SSH_CONFIG" --remote-cmt "$CMT" 2>&1)
rc=$?
if [ "$rc" != 0 ] && grep -q "fail *network.*nosuch0" <<<"$out"; then
	ok "cmt check to a host without the bridge fails the network check"
else
	fail "cmt check to a host without the bridge fails the network check" "exit $rc" "$out"
fi
# and with --force (no checks) the agent refuses at NET_SETUP, before the freeze
migrate_from h2 "$ct" --to h3 --mode "$mode" --force
jtest "a migration to a host without the bridge fails before the freeze, naming the bridge and the fix" \
	"d['result'] == 'failed' and 'no bridge nosuch0' in d['error'] and 'net_bridge' in d.get('hint', '') and d['downtime_ms'] == 0 and d['source_running'] is True"
is "$(on h3 ls /run/netns 2>/dev/null | grep -c '^cmt-')" 0 "h3 keeps no staging namespace"
is "$(runc_status h2 "$ct")" running "$ct still runs on h2"

# --- 2. h2 -> h1, where a pre-restore hook prepares the namespace ------------------
hook="ssh -F $LAB_SSH_CONFIG h1 sh $work/cni-b.sh"
migrate_from h2 "$ct" --to h1 --mode "$mode" --hook-pre-restore "$hook"
is "$MIG_RC" 0 "cmt migrate $ct --to h1 (hook prepares the namespace) exits 0"
jtest "JSON: ok, restored into the namespace that existed on h1" "d['result'] == 'ok' and d['netns_existed'] is True"
talks_on 200 "the client keeps talking to $ip after the move back to h1"
is "$(veths h1)" "cni-b$$ " "on h1 the container uses the hook's namespace (its veth cni-b$$, none of cmt's)"
is "$(addr_of h1)" "$ip/24 $mac" "on h1 the container has the same address and MAC"
if locked h1; then fail "the lock of h1's namespace is gone"; else ok "the lock of h1's namespace is gone"; fi
check "h2's namespace is gone" on h2 test ! -e "$nspath"
is "$(veths h2)" "" "no veth of the container is left on h2"

# --- 3. h1 -> h2 failing after the restore: h2's namespace goes, h1 serves on ------
echo "source after-restored cut" >"$LAB_DIR/h1/cmt/faults"
migrate_from h1 "$ct" --to h2 --mode "$mode"
is "$MIG_RC" 1 "a migration cut after the restore fails (exit 1)"
jtest "JSON: failed, the container runs on the source" "d['result'] == 'failed' and d['source_running'] is True"
is "$(runc_status h1 "$ct")" running "$ct runs on h1 again"
talks_on 200 "the client keeps talking to $ip on h1 after the failed move"
if locked h1; then fail "h1's namespace is unlocked again"; else ok "h1's namespace is unlocked again"; fi
wait_until 10 on h2 test ! -e "$nspath" && ok "h2's namespace is removed after the failure" ||
	fail "h2's namespace is removed after the failure" "$(on h2 ls -l /run/netns)"
wait_until 10 eval '[ -z "$(veths h2)" ]' && ok "no veth of the container is left on h2" ||
	fail "no veth of the container is left on h2" "$(veths h2)"
is "$(on h2 runc list -q)" "" "no container on h2"

# --- 4. cmt killed on h1 while the container is frozen: `cmt recover` unlocks ------
echo "source after-freeze kill" >"$LAB_DIR/h1/cmt/faults"
migrate_from h1 "$ct" --to h2 --mode "$mode"
is "$MIG_RC" 137 "cmt killed after the freeze (exit 137)"
check "h1's namespace is still locked (the container is frozen)" locked h1
check "cmt recover on h1" on h1 "$CMT" recover
is "$(runc_status h1 "$ct")" running "$ct runs on h1 after the recovery"
if locked h1; then fail "the recovery unlocked h1's namespace"; else ok "the recovery unlocked h1's namespace"; fi
talks_on 200 "the client keeps talking to $ip after the recovery"
wait_until 10 on h2 test ! -e "$nspath" && ok "h2's agent removed its namespace (the source went away)" ||
	fail "h2's agent removed its namespace (the source went away)" "$(on h2 ls -l /run/netns)"

# --- 5. the agent killed after the restore: `cmt recover` on h2 removes its namespace --
echo "agent after-restore kill" >"$LAB_DIR/h2/cmt/faults"
migrate_from h1 "$ct" --to h2 --mode "$mode"
is "$MIG_RC" 1 "a migration whose agent died after the restore fails (exit 1)"
is "$(runc_status h1 "$ct")" running "$ct runs on h1"
talks_on 200 "the client keeps talking to $ip (h1) after the agent died"
check "h2 still has the dead agent's namespace before its recovery" on h2 test -e "$nspath"
check "cmt recover on h2" on h2 "$CMT" recover
check "h2's namespace is removed by the recovery" on h2 test ! -e "$nspath"
is "$(veths h2)" "" "no veth of the container is left on h2 after the recovery"
is "$(on h2 runc list -q)" "" "no container on h2 after the recovery"
talks_on 100 "the client still talks to $ip (h1)"

# the agent killed once the namespace is bound at the path and attached,
# before the restore: the recovery removes that one too
echo "agent before-restore kill" >"$LAB_DIR/h2/cmt/faults"
migrate_from h1 "$ct" --to h2 --mode "$mode"
is "$MIG_RC" 1 "a migration whose agent died before the restore fails (exit 1)"
check "h2 has the namespace bound at $nspath before its recovery" on h2 test -e "$nspath"
check "cmt recover on h2 (before-restore)" on h2 "$CMT" recover
check "h2's namespace is removed by the recovery (before-restore)" on h2 test ! -e "$nspath"
is "$(veths h2)" "" "no veth of the container is left on h2 (before-restore)"
is "$(on h2 ls /run/netns | grep -c '^cmt-')" 0 "no staging namespace is left on h2 (before-restore)"
talks_on 100 "the client still talks to $ip (h1) after that"

# --- 6. h1 -> h2 through an attachment program and a route hook (h2's config) ----
# (in pre-copy mode when this cmt has it)
mode6=$mode
[ "$mode" = cold ] && "$CMT" migrate --help 2>&1 | grep -q precopy && mode6=precopy
cat >"$work/attach.sh" <<EOF
#!/bin/sh
# an attachment program: what it is told goes to a log; "attach-fails" makes it fail
echo "\$1 netns=\$CMT_NETNS ct=\$CMT_CONTAINER ifs=\$CMT_CONTAINER_IFS host_ifs=\$CMT_HOST_IFS macs=\$CMT_MACS addrs=\$CMT_ADDRESSES host=\$CMT_HOST source=\$CMT_SOURCE" >>$work/hooks.log
[ -e $work/attach-fails ] && [ "\$1" = attach ] && { echo "no port for \$CMT_HOST_IFS" >&2; exit 3; }
[ -e $work/route-fails ] && [ "\$1" = route ] && { echo "no route API" >&2; exit 5; }
if [ "\$1" = attach ]; then
	for i in \$CMT_HOST_IFS; do ip link set \$i master cmt0 up || exit 1; done
fi
exit 0
EOF
cp "$work/attach.sh" "$work/route.sh"
chmod +x "$work/attach.sh" "$work/route.sh"
printf 'net_attach = %s\nnet_route_hook = %s\n' "$work/attach.sh" "$work/route.sh" >>"$LAB_DIR/h2/cmt/config"

touch "$work/attach-fails"
migrate_from h1 "$ct" --to h2 --mode "$mode6"
is "$MIG_RC" 1 "a migration whose attachment program fails, fails (exit 1)"
jtest "JSON: the error names the attachment program, the container runs on h1" \
	"'attach' in d['error'] and 'no port' in d['error'] and d['source_running'] is True"
talks_on 200 "the client keeps talking to $ip (h1) after the failed attachment"
wait_until 10 on h2 test ! -e "$nspath" && ok "h2's namespace is removed after the failed attachment" ||
	fail "h2's namespace is removed after the failed attachment" "$(on h2 ls -l /run/netns)"
if grep -q '^detach ' "$work/hooks.log"; then ok "the program was told to detach"; else fail "the program was told to detach" "$(cat "$work/hooks.log")"; fi
rm -f "$work/attach-fails" "$work/hooks.log"

touch "$work/route-fails" # after the commit: a warning, the migration stands
migrate_from h1 "$ct" --to h2 --mode "$mode6"
is "$MIG_RC" 0 "cmt migrate $ct --to h2 --mode $mode6 (attachment program) exits 0"
if grep -q "warning: on h2: the network hook .*route.sh route. failed (status 5): no route API" <<<"$MIG_ERR"; then
	ok "the failing route hook on h2 is reported on h1 as a warning"
else
	fail "the failing route hook on h2 is reported on h1 as a warning" "$MIG_ERR"
fi
jtest "JSON: ok in $mode6 mode, the namespace recreated on h2" \
	"d['result'] == 'ok' and d['mode'] == '$mode6' and d['netns_existed'] is False"
talks_on 200 "the client keeps talking to $ip after the move to h2 through the attachment program"
is "$(addr_of h2)" "$ip/24 $mac" "on h2 the container has the same address and MAC"
check "h1's namespace is gone" on h1 test ! -e "$nspath"
is "$(veths h1)" "" "no veth of the container is left on h1"
diag "hooks: $(cat "$work/hooks.log")"
check "the attachment program got the namespace, the interfaces inside and on the host, the MAC and the address" \
	grep -Eq "^attach netns=$nspath ct=$ct ifs=eth0 host_ifs=cmt[0-9a-f]{8}0 macs=$mac addrs=$ip/24 $ip6/64 host=h2 source=\$" "$work/hooks.log"
check "the route hook ran after the move, told where the container came from" \
	grep -Eq "^route netns=$nspath ct=$ct ifs=eth0 host_ifs=cmt[0-9a-f]{8}0 macs=$mac addrs=$ip/24 $ip6/64 host=h2 source=h1\$" "$work/hooks.log"

# the agents announced and cleaned up without a complaint
bad_lines=$(grep -hE "gratuitous ARP|cannot (remove|record) the network|the container cannot talk" \
	"$LAB_DIR"/h[12]/cmt/agent.log 2>/dev/null)
is "$bad_lines" "" "the agents' logs have no announcement or clean-up failure"

# --- the client's verdict ---------------------------------------------------------
kill "$client" 2>/dev/null
wait "$client" 2>/dev/null
# (nsenter goes at once; netpp collects the answers under way, then writes its last line)
stopped() { [ "$(mh_get "$status" state)" != running ]; }
wait_until 5 stopped || diag "the client did not write its final status"
diag "client: $(cat "$status")"
is "$(mh_get "$status" reset)" 0 "the client never saw a reset"
sent=$(mh_get "$status" sent) okc=$(mh_get "$status" ok)
if [ "$(mh_get "$status" bad)" = 0 ] && [ -n "$sent" ] && [ "$okc" = "$sent" ]; then
	ok "every one of $sent requests was answered once, in order (nothing lost or duplicated)"
else
	fail "every request was answered once, in order" "$(cat "$status")"
fi
is "$(mh_get "$status" state)" stopped "the client ended cleanly (state stopped)"
diag "largest gap the client saw: $(mh_get "$status" max_gap_ms) ms"

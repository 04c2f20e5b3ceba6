#!/usr/bin/env bash
# The cmt demo: three simulated hosts on this machine. A container on h1
# serves TCP on an address of its own (its own network namespace, the way a
# CNI plugin sets one up), a client on h3 sends it a numbered request every
# 5 ms over one connection and checks every answer, and `cmt migrate` moves
# the container live to h2 while the client talks. At the end the client
# reports: no reset, nothing lost or duplicated, and the largest gap it saw.
# Run by `make demo` (which installs dependencies and builds first), as root.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
LIB_NO_TAP=1
. "$here/tests/integration/lib.sh"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

require_root
require_cmt
require_cmd runc busybox python3 ip nsenter iptables-restore
make -s -C "$here/tests/workload" OUT="$here/build/workload" >/dev/null || bail "cannot build tests/workload (netpp)"
netpp=$here/build/workload/netpp

lab_start 3
work=$(mktemp -d /tmp/cmt-demo.XXXXXX)
at_exit rm -rf "$work"
at_exit 'on h1 runc delete --force web1 >/dev/null 2>&1; on h2 runc delete --force web1 >/dev/null 2>&1; true'

say "three hosts are up: h1 ($LAB_IP_h1), h2 ($LAB_IP_h2), h3 ($LAB_IP_h3), each with its own sshd, PID namespace, runc root and a bridge cmt0 on the same segment"

# The container's network: what a CNI bridge plugin would do on h1.
ip=$LAB_CT_NET.220
on h1 sh -e -c "
	ip netns add web1-net
	ip link add veth-web1 type veth peer name eth0 netns web1-net
	ip -n web1-net link set eth0 address 02:42:0a:4d:00:dc addrgenmode none
	ip -n web1-net addr add $ip/24 dev eth0
	ip -n web1-net link set lo up
	ip -n web1-net link set eth0 up
	ip link set veth-web1 master cmt0 up" || bail "cannot set up the container's network on h1"

# The workload: netpp's server, answering request N with \"N <count of
# requests this connection had>\" (a count that lives in its memory).
make_bundle "$work/web1" h1 /bin/netpp server 7777 || bail "cannot make the container's bundle"
cp "$netpp" "$work/web1/rootfs/bin/netpp"
python3 - "$work/web1/config.json" <<'EOF'
import json, sys
spec = json.load(open(sys.argv[1]))
for n in spec["linux"]["namespaces"]:
    if n["type"] == "network":
        n["path"] = "/run/netns/web1-net"
json.dump(spec, open(sys.argv[1], "w"), indent=2)
EOF
on h1 sh -c "cd '$work/web1' && exec runc run -d web1 </dev/null >/dev/null 2>&1" || bail "runc run web1 failed"
say "container web1 serves TCP on $ip:7777 on h1 (network namespace /run/netns/web1-net):"
on h1 "$CMT" ps
on h1 nsenter --net=/run/netns/web1-net ip -brief addr show eth0

# The client on h3.
status=$work/client.status
on_bg h3 sh -c 'exec "$@" >/dev/null' client "$netpp" client "$ip" 7777 --interval-ms 5 --status "$status" --timeout-ms 30000
client=$ON_BG_PID
at_exit "kill $client 2>/dev/null || true"
client_ge() { local v; v=$(mh_get "$status" ok) && [ "$v" -ge "$1" ]; }
wait_until 15 client_ge 50 || bail "the client gets no answers: $(cat "$status" 2>/dev/null)"

# The watcher: where web1 runs and what the client sees, every 250 ms.
watch_log=$work/watch.log
(
	for _ in $(seq 1 40); do
		where="(frozen/moving)"
		if on h1 runc state web1 2>/dev/null | grep -q '"status": "running"'; then
			where=h1
		elif on h2 runc state web1 2>/dev/null | grep -q '"status": "running"'; then
			where=h2
		fi
		printf '  watcher: web1 on %-16s client: answers=%-6s last gap=%s ms\n' "$where" \
			"$(mh_get "$status" ok)" "$(mh_get "$status" last_gap_ms)"
		sleep 0.25
	done
) >"$watch_log" 2>&1 &
watcher=$!
at_exit "kill $watcher 2>/dev/null || true"
wait_until 5 test -s "$watch_log" || true
wait_until 5 client_ge 300 || true

say "cmt migrate web1 --to h2   (run on h1, while the client on h3 talks to $ip)"
on h1 "$CMT" migrate web1 --to h2 --rsh "ssh -F $LAB_SSH_CONFIG" --remote-cmt "$CMT" --stats-file "$work/stats.json"
after=$(mh_get "$status" ok)
wait_until 10 client_ge $((after + 200)) || true
kill "$watcher" 2>/dev/null || true
wait "$watcher" 2>/dev/null || true

say "what the watcher saw:"
cat "$watch_log"

say "after the move:"
echo "h1:"; on h1 "$CMT" ps
echo "h2:"; on h2 "$CMT" ps
echo "h2, the container's network namespace:"
on h2 nsenter --net=/run/netns/web1-net ip -brief addr show eth0
if on h1 test -e /run/netns/web1-net; then echo "h1 still has /run/netns/web1-net (unexpected)"; else echo "h1: /run/netns/web1-net and its veth are gone"; fi

say "the client's report (on h3):"
kill "$client" 2>/dev/null || true
wait "$client" 2>/dev/null || true
stopped() { [ "$(mh_get "$status" state)" != running ]; }
wait_until 5 stopped || true # netpp collects the answers under way, then writes its last line
python3 - "$status" <<'PY'
import shlex, sys
kv = dict(w.split("=", 1) for w in shlex.split(open(sys.argv[1]).read()))
print(f"  requests sent       {kv['sent']}")
print(f"  answered, in order  {kv['ok']}")
print(f"  wrong answers       {kv['bad']}  (lost, duplicated or reordered requests would show here)")
print(f"  connection reset    {'yes' if kv['reset'] == '1' else 'no'}")
print(f"  largest gap         {float(kv['max_gap_ms']):.0f} ms  (the longest wait between two answers)")
ok = kv["reset"] == "0" and kv["bad"] == "0" and kv["ok"] == kv["sent"] and kv["state"] == "stopped"
print("  => the TCP connection survived the move, nothing lost" if ok else "  => unexpected: " + kv.get("error", ""))
sys.exit(0 if ok else 1)
PY

say "statistics (--stats-file):"
python3 - "$work/stats.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for k in ("result", "mode", "mode_reason", "netns", "downtime_ms", "dump_ms", "transfer_ms", "restore_ms", "commit_ms", "total_ms",
          "bytes_sent", "image_bytes", "rootfs_bytes"):
    v = d.get(k)
    print(f"  {k:14} {v:.0f}" if isinstance(v, float) else f"  {k:14} {v}")
print("  checks         " + ", ".join(f"{c['name']} {c['status']}" for c in d.get("checks", [])))
PY
say "tearing the lab down"

#!/usr/bin/env bash
# bench/bench.sh - migration benchmark: cmt (every mode) versus the classic pipeline, side by side.
#
# Run as root (`make bench` installs dependencies and builds first):
#
#   bash bench/bench.sh
#
# It brings up a 2-host lab (tests/integration/lib.sh, lab/lab.sh) and, for
# each link rate, memory size and dirty rate, runs BENCH_RUNS measured rounds.  A round starts a fresh
# container on h1 running memhog (tests/workload: N MiB of self-checking
# pseudo-random memory, ticking every 5 ms, no dirtying), waits until memhog
# has filled and verified its memory and ticks, then moves it to h2 with one
# method, and with the other method in a second fresh container:
#
#   cmt      `cmt migrate ID --to h2 --json` on h1.  downtime = cmt's
#            downtime_ms (frozen on h1 until running on h2); total = total_ms.
#   classic  runc checkpoint on h1 (stops it), tar | ssh of the images and of
#            the bundle to h2, cgroupsPath fixed for h2 (python3), runc
#            restore -d on h2 (bench/classic.sh).  downtime = from just before
#            the checkpoint to the restore returning; total = downtime (the
#            pipeline has nothing outside the freeze).
#   classic-keep  (optional, BENCH_METHODS) the same, but the source stays frozen
#            until the restore succeeded, as with cmt: runc pause + runc
#            checkpoint --leave-running, runc delete after the restore (total).
#            In the lab all hosts share one machine's memory: the plain classic
#            pipeline frees the source's memory before the copy, and the
#            destination then reuses those warm pages, which in this VM is much
#            cheaper than touching memory that was idle (platform notes).
#            classic-keep and cmt do not get that; on two real machines nobody
#            does.
#
# After each move memhog is told (SIGUSR1) to verify all its memory on h2; the
# round fails unless every page is intact (verify_fail=0) and it ticks on.
# The "gap" column is the longest stretch memhog itself did not run (from its
# own CLOCK_REALTIME ticks): the downtime as the workload saw it.  The method
# that runs first alternates between rounds; each container is removed after
# its round.  With BENCH_WARMUP=1 each size starts with one unmeasured round
# (this VM's memory is slow the first time it is touched; see
# /work/shared/notes/platform.md).
#
# With the defaults a run takes about 6-8 minutes on this 2-core VM.
#
# Output (bench/report.py, which can be re-run on an old file): a table of
# medians (min-max) per scenario and method, the cmt/classic ratios, the
# phases of each method, the issue's targets with their figures; every round as one JSON line in
# build/bench/cold-DATE.jsonl (BENCH_OUT overrides).  Exit status 0 when every
# measured round migrated and verified, 1 otherwise.
#
# Settings (environment):
#   BENCH_SIZES="256 1024"   memory sizes in MiB
#   BENCH_RUNS=3             measured rounds per size (each: one cmt + one classic)
#   BENCH_WARMUP=1           unmeasured rounds first, per size
#   BENCH_METHODS="cmt classic"   methods: cmt (cold), cmt-precopy, cmt-postcopy, cmt-hybrid,
#                            cmt-auto (cmt --mode X; post-copy modes get --allow-postcopy),
#                            classic, classic-keep
#   BENCH_RATES="none"       link settings to measure, in turn: none (unthrottled) or a tc
#                            rate such as 1gbit (tbf on both hosts' eth0)
#   BENCH_RATE=              the same for a single rate (older name)
#   BENCH_DIRTY="0"          how fast memhog rewrites its memory, MiB/s, each in turn
#   BENCH_PLOT=FILE.svg      also draw the medians (bench/report.py --svg)
#   BENCH_BURST=256k         tbf burst with BENCH_RATE
#   BENCH_MEMHOG_ARGS=       extra memhog arguments (e.g. --thp, --dirty-mib-s 50)
#   BENCH_QUIET_WAIT=0       before each move, wait up to this many seconds until
#                            the machine is quiet: less than BENCH_QUIET_BUSY=25 (%
#                            of one core) busy over half a second while the bench
#                            itself is idle.  On a shared machine other users'
#                            load makes the figures noisy: each JSON line records
#                            how busy the machine was just before and during its move
#   BENCH_OUT=FILE           where the JSON lines go
#   CMT=PATH                 the cmt under test (default build/cmt)
#   CRIU=PATH                the CRIU for the classic pipeline's runc (default:
#                            .deps/criu/usr/sbin/criu, else criu on PATH)
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIB_NO_TAP=1 # not a test: no TAP plan at exit
# shellcheck source=tests/integration/lib.sh
. "$here/tests/integration/lib.sh"

BENCH_SIZES=${BENCH_SIZES:-256 1024}
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_WARMUP=${BENCH_WARMUP:-1}
BENCH_METHODS=${BENCH_METHODS:-cmt classic}
BENCH_RATE=${BENCH_RATE:-}
BENCH_RATES=${BENCH_RATES:-${BENCH_RATE:-none}}
BENCH_DIRTY=${BENCH_DIRTY:-0}
BENCH_PLOT=${BENCH_PLOT:-}
BENCH_BURST=${BENCH_BURST:-256k}
BENCH_MEMHOG_ARGS=${BENCH_MEMHOG_ARGS:-}
BENCH_QUIET_WAIT=${BENCH_QUIET_WAIT:-0}
BENCH_QUIET_BUSY=${BENCH_QUIET_BUSY:-25}
PY=/usr/bin/python3 # the system's, whatever PATH says
START_TIMEOUT_S=120 # memhog filling its memory (first-touch costs)
VERIFY_TIMEOUT_S=60

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

require_root
require_cmt
require_cmd runc busybox ssh tc tar "$PY"
if ! [[ $BENCH_RUNS =~ ^[1-9][0-9]*$ ]]; then die "BENCH_RUNS must be a number >= 1"; fi
[[ $BENCH_WARMUP =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a number"
for s in $BENCH_SIZES; do [[ $s =~ ^[1-9][0-9]*$ ]] || die "bad size '$s' in BENCH_SIZES (MiB)"; done
[[ $BENCH_QUIET_WAIT =~ ^[0-9]+$ ]] || die "BENCH_QUIET_WAIT must be a number of seconds"
[[ $BENCH_QUIET_BUSY =~ ^[0-9]+$ ]] || die "BENCH_QUIET_BUSY must be a percentage of one core"
for m in $BENCH_METHODS; do
	[[ $m =~ ^(cmt|cmt-(cold|precopy|postcopy|hybrid|auto)|classic|classic-keep)$ ]] || die "bad method '$m' in BENCH_METHODS"
done
for d in $BENCH_DIRTY; do [[ $d =~ ^[0-9]+$ ]] || die "bad dirty rate '$d' in BENCH_DIRTY (MiB/s)"; done
for r in $BENCH_RATES; do [[ $r == none || $r =~ ^[0-9]+[kmg]?bit$ ]] || die "bad rate '$r' in BENCH_RATES (none, 1gbit, 500mbit...)"; done

if [ -z "${CRIU:-}" ]; then
	if [ -x "$REPO/.deps/criu/usr/sbin/criu" ]; then CRIU=$REPO/.deps/criu/usr/sbin/criu
	else CRIU=$(command -v criu) || die "no CRIU: run make deps, or set CRIU"; fi
fi

make -s -C "$REPO/tests/workload" OUT="$REPO/build/workload" >&2 || die "cannot build memhog"
MEMHOG=$REPO/build/workload/memhog

stamp=$(date +%Y%m%d-%H%M%S)
BENCH_OUT=${BENCH_OUT:-$REPO/build/bench/cold-$stamp.jsonl}
mkdir -p "$(dirname "$BENCH_OUT")"
: >"$BENCH_OUT"

lab_start 2
work=$(mktemp -d /tmp/cmt-bench.XXXXXX)
at_exit rm -rf "$work"
# Post-copy modes need CRIU to grow its page pipes: without CAP_SYS_RESOURCE
# (this machine) that takes fs.pipe-max-size >= 4 MiB (one setting for every
# lab host, they share the kernel); raised for the run, restored at the end.
if [[ " $BENCH_METHODS " =~ \ cmt-(postcopy|hybrid)\  ]]; then
	old_pipe=$(sysctl -n fs.pipe-max-size) || die "cannot read fs.pipe-max-size"
	if [ "$old_pipe" -lt 4194304 ]; then
		at_exit "sysctl -q -w fs.pipe-max-size=$old_pipe"
		sysctl -q -w fs.pipe-max-size=4194304 || die "cannot raise fs.pipe-max-size for the post-copy methods"
	fi
fi
cg_h2=$(sed -n 's/^cgroup_parent *= *//p' "$LAB_DIR/h2/cmt/config")
[ -n "$cg_h2" ] || die "no cgroup_parent in $LAB_DIR/h2/cmt/config"

# set_rate RATE|none: tc tbf on both hosts' eth0, or no limit
set_rate() {
	local h
	for h in h1 h2; do
		on "$h" tc qdisc del dev eth0 root >/dev/null 2>&1 || true
		if [ "$1" != none ]; then
			on "$h" tc qdisc replace dev eth0 root tbf rate "$1" burst "$BENCH_BURST" latency 50ms ||
				die "cannot apply tc tbf rate $1 on $h"
		fi
	done
	if [ "$1" = none ]; then say "link unthrottled"; else say "link limited to $1 (tbf burst $BENCH_BURST) on h1 and h2"; fi
}

# --- helpers -------------------------------------------------------------------

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }

# Remove everything of container ID on both hosts.
cleanup_ct() {
	local id=$1 h
	for h in h1 h2; do
		on "$h" runc delete --force "$id" >/dev/null 2>&1 || true
	done
	rm -rf "${work:?}/$id" "$LAB_DIR/h2/cmt/bundles/$id" "$LAB_DIR"/h[12]/classic/"$id"*
	rm -rf "$LAB_DIR/h2/classic/bundles/$id"
	# cmt's per-migration work directories: gone after a success, kept after a failure
	local -a left
	mapfile -t left < <(find "$LAB_DIR"/h[12]/cmt/migrations -mindepth 1 -maxdepth 1 -name "$id-*" 2>/dev/null)
	if [ ${#left[@]} -gt 0 ]; then
		say "note: cmt left $(du -sch "${left[@]}" | tail -n 1 | cut -f1) in: ${left[*]}"
		rm -rf "${left[@]}"
	fi
}

# start_ct ID MIB DIRTY: a fresh memhog container on h1 (rewriting DIRTY MiB/s),
# filled, verified and ticking
start_ct() {
	local id=$1 mib=$2 dirty=$3 b=$work/$1 state
	# shellcheck disable=SC2086
	make_bundle "$b" h1 /bin/memhog --mib "$mib" --dirty-mib-s "$dirty" --verify-ms 0 --state /tmp/state \
		$BENCH_MEMHOG_ARGS >/dev/null || return 1
	cp "$MEMHOG" "$b/rootfs/bin/memhog"
	on h1 sh -c "cd '$b' && exec runc run -d '$id' </dev/null >/dev/null 2>&1" || return 1
	state=$b/rootfs/tmp/state
	wait_until "$START_TIMEOUT_S" test -s "$state" || { echo "memhog did not fill its memory in ${START_TIMEOUT_S}s"; return 1; }
	on h1 runc kill "$id" USR1 || return 1
	wait_until "$VERIFY_TIMEOUT_S" mh_ge "$state" usr1 1 || { echo "memhog did not verify on h1"; return 1; }
	wait_until 5 mh_ge "$state" ticks 1 || { echo "memhog does not tick"; return 1; }
	local bad
	bad=$(mh_get "$state" verify_fail)
	[ "$bad" = 0 ] || { echo "memhog's memory is bad before any migration: $(cat "$state")"; return 1; }
}

# verify_on_h2 ID STATE_FILE: have memhog verify on h2; prints its status line
verify_on_h2() {
	local id=$1 state=$2
	wait_until 10 test -s "$state" || { echo "no state file $state on h2"; return 1; }
	on h2 runc kill "$id" USR1 || { echo "cannot signal $id on h2"; return 1; }
	wait_until "$VERIFY_TIMEOUT_S" mh_ge "$state" usr1 2 ||
		{ echo "memhog did not verify on h2 within ${VERIFY_TIMEOUT_S}s: $(cat "$state" 2>&1)"; return 1; }
	cat "$state"
}

# round METHOD MIB DIRTY RUN WARMUP: one measured move; appends a JSON line to BENCH_OUT
round() {
	local method=$1 mib=$2 dirty=$3 run=$4 warm=$5
	local id=mh$mib-d$dirty-$method-$run err="" out="" rc t0 t1 pre="" post="" state_h2 log=$work/$method-$mib-$dirty-$run.log
	[ "$warm" = 1 ] && id=mh$mib-d$dirty-$method-w$run
	cleanup_ct "$id"
	if ! err=$(start_ct "$id" "$mib" "$dirty" 2>&1); then
		say "$id: could not start: $err"
		emit "$method" "$mib" "$run" "$warm" start "$err" "" "" "" 0 0 "" "$dirty"
		cleanup_ct "$id"
		return 1
	fi
	pre=$(cat "$work/$id/rootfs/tmp/state")

	local load0 load1 cpu0 cpu1
	[ "$BENCH_QUIET_WAIT" = 0 ] || wait_until "$BENCH_QUIET_WAIT" machine_quiet ||
		say "$id: the machine is still busy after ${BENCH_QUIET_WAIT}s ($(busy_cores) cores); measuring anyway"
	load0=$(busy_cores)
	cpu0=$(cpu_jiffies)
	t0=$(now_ms)
	if [[ $method == cmt* ]]; then
		local mode=cold extra=()
		[ "$method" = cmt ] || mode=${method#cmt-}
		[[ $mode == postcopy || $mode == hybrid ]] && extra=(--allow-postcopy)
		out=$(on h1 "$CMT" migrate "$id" --to h2 --mode "$mode" "${extra[@]}" --rsh "ssh -F $LAB_SSH_CONFIG" \
			--remote-cmt "$CMT" --json 2>"$log")
		rc=$?
		state_h2=$LAB_DIR/h2/cmt/bundles/$id/rootfs/tmp/state
	else
		mkdir -p "$LAB_DIR/h1/classic" "$LAB_DIR/h2/classic/bundles"
		out=$(on h1 bash "$REPO/bench/classic.sh" source "$id" h2 "$LAB_SSH_CONFIG" "$CRIU" \
			"$LAB_DIR/h1/classic/$id.img" "$LAB_DIR/h2/classic/$id.img" "$LAB_DIR/h2/classic/bundles" "$cg_h2" \
			"$([ "$method" = classic-keep ] && echo 1 || echo 0)" 2>"$log")
		rc=$?
		state_h2=$LAB_DIR/h2/classic/bundles/$id/rootfs/tmp/state
	fi
	t1=$(now_ms)
	cpu1=$(cpu_jiffies)
	load1=$(busy_between "$cpu0" "$cpu1")
	out=$(tail -n 1 <<<"$out")
	local step=""
	if [ $rc -ne 0 ]; then
		step=migrate
		err="exit status $rc: $(tail -n 20 "$log")"
	elif on h1 runc state "$id" >/dev/null 2>&1; then
		step=source-left
		err="the container is still on h1 after the move: $(on h1 runc state "$id" 2>&1 | tr -s ' \n' ' ')"
	elif ! post=$(verify_on_h2 "$id" "$state_h2" 2>&1); then
		step=verify
		err=$post
		post=""
	fi
	emit "$method" "$mib" "$run" "$warm" "$step" "$err" "$out" "$pre" "$post" "$t0" "$t1" "$load0 $load1" "$dirty"
	local summary
	summary=$("$PY" -c 'import json,sys; r=json.loads(sys.argv[1]); f=lambda v: "-" if v is None else "%.0f" % v; print("%s: %s, downtime %s ms, total %s ms, gap %s ms, verify_fail %s, other load %s cores" % (r["id"], r["result"], f(r.get("downtime_ms")), f(r.get("total_ms")), f(r.get("maxgap_ms")), r.get("verify_fail"), r.get("load", {}).get("busy_cores_before")))' "$(tail -n 1 "$BENCH_OUT")")
	say "$summary${step:+ ($step failed)}"
	[ -n "$step" ] && [ -s "$log" ] && sed 's/^/bench:   | /' "$log" | tail -n 15 >&2
	cleanup_ct "$id"
	[ -z "$step" ]
}

# How busy the machine is.  Other users of a shared machine make the figures
# noisy: the JSON lines keep this next to each move.
# cpu_jiffies: "BUSY TOTAL" jiffies of all CPUs since boot
cpu_jiffies() {
	local _cpu u n s i w q sq st
	read -r _cpu u n s i w q sq st _ </proc/stat
	echo "$((u + n + s + q + sq + st)) $((u + n + s + i + w + q + sq + st))"
}

# busy_between "BUSY0 TOTAL0" "BUSY1 TOTAL1": cores busy on average in between
busy_between() {
	local b0 t0 b1 t1
	read -r b0 t0 <<<"$1"
	read -r b1 t1 <<<"$2"
	awk -v b=$((b1 - b0)) -v t=$((t1 - t0)) -v n="$(nproc)" 'BEGIN { printf "%.2f\n", (t > 0 ? b / t * n : 0) }'
}

# busy_cores: cores busy over the next half second (the bench itself idle:
# this is other users' load)
busy_cores() {
	local a
	a=$(cpu_jiffies)
	sleep 0.5
	busy_between "$a" "$(cpu_jiffies)"
}

machine_quiet() {
	awk -v b="$(busy_cores)" -v max="$BENCH_QUIET_BUSY" 'BEGIN { exit !(b * 100 < max) }'
}

# emit METHOD MIB RUN WARMUP FAILED_STEP ERROR METHOD_JSON PRE_STATE POST_STATE T0 T1 "LOADS" DIRTY
emit() {
	"$PY" - "$@" "$cur_rate" "$BENCH_MEMHOG_ARGS" >>"$BENCH_OUT" <<-'EOF'
		import json, sys
		(method, mib, run, warm, step, err, out, pre, post, t0, t1, loads, dirty, rate, mhargs) = sys.argv[1:16]
		def kv(line):
		    d = {}
		    for f in line.split():
		        k, _, v = f.partition("=")
		        try:
		            d[k] = float(v) if "." in v else int(v)
		        except ValueError:
		            d[k] = v
		    return d
		try:
		    m = json.loads(out) if out else {}
		except ValueError:
		    m = {"unparsed_output": out}
		pre, post = kv(pre), kv(post)
		r = {"id": "mh%s-d%s-%s-%s%s" % (mib, dirty, method, "w" if warm == "1" else "", run), "method": method,
		     "size_mib": int(mib), "dirty_mib_s": int(dirty), "run": int(run), "warmup": warm == "1",
		     "rate": None if rate in ("", "none") else rate, "memhog_args": mhargs or None}
		ok = not step and m.get("result") == "ok" and post.get("verify_fail") == 0
		r["result"] = "ok" if ok else "failed"
		if not ok:
		    r["failed_step"] = step or ("migrate" if m.get("result") != "ok" else "verify")
		    r["error"] = " | ".join(x for x in (m.get("failed_step") and "step " + m["failed_step"], m.get("error"),
		                                        err.strip()[-3000:]) if x) or "memory verification failed on h2: %s" % post
		r["downtime_ms"] = m.get("downtime_ms")
		r["total_ms"] = m.get("total_ms", m.get("downtime_ms"))
		r["wall_ms"] = int(t1) - int(t0) if int(t0) and int(t1) else None
		r["maxgap_ms"] = post.get("maxgap_ms")
		r["maxgap_before_ms"] = pre.get("maxgap_ms")
		r["verify_fail"] = post.get("verify_fail")
		r["verified_ok"] = post.get("verified_ok")
		r["ticks_before"], r["ticks_after"] = pre.get("ticks"), post.get("ticks")
		if post.get("maxgap_end_ms") and int(t0):
		    # the biggest gap should have ended during this move (or just after)
		    r["gap_in_move"] = int(t0) <= post["maxgap_end_ms"] <= int(t1) + 2000
		if method.startswith("cmt"):
		    r["mode"] = m.get("mode")
		    # criu_*: CRIU's own part of the dump and of the restore (its logs)
		    r["phases"] = {k: m.get(k) for k in ("dump_ms", "criu_dump_ms", "transfer_ms", "restore_ms",
		                                         "criu_restore_ms", "commit_ms")}
		    r["bytes"] = {k: m.get(k) for k in ("bytes_sent", "image_bytes", "rootfs_bytes")}
		    r["rounds"] = m.get("rounds")
		    r["stop_reason"] = m.get("stop_reason")
		else:
		    r["phases"] = {k: m.get(k) for k in ("checkpoint_ms", "copy_images_ms", "copy_bundle_ms", "restore_ms")}
		l = (loads.split() + ["0"] * 2)[:2]
		# cores busy: just before the move (others' load), and during it (the move + others)
		r["load"] = {"busy_cores_before": float(l[0]), "busy_cores_during": float(l[1])}
		r["raw"] = m
		print(json.dumps(r))
	EOF
}

# --- the rounds ------------------------------------------------------------------

say "cmt $("$CMT" version 2>/dev/null | head -n 1); CRIU $("$CRIU" --version | sed -n 's/^Version: *//p') at $CRIU"
say "sizes: $BENCH_SIZES MiB; $BENCH_RUNS measured round(s) + $BENCH_WARMUP warm-up per size; methods: $BENCH_METHODS"
say "raw results: $BENCH_OUT"
failed=0
t_bench=$(now_ms)
for cur_rate in $BENCH_RATES; do
	set_rate "$cur_rate"
	for mib in $BENCH_SIZES; do
		for dirty in $BENCH_DIRTY; do
			total_rounds=$((BENCH_WARMUP + BENCH_RUNS))
			for ((i = 1; i <= total_rounds; i++)); do
				warm=0 run=$((i - BENCH_WARMUP))
				if [ "$i" -le "$BENCH_WARMUP" ]; then warm=1 run=$i; fi
				# alternate which method goes first
				methods=$BENCH_METHODS
				if [ $((i % 2)) = 0 ]; then methods=$(echo "$methods" | tr ' ' '\n' | tac | tr '\n' ' '); fi
				for method in $methods; do
					round "$method" "$mib" "$dirty" "$run" "$warm" || { [ "$warm" = 1 ] || failed=$((failed + 1)); }
				done
			done
		done
	done
done
set_rate none
say "all rounds done in $((($(now_ms) - t_bench) / 1000)) s"

# --- the report --------------------------------------------------------------------

"$PY" "$REPO/bench/report.py" "$BENCH_OUT" ${BENCH_PLOT:+--svg "$BENCH_PLOT"}
# (lib.sh's exit handler reports a non-zero status as a failed test: say why)
[ "$failed" = 0 ] || { fail "$failed measured round(s) failed (see above)"; exit 1; }

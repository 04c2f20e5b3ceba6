#!/usr/bin/env bash
# t51-net-tcp-hybrid.sh - t50 (network identity, a client on h3 talking to the
# container on one TCP connection every 5 ms) with every move in hybrid mode:
# pre-copy rounds, then the lazy restore, the pages following through the
# relay by content. The client must see no reset, nothing lost, duplicated
# or reordered, through every step (failures and recoveries included).
# Hybrid needs fs.pipe-max-size >= 4 MiB without CAP_SYS_RESOURCE: raised
# for the run, restored on exit (the setting is machine-wide).
set -u
old=$(sysctl -n fs.pipe-max-size) || { echo "Bail out! cannot read fs.pipe-max-size"; exit 1; }
trap 'sysctl -q -w fs.pipe-max-size="$old"' EXIT
sysctl -q -w fs.pipe-max-size=4194304 || { echo "Bail out! cannot raise fs.pipe-max-size"; exit 1; }
CMT_T50_MODE=hybrid bash "$(dirname "$0")/t50-net-tcp.sh"

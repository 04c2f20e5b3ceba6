#!/usr/bin/env bash
# Install everything cmt needs to build, test and run on a Debian machine, as root.
# Safe to run again: each step checks first and does nothing when already done.
#
#   scripts/deps.sh            build + runtime + test dependencies, and CRIU >= 4.2
#   CMT_CRIU_PREFIX=DIR        where to provision CRIU when the system has none usable
#                              (default: <repo>/.deps/criu)
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
prefix=${CMT_CRIU_PREFIX:-$here/.deps/criu}
want_criu_major=4
want_criu_minor=2

say() { printf 'deps: %s\n' "$*" >&2; }
die() { printf 'deps: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (it installs Debian packages)"
command -v apt-get >/dev/null || die "this installer needs a Debian system with apt-get"

pkgs=(
	build-essential pkg-config
	libjansson-dev libarchive-dev libxxhash-dev libzstd-dev libprotobuf-c-dev
	runc iptables nftables openssh-client openssh-server
	iproute2 util-linux bsdutils procps busybox-static patchelf
	python3 clang libclang-rt-14-dev
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	say "installing: ${missing[*]}"
	stamp=/var/lib/apt/periodic/cmt-apt-updated
	if [ ! -e "$stamp" ] || [ -n "$(find "$stamp" -mmin +720 2>/dev/null)" ]; then
		apt-get update -qq
		mkdir -p "$(dirname "$stamp")" && touch "$stamp"
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# sshd is started per lab host by cmt's lab; the system one is not needed.
mkdir -p /run/sshd

# --- CRIU -------------------------------------------------------------------
# A CRIU is usable when it is >= 4.2 and `criu check` passes on this kernel.
criu_ok() {
	local bin=$1 v
	[ -x "$bin" ] || return 1
	v=$("$bin" --version 2>/dev/null | sed -n 's/^Version: *//p')
	[ -n "$v" ] || return 1
	local major=${v%%.*} rest=${v#*.}
	local minor=${rest%%.*}
	if [ "$major" -lt $want_criu_major ] || { [ "$major" -eq $want_criu_major ] && [ "$minor" -lt $want_criu_minor ]; }; then
		return 1
	fi
	"$bin" check >/dev/null 2>&1
}

if [ -x "$prefix/usr/sbin/criu" ] && criu_ok "$prefix/usr/sbin/criu" && [ -f "$prefix/usr/include/criu/criu.h" ]; then
	say "CRIU $("$prefix/usr/sbin/criu" --version | sed -n 's/^Version: *//p') ready in $prefix"
	exit 0
fi

# Provision Debian testing's CRIU into a private prefix, without touching the
# system's apt sources or upgrading any system package: a private sources list
# and state directory, `apt-get download`, then `dpkg -x`.
say "provisioning CRIU >= $want_criu_major.$want_criu_minor into $prefix"
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
	[ -f "$f" ] || continue
	u=$(awk '/^URIs:/{print $2; exit}' "$f")
	if [ -n "$u" ] && ! grep -q security "<<<$u" 2>/dev/null && [[ "$u" != *security* ]]; then mirror=$u; break; fi
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
	mirror=$(awk '$1=="deb" && $2 !~ /security/ && $2 ~ /debian/ {print $2; exit}' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || die "cannot find a Debian mirror in the apt sources to fetch CRIU from"

work=$(mktemp -d /tmp/cmt-criu-provision.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/state/lists/partial" "$work/cache/archives/partial" "$work/etc/preferences.d" "$work/debs"
suite=${CMT_CRIU_SUITE:-forky}
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" >"$work/etc/sources.list"
aptopts=(
	-o "Dir::Etc::sourcelist=$work/etc/sources.list"
	-o "Dir::Etc::sourceparts=-"
	-o "Dir::Etc::preferencesparts=$work/etc/preferences.d"
	-o "Dir::State=$work/state"
	-o "Dir::State::status=$work/state/status"
	-o "Dir::Cache=$work/cache"
	-o "APT::Get::List-Cleanup=0"
	-o "Debug::NoLocking=1"
	-o "APT::Sandbox::User=root"
)
touch "$work/state/status"
apt-get "${aptopts[@]}" update -qq || die "apt-get update of the private '$suite' list failed (is the mirror reachable?)"
# criu, libcriu and the closure of their run-time dependencies as that suite has them:
# the criu binary runs on that suite's libc through its own loader (patchelf below).
dl=$(apt-cache "${aptopts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts \
	--no-breaks --no-replaces --no-enhances criu libcriu-dev 2>/dev/null | grep -v '^ ' | grep -v '<' | sort -u)
[ -n "$dl" ] || die "cannot resolve criu's dependencies in $suite"
# shellcheck disable=SC2086
( cd "$work/debs" && apt-get "${aptopts[@]}" download -qq $dl ) || die "downloading criu from $suite failed"
ls "$work"/debs/criu_*.deb >/dev/null 2>&1 || die "could not download criu from $suite"
rm -rf "$prefix.new"
mkdir -p "$prefix.new"
for d in "$work"/debs/*.deb; do dpkg -x "$d" "$prefix.new"; done
lib="$prefix/usr/lib/x86_64-linux-gnu"
patchelf --set-interpreter "$lib/ld-linux-x86-64.so.2" --force-rpath \
	--set-rpath "$lib:$prefix/lib/x86_64-linux-gnu" "$prefix.new/usr/sbin/criu"
rm -rf "$prefix"
mv "$prefix.new" "$prefix"
criu_ok "$prefix/usr/sbin/criu" || { "$prefix/usr/sbin/criu" check || true; die "provisioned CRIU in $prefix does not pass 'criu check'"; }
say "CRIU $("$prefix/usr/sbin/criu" --version | sed -n 's/^Version: *//p') ready in $prefix"

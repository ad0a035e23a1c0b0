#!/usr/bin/env bash
# Installs the Debian packages that `make test` and `make run` need when they
# are missing: redis-server and clickhouse-server (real servers for the quota
# and usage tests) with their clients, and Python's websocket-client (a
# client no one here wrote, for the protocol test). Run as root, or with sudo.
set -euo pipefail

log() { echo "deps: $*" >&2; }
die() { log "$*"; exit 1; }

POLICY_RC=/usr/sbin/policy-rc.d
MADE_POLICY_RC=
SUDO=()
remove_policy() {
	if [ -n "$MADE_POLICY_RC" ]; then
		"${SUDO[@]}" rm -f "$POLICY_RC"
		MADE_POLICY_RC=
	fi
}

pkgs=()
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || pkgs+=(redis-server redis-tools)
command -v clickhouse-server >/dev/null || pkgs+=(clickhouse-server)
command -v clickhouse-client >/dev/null || pkgs+=(clickhouse-client)
# The race detector (make test runs the hot path under it) needs cgo.
command -v gcc >/dev/null || pkgs+=(gcc libc6-dev)
# Debian's python3 (not a pyenv or venv one earlier on PATH) runs the test.
/usr/bin/python3 -c 'import websocket' 2>/dev/null || pkgs+=(python3-websocket)
[ ${#pkgs[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || die "missing ${pkgs[*]}: install them (apt-get install ${pkgs[*]}) or run as root"
	SUDO=(sudo)
fi
log "installing ${pkgs[*]}"
started=$SECONDS

# A policy-rc.d that denies every start keeps the packages from starting their
# system services, which the tests never use. Only one made here is removed,
# also when the install is interrupted.
if [ ! -e "$POLICY_RC" ]; then
	trap remove_policy EXIT
	printf '#!/bin/sh\n# written by databridge hack/deps.sh while it installs packages\nexit 101\n' |
		"${SUDO[@]}" tee "$POLICY_RC" >/dev/null
	"${SUDO[@]}" chmod 755 "$POLICY_RC"
	MADE_POLICY_RC=1
fi

apt=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600)
# The package lists are refreshed only when one of the packages is unknown or
# the install fails: a stale list is the usual reason for either.
need_update=
for p in "${pkgs[@]}"; do
	apt-cache show "$p" >/dev/null 2>&1 || need_update=1
done
if [ -n "$need_update" ] || ! "${apt[@]}" install "${pkgs[@]}" >&2; then
	"${apt[@]}" update >&2 || die "apt-get update failed (see above)"
	"${apt[@]}" install "${pkgs[@]}" >&2 || die "apt-get install ${pkgs[*]} failed (see above)"
fi
remove_policy
log "installed ${pkgs[*]} in $((SECONDS - started))s"

#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kubectl) from Go modules
# once, caches it outside the clone keyed by Kubernetes version, and prints the
# directory to use as KUBEBUILDER_ASSETS. Nothing is downloaded but Go modules.
set -euo pipefail

KUBE_VERSION=v1.37.2
root=$(cd "$(dirname "$0")/.." && pwd)
# DATABRIDGE_ENVTEST_MODULE builds from another module with the same cmd/ layout (the script's own test uses a tiny one).
module="${DATABRIDGE_ENVTEST_MODULE:-$root/hack/tools/controlplane}"
cache="${DATABRIDGE_CACHE:-$HOME/.cache/databridge}/envtest/$KUBE_VERSION"

have() { [ -x "$cache/etcd" ] && [ -x "$cache/kube-apiserver" ] && [ -x "$cache/kubectl" ]; }

if ! have; then
	mkdir -p "$cache"
	# One build at a time per cache: a second `make test` on the machine waits
	# here, then finds the binaries the first one built.
	exec 9>"$cache/.build.lock"
	flock 9
fi
if ! have; then
	minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
	ldflags="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		ldflags+=" -X $pkg.gitTreeState=clean"
	done
	echo "building the test control plane $KUBE_VERSION into $cache (first time only: about 10 minutes on 2 cores)" >&2
	for bin in etcd kube-apiserver kubectl; do
		[ -x "$cache/$bin" ] && continue
		# A unique name, renamed into place only when whole: an interrupted
		# build never leaves a binary that looks finished.
		tmp=$(mktemp "$cache/.$bin.XXXXXX")
		if ! (cd "$module" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp" "./cmd/$bin"); then
			rm -f "$tmp"
			echo "building $bin failed (see above)" >&2
			exit 1
		fi
		chmod 755 "$tmp"
		mv -f "$tmp" "$cache/$bin"
	done
fi
exec 9>&-
echo "$cache"

#!/usr/bin/env bash
# Builds the test control plane (etcd, kube-apiserver, kubectl) from Go modules
# once, caches it outside the clone keyed by Kubernetes version, and prints the
# directory to use as KUBEBUILDER_ASSETS. Nothing is downloaded but Go modules.
set -euo pipefail

KUBE_VERSION=v1.37.2
root=$(cd "$(dirname "$0")/.." && pwd)
module="$root/hack/tools/controlplane"
cache="${DATABRIDGE_CACHE:-$HOME/.cache/databridge}/envtest/$KUBE_VERSION"

have() { [ -x "$cache/etcd" ] && [ -x "$cache/kube-apiserver" ] && [ -x "$cache/kubectl" ]; }

if ! have; then
	mkdir -p "$cache"
	minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
	ldflags="-s -w"
	for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
		ldflags+=" -X $pkg.gitTreeState=clean"
	done
	echo "building the test control plane $KUBE_VERSION into $cache (first time only: about 10 minutes on 2 cores)" >&2
	for bin in etcd kube-apiserver kubectl; do
		[ -x "$cache/$bin" ] && continue
		(cd "$module" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$cache/$bin.tmp" "./cmd/$bin")
		mv "$cache/$bin.tmp" "$cache/$bin"
	done
fi
echo "$cache"

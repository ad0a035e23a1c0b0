//go:build tools

// Package codegen pins the code generators that `make generate manifests` runs.
package codegen

import _ "sigs.k8s.io/controller-tools/cmd/controller-gen"

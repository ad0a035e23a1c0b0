# databridge: the two commands a newcomer needs are `make run` and `make test`.
# Both install what a fresh Debian machine lacks (run as root, or with sudo).

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CACHE ?= $(HOME)/.cache/databridge
BIN := $(CACHE)/bin
CONTROLLER_TOOLS_VERSION := v0.23.0
CONTROLLER_GEN := $(BIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/databridge-io/databridge/internal/version.Version=$(VERSION)
# Where the throwaway Redis and ClickHouse of `make test` live while it runs.
TEST_SERVERS_DIR ?= $(CURDIR)/.testservers
GO_TEST_FLAGS ?= -count=1

##@ General

.PHONY: help
help: ## Show the targets.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-14s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code for the API types.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs and RBAC into config/.
	$(CONTROLLER_GEN) crd:allowDangerousTypes=true rbac:roleName=databridge-operator paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@rm -rf charts/databridge/crds && mkdir -p charts/databridge/crds && cp config/crd/bases/*.yaml charts/databridge/crds/

.PHONY: verify
verify: generate manifests ## Fail when generated code or manifests are stale, or code is not gofmt'ed / vet clean.
	@stale=$$(git status --porcelain -- api config charts | grep -v '^??' || true); \
	untracked=$$(git status --porcelain --untracked-files=all -- api/v1alpha1/zz_generated.deepcopy.go config/crd config/rbac charts/databridge/crds | grep '^??' || true); \
	if [ -n "$$stale$$untracked" ]; then \
		echo "generated files are stale or uncommitted; run 'make generate manifests' and commit:"; \
		echo "$$stale$$untracked"; git --no-pager diff --stat -- api config charts; exit 1; fi
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	go vet ./...

.PHONY: run
run: build ## Run every sample tier in one process on embedded real ticks (standalone mode).
	bin/databridge standalone --config config/samples

.PHONY: build
build: ## Build bin/databridge.
	go build -ldflags "$(LDFLAGS)" -o bin/databridge .

.PHONY: envtest
envtest: ## Build (once) the test control plane and print its path (KUBEBUILDER_ASSETS).
	@hack/envtest.sh

.PHONY: deps
deps: ## Install the Debian packages tests need (redis-server, clickhouse-server).
	@hack/deps.sh

##@ Test

.PHONY: test
test: deps verify ## Run every test against a real API server, Redis and ClickHouse.
	@assets=$$(hack/envtest.sh); \
	hack/testservers.sh start "$(TEST_SERVERS_DIR)" >/dev/null; \
	trap 'hack/testservers.sh stop "$(TEST_SERVERS_DIR)"' EXIT; \
	. "$(TEST_SERVERS_DIR)/env"; \
	KUBEBUILDER_ASSETS="$$assets" go test $(GO_TEST_FLAGS) ./...; \
	echo "race detector: the hot path's concurrent writers and the server"; \
	go test -race $(GO_TEST_FLAGS) ./dataplane/stream/ ./dataplane/server/

$(CONTROLLER_GEN):
	@mkdir -p $(BIN)
	cd hack/tools/codegen && go build -o $(CONTROLLER_GEN) sigs.k8s.io/controller-tools/cmd/controller-gen

# orbit-controller — every target fans out over the modules of go.work.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

SERVICES := userspace-chart-manager pod-modifier podsettings-watcher poddefaults-watcher image-updater image-replicator
MODULES  := pkg $(addprefix services/,$(SERVICES)) e2e
KUBE_BIN := $(CURDIR)/.cache/kube
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
CONTROLLER_GEN := go run sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0
STATICCHECK    := go run honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME ?= 10s
BENCHTIME ?= 1x
export ORBIT_KUBE_BINARIES := $(KUBE_BIN)

.PHONY: demo-keep all build test test-unit fuzz bench lint vet verify generate kube-binaries check-versions demo clean help

all: build

help: ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

kube-binaries: ## build etcd, kube-apiserver and kube-controller-manager into .cache/kube (once)
	@bash tools/kube/build.sh $(KUBE_BIN)

build: ## build the six binaries into bin/
	@mkdir -p bin
	@for s in $(SERVICES); do \
	  echo "build $$s"; \
	  (cd services/$$s && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(CURDIR)/bin/$$s .); \
	done

check-versions: ## fail when two modules disagree on a k8s.io/* version
	@bash hack/check-versions.sh $(MODULES)

test: kube-binaries check-versions ## the whole test suite against the real control plane, then short fuzz runs
	@bash hack/reap.sh $(KUBE_BIN)
	@failed=""; for m in $(MODULES); do echo "=== go test $$m"; (cd $$m && go test -count=1 -timeout 20m ./...) || failed="$$failed $$m"; done; \
	if [ -n "$$failed" ]; then echo "FAILED modules:$$failed"; exit 1; fi
	@$(MAKE) --no-print-directory fuzz
	@$(MAKE) --no-print-directory demo

fuzz: ## run every fuzz target for FUZZTIME (bounded, for CI)
	@bash hack/fuzz.sh $(FUZZTIME) $(MODULES)

bench: kube-binaries ## benchmarks of every module (figures go to docs/benchmarks.md)
	@failed=""; for m in $(MODULES); do echo "=== go test -bench $$m"; (cd $$m && go test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -timeout 30m ./...) || failed="$$failed $$m"; done; \
	if [ -n "$$failed" ]; then echo "FAILED benchmarks in:$$failed"; exit 1; fi

vet: ## go vet every module
	@for m in $(MODULES); do (cd $$m && go vet ./...); done

lint: vet ## go vet and staticcheck
	@for m in $(MODULES); do (cd $$m && $(STATICCHECK) ./...); done

generate: ## CRDs (into the chart) and deepcopy from the Go types
	@cd pkg && $(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./apis/... \
	  crd:crdVersions=v1 output:crd:artifacts:config=$(CURDIR)/charts/orbit-controller/crds

verify: ## generated CRDs and deepcopy are up to date
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	cp -r charts/orbit-controller/crds $$tmp/crds; cp pkg/apis/orbit/v1/zz_generated.deepcopy.go $$tmp/; \
	$(MAKE) --no-print-directory generate; \
	if ! diff -r $$tmp/crds charts/orbit-controller/crds || ! diff $$tmp/zz_generated.deepcopy.go pkg/apis/orbit/v1/zz_generated.deepcopy.go; then \
	  echo "generated files are stale: run make generate and commit"; exit 1; fi

demo: kube-binaries build ## a local control plane plus all six services, and a scenario that shows them working
	@go run ./e2e/cmd/orbit-demo $(DEMO_FLAGS)

demo-keep: DEMO_FLAGS = --keep
demo-keep: demo ## the demo, leaving the platform running to explore with kubectl (Ctrl-C stops it)

clean: ## remove build outputs (keeps the control-plane cache)
	rm -rf bin dist

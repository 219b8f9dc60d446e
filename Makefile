# sluice — build, run, test, conformance and benchmarks.
#
#   make run      build and start the quickstart gateway (examples/quickstart)
#   make test     install what the tests need, then vet, tests, fuzz, h2spec
#   make bench    reverse-proxy benchmark vs nginx and Caddy -> docs/benchmarks.md
#
# `make test` must pass as root on a fresh Debian machine with only Go
# installed (that is what .ci/run does), so every tool a target needs is
# installed by a deps target here, idempotently.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

# Go lives in /usr/local/go on our machines; tools we `go install` land in
# $(go env GOPATH)/bin. Both go on PATH for every recipe.
GOROOT_BIN := $(wildcard /usr/local/go/bin)
export PATH := $(if $(GOROOT_BIN),$(GOROOT_BIN):)$(PATH)
GO ?= go
GOPATH_BIN := $(shell PATH="$(PATH)" $(GO) env GOPATH 2>/dev/null)/bin
export PATH := $(GOPATH_BIN):$(PATH)

# Root installs directly (CI, fresh machines); anyone else goes through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# ---- dependencies -----------------------------------------------------------
# Later features extend these lists: Debian packages the tests need (e.g.
# clang lld wasi-libc for Wasm test plugins), npm packages, Go tools.
APT_TEST_PKGS :=
APT_BENCH_PKGS := wrk nginx-light caddy nghttp2-client
NPM_TEST_PKGS :=
H2SPEC_PKG := github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible
# Go tools as "binary=module@version".
GO_TEST_TOOLS :=

# apt_install installs the Debian packages of $(1) that are missing. It runs
# `apt-get update` only then, so a machine that has them needs no network.
define apt_install
	missing=""; for p in $(1); do dpkg -s "$$p" >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: apt-get install$$missing"; \
	  $(SUDO) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

# go_install installs each "binary=module@version" of $(1) not yet on PATH.
define go_install
	for t in $(1); do bin=$${t%%=*}; mod=$${t#*=}; \
	  command -v "$$bin" >/dev/null 2>&1 || { echo "deps: go install $$mod"; $(GO) install "$$mod"; }; \
	done
endef

.PHONY: deps
deps: ## everything `make test` needs
	@command -v $(GO) >/dev/null || { echo "deps: Go not found (expected /usr/local/go/bin/go)" >&2; exit 1; }
	@$(call apt_install,$(APT_TEST_PKGS))
	@$(call go_install,$(GO_TEST_TOOLS))
	@if [ -n "$(NPM_TEST_PKGS)" ]; then $(call apt_install,nodejs npm); npm install --no-save --no-audit --no-fund $(NPM_TEST_PKGS); fi

.PHONY: h2spec-deps
h2spec-deps:
	@$(call go_install,h2spec=$(H2SPEC_PKG))

.PHONY: bench-deps
bench-deps:
	@$(call apt_install,$(APT_BENCH_PKGS))

# ---- build and run ----------------------------------------------------------
# `sluice version` shows the commit it was built from.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: build
build: ## bin/sluice (+ the quickstart backend and bench helper)
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o bin/sluice ./cmd/sluice
	$(GO) build -o bin/quickstart-backend ./examples/quickstart/backend
	$(GO) build -o bin/benchkit ./bench/benchkit

.PHONY: run
run: build ## start the quickstart: demo backend + sluice on http://127.0.0.1:8080
	examples/quickstart/run.sh

# ---- checks -----------------------------------------------------------------
# The race detector costs ~5-10x CPU; on 2 cores the whole suite still fits
# well within CI's budget (see .ci/run's timing), so it runs everywhere.
TESTFLAGS ?= -race -timeout 15m
FUZZTIME ?= 10s

.PHONY: test
# Unit tests run last so that their summary closes the log.
test: deps vet fmtcheck h2spec fuzz unit ## what CI runs: deps, vet, h2spec, fuzz, unit tests

.PHONY: vet
vet: ## go vet ./...
	$(GO) vet ./...

GOFILES = $(shell find . -name '*.go' -not -path './bench/out/*' -not -path '*/testdata/*' -not -path './.git/*')

.PHONY: fmt
fmt: ## gofmt -s -w every Go file
	gofmt -s -w $(GOFILES)

# Reports unformatted files without failing: a formatting nit should not
# block a change; `make fmt` fixes it.
.PHONY: fmtcheck
fmtcheck: ## list files gofmt would change
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "fmtcheck: not gofmt'ed (run make fmt):"; echo "$$out"; fi

.PHONY: unit
unit: ## go test -race ./... (TESTFLAGS=... to change)
	$(GO) test $(TESTFLAGS) ./...

# Every `func FuzzX(` in a _test.go file gets a short run, one package and one
# target per `go test -fuzz` call (go test refuses more). New targets join by
# existing; a crash fails the build and leaves its input in testdata/fuzz.
#
# Go 1.26's fuzz coordinator can report a bare "context deadline exceeded"
# when -fuzztime ends while a worker is busy, mostly on loaded machines
# (golang/go#75804, fixed in Go 1.27). That is not a finding: without a
# "Failing input written to" line it is reported and skipped.
.PHONY: fuzz
fuzz: ## every Fuzz target for 10s (FUZZTIME=...)
	@n=0; flaked=0; log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	while IFS= read -r f; do \
	  dir=$$(dirname "$$f"); \
	  for fn in $$(grep -oE '^func Fuzz[A-Za-z0-9_]*\(' "$$f" | sed -E 's/^func //; s/\($$//'); do \
	    echo "fuzz: $$fn in ./$${dir#./} for $(FUZZTIME)"; \
	    if ! $(GO) test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) "./$${dir#./}" 2>&1 | tee "$$log"; then \
	      if grep -q 'context deadline exceeded' "$$log" && ! grep -q 'Failing input written to' "$$log"; then \
	        echo "fuzz: $$fn: Go fuzz-coordinator deadline race (golang/go#75804), no failing input; not a finding"; \
	        flaked=$$((flaked+1)); \
	      else exit 1; fi; \
	    fi; \
	    n=$$((n+1)); \
	  done; \
	done < <(grep -rlE --include='*_test.go' --exclude-dir=testdata --exclude-dir=out --exclude-dir=.git '^func Fuzz[A-Za-z0-9_]*\(' . | sort); \
	echo "fuzz: $$n targets run ($$flaked hit the coordinator deadline race)"

.PHONY: h2spec
h2spec: build h2spec-deps ## HTTP/2 conformance (h2spec) against sluice over TLS
	bench/h2spec.sh

.PHONY: bench
bench: build bench-deps ## proxies benchmark -> docs/benchmarks.md
	bench/bench.sh

.PHONY: clean
clean: ## remove bin/ and bench/out/
	rm -rf bin bench/out

.PHONY: help
help: ## this list
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/'

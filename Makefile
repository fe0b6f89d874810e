# sumd — see README.md. Every target installs what it needs through the Go
# module proxy; nothing else is required but Go 1.26 and make.

GO       ?= go
PKGS     := ./...
# BIN is run as given by make run: a path with a slash (./sumd, not sumd).
BIN      ?= ./bin/sumd
BENCHTIME ?= 1x
# VERSION is stamped into the binary: sumd version, /version, sumd_build_info.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
FUZZTIME ?= 60s
FUZZMINIMIZE ?= 5s
CRASH_KILLS ?= 1000
CRASH_DURATION ?= 3h

.PHONY: build run test test-race test-short bench bench-compare lint fuzz crash clean help

build: ## build bin/sumd, stamped with VERSION (git describe)
	$(GO) build -ldflags "-X main.buildVersion=$(VERSION)" -o $(BIN) ./cmd/sumd

run: build ## start sumd on the embedded default (data/sumd.db, key under keys/)
	$(BIN) serve

test: test-race ## run every test (go command, cosign CLIs, crash); 75m timeout: a cold cosign build took over 40 min on a loaded machine
	$(GO) test -count=1 -timeout 75m $(PKGS)

# RACE_PKGS are the packages whose goroutines share state: the log's
# sequencer, the servers, the access layer's shared checks, uploads, the
# recorder and mirrors. About 50 s on two cores with a warm cache.
RACE_PKGS := ./internal/tlog ./internal/serve ./internal/server ./internal/access ./internal/admin ./internal/upstream ./internal/mirror

# CI= : under CI=true a test that -short would skip fails instead; this is
# an extra pass, and the full run that follows holds every test to CI's rules.
test-race: ## the concurrent packages' short tests under the race detector (part of make test)
	CI= $(GO) test -race -short -count=1 -timeout 15m $(RACE_PKGS)

test-short: ## skip the slow tests (crash, large tree)
	$(GO) test -short $(PKGS)

bench: ## durable append throughput (bbolt, PostgreSQL), lookups, tile reads, disk bytes per record, audit throughput, status page, access layer (bcrypt basic auth), mirrors (SUMD_BENCH_RECORDS, default 1M), import of 100k and 1M go.sum records (the cliff), first lookups and bulk adds (CPU per record), load test
	$(GO) test -run '^$$' -bench . -benchmem -timeout 30m ./internal/tlog ./internal/tlog/pgstore ./internal/server ./internal/audit ./internal/serve ./internal/access ./internal/admin
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./internal/mirror
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 1x -timeout 30m ./internal/seed ./internal/upstream # the import cliff (records/s at 100k and 1M must match), first lookups (CPU per record)
	./scripts/load.sh

bench-compare: ## sumd side by side with x/mod's TestServer, nginx (same tiles as files) and Tessera v1.0.4 (built under ~/.cache/sumd-bench), alternating rounds; needs nginx and wrk (apt-get install -y nginx wrk); BENCH_COMPARE_FLAGS, e.g. -rounds 5 -only lookups,tiles
	$(GO) run ./scripts/benchcompare $(BENCH_COMPARE_FLAGS)

lint: ## gofmt and go vet
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fuzz: ## run every fuzz target for FUZZTIME each (default 60s), shrinking a new input for at most FUZZMINIMIZE (default 5s); packages are found by their Fuzz functions; a bare "context deadline exceeded" with no failing input (golang/go#75804) runs the target once more
	GO=$(GO) FUZZTIME=$(FUZZTIME) FUZZMINIMIZE=$(FUZZMINIMIZE) scripts/fuzz.sh

crash: ## SIGKILL sumd serve under load CRASH_KILLS times (default 1000, at most CRASH_DURATION), checking every acknowledged record and head after each restart
	CRASH_KILLS=$(CRASH_KILLS) CRASH_DURATION=$(CRASH_DURATION) $(GO) test -count=1 -timeout 0 -run '^TestCrashLoop$$' -v ./cmd/sumd

clean: ## remove bin/
	rm -rf bin

help: ## list these targets and what each does
	@awk -F ':.*## ' '/^[a-z-]+:.*## /{printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

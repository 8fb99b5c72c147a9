# kforge. `make help` lists the targets.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
LDFLAGS  := -s -w -X github.com/kforge/kforge/cmd.version=$(VERSION)
BIN      := bin/kforge

.PHONY: help build test integration bench bundle verify ci clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/kforge
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

test: ## hermetic unit tests: no root, no network, no cluster
	$(GO) test ./...

integration: ## real etcd + control-plane binaries from generated files, no root (builds or reuses the bundle)
	$(GO) test -tags integration -count=1 -timeout 45m -v -run Integration ./e2e/

bench: ## benchmarks under bench/
	$(GO) test -run '^$$' -bench . -benchmem ./bench/

bundle: ## build (or reuse from the cache) the test bundle of Kubernetes and etcd binaries
	$(GO) run ./e2e/mkbundle

verify: ## gofmt, go vet and go mod tidy are clean (golden files are checked by the tests)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags integration ./e2e/
	$(GO) mod tidy -diff

ci: verify test integration ## what CI runs: verify, unit tests, then the integration tier

clean: ## remove build output (the bundle cache stays; see README)
	rm -rf bin

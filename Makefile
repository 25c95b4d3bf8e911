# terminator — see README.md.
GO ?= go
GOFLAGS ?=
export PATH := $(PATH):/usr/local/go/bin

.PHONY: run test deps build vet fmt-check bench bench-quick bench-go clean

## run: the built-in demo — throwaway certificates, a demo backend, and a
## TERMINATED_HTTPS listener on 127.0.0.1:8443 (prints the curl line to try).
run:
	$(GO) run ./cmd/terminator demo

## test: formatting, vet, the real servers the tests need, and the whole
## test suite with the race detector.
test: fmt-check vet deps
	$(GO) test -race -timeout 20m ./...

## deps: what the tests run against, before any test's timeout starts:
## Vault 1.13 built from the module proxy (cached; one build at a time),
## Debian's Barbican and Keystone packages, and Debian's python3-octavia,
## whose own code drives the amphora tests (needs root, as CI has).
deps:
	scripts/vault-dev build >/dev/null
	scripts/barbican-dev install
	scripts/octavia-peer install

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/terminator ./cmd/terminator

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## bench: terminator against haproxy and nginx, side by side (bench/README.md).
bench:
	bash bench/run

bench-quick:
	bash bench/run -quick

## bench-go: the Go micro-benchmarks of the hot paths.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin .demo

# terminator — see README.md.
GO ?= go
GOFLAGS ?=
export PATH := $(PATH):/usr/local/go/bin

.PHONY: run test deps build deb vet fmt-check bench bench-quick bench-go clean

# The version stamped into the binary and the package: the nearest tag, or
# 0.0.0 with the commit's date and hash (a Debian version starts with a digit).
COMMIT  := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
DATE    := $(shell git log -1 --format=%cI 2>/dev/null || date -u +%FT%TZ)
VERSION ?= $(shell v=$$(git describe --tags --abbrev=0 2>/dev/null | sed 's/^v//'); \
             echo "$${v:-0.0.0}~git$$(git log -1 --format=%cd --date=format:%Y%m%d%H%M%S 2>/dev/null).$(COMMIT)")
ARCH    := $(shell $(GO) env GOARCH)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)

## run: the built-in demo — throwaway certificates, a demo backend, and a
## TERMINATED_HTTPS listener on 127.0.0.1:8443 (prints the curl line to try).
run:
	$(GO) run ./cmd/terminator demo

## test: formatting, vet, the real servers the tests need, and the whole
## test suite with the race detector.
test: fmt-check vet deps
	$(GO) test -race -timeout 20m ./...

## deps: what the tests run against, before any test's timeout starts:
## Vault 1.13, Let's Encrypt's Pebble (ACME) and h2spec (HTTP/2 conformance)
## built from the module proxy
## (cached; one build at a time),
## Debian's Barbican and Keystone packages, Debian's python3-octavia, whose
## own code drives the amphora tests, a Debian 12 amphora root with Debian's
## octavia-agent for the image element's test (mmdebstrap, cached),
## keepalived (ACTIVE_STANDBY), curl and lintian (needs root, as CI has).
deps:
	scripts/vault-dev build >/dev/null
	scripts/pebble-dev build >/dev/null
	scripts/h2spec-dev build >/dev/null
	scripts/barbican-dev install
	scripts/octavia-peer install
	scripts/amphora-root build >/dev/null
	@dpkg -s lintian keepalived curl >/dev/null 2>&1 || { echo "deps: installing lintian (checks the Debian package), keepalived (ACTIVE_STANDBY amphorae) and curl (a client the tests use)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian keepalived curl || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lintian keepalived curl; }; }

## build: the static binary, version, commit and date stamped in.
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/terminator ./cmd/terminator

## deb: bin/terminator_<version>_<arch>.deb (packaging/README.md).
deb: build
	{ printf 'terminator (%s) unstable; urgency=medium\n\n' "$(VERSION)"; \
	  git log -50 --format='  * %s' | cut -c1-78; \
	  printf '\n -- terminator developers <terminator-proxy@users.noreply.github.com>  %s\n' "$$(git log -1 --format=%cD)"; \
	} | gzip -9n > bin/changelog.gz
	rm -rf bin/man && bin/terminator man bin/man && gzip -9n bin/man/*.1
	VERSION="$(VERSION)" ARCH="$(ARCH)" $(GO) tool nfpm pkg --packager deb --config packaging/nfpm.yaml --target bin/

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

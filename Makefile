# docker-perceptron. "make test" is what CI runs (.ci/run).

GO          ?= go
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X main.version=$(VERSION)
UNIT_PKGS    = $(shell $(GO) list ./... | grep -v '/e2e$$')
# Packages with tests or code that only the fakenvml build compiles.
FAKENVML_PKGS = ./internal/commands/
E2E_TIMEOUT ?= 30m

# go-nvml's C header marks NVML calls deprecated, and cgo compiles a wrapper
# for each: pages of gcc warnings about code that is not ours. Quieten them,
# for every go command here (the e2e suite's builds too), unless CGO_CFLAGS
# is set already.
ifeq ($(origin CGO_CFLAGS),undefined)
CGO_CFLAGS := $(shell $(GO) env CGO_CFLAGS) -Wno-deprecated-declarations
export CGO_CFLAGS
endif

# The e2e suite runs every test against the dockerd on PATH (Debian 12's
# 20.10) and against Docker 29's, which "make dockerd29" builds from moby's
# module into a cache directory per version (once: a few minutes). Without
# it the suite skips the d29 subtests, or fails with CI set.
DOCKERD29_VERSION ?= v2.0.0-beta.24
DOCKERD29_DIR     ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/docker-perceptron/dockerd-$(DOCKERD29_VERSION)
export PERCEPTRON_E2E_DOCKERD29 ?= $(DOCKERD29_DIR)/dockerd

.PHONY: all build install test unit e2e lint bench clean fuzz dockerd29

all: build

# Always handed to go build: its cache knows better than make what changed.
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/docker-perceptron ./cmd/docker-perceptron
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/perceptron-core ./cmd/perceptron-core

install:
	./install.sh

# Everything: lint, unit tests and the end-to-end suite, with the race
# detector, then the tests of the fakenvml build (the fake NVML behind
# perceptron-core, as the e2e suite builds it). The e2e suite skips without
# root/dockerd, or fails if CI is set. -count=1: the e2e results also depend
# on the installed docker and dockerd.
test: lint
	$(GO) test -race -count=1 -timeout $(E2E_TIMEOUT) ./...
	$(GO) test -race -count=1 -tags fakenvml $(FAKENVML_PKGS)
	$(MAKE) fuzz FUZZTIME=5s

# The fuzz targets of what reads untrusted input: the --gpus parser, the
# preset loader, the lease reader. Briefly in make test; longer by hand
# (make fuzz FUZZTIME=5m). A failing input lands in testdata/fuzz: keep it.
FUZZTIME ?= 30s
FUZZ_TARGETS = FuzzParseGPUs:./internal/request FuzzLoad:./internal/presets FuzzReadLease:./internal/ledger
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t%%:*} $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) "$${t#*:}"; \
	done

dockerd29: $(DOCKERD29_DIR)/dockerd

$(DOCKERD29_DIR)/dockerd:
	GOBIN=$(DOCKERD29_DIR) $(GO) install github.com/moby/moby/v2/cmd/dockerd@$(DOCKERD29_VERSION)

unit:
	$(GO) test -race $(UNIT_PKGS)
	$(GO) test -race -tags fakenvml $(FAKENVML_PKGS)

e2e:
	$(GO) test -race -count=1 -timeout $(E2E_TIMEOUT) -v ./e2e/

lint:
	@files="$$(gofmt -l .)"; if [ -n "$$files" ]; then echo "gofmt needed:"; echo "$$files"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags fakenvml ./...

# Benchmarks, numbers in bench.txt: the unit benchmarks (GPU choice), then
# docker perceptron against stock docker on a private dockerd with 0, 500 and
# 2000 other containers: create warm and cold, gpus against docker ps -a, 16
# concurrent runs with the lock hold time, a create after --rm churn (needs
# what the e2e suite needs; see BenchmarkBusyDaemon). Medians in one run; see
# the README.
bench:
	{ $(GO) test -run '^$$' -bench . -benchmem $(UNIT_PKGS) && \
	  $(GO) test -run '^$$' -bench BusyDaemon -benchtime 1x -count 1 -timeout 30m ./e2e/; } >bench.txt; \
	status=$$?; cat bench.txt; exit $$status

clean:
	rm -rf bin bench.txt

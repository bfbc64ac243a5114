# Two commands do everything on a fresh Debian machine:
#   make demo   all-in-one demo on the Dummy matchmaker
#   make test   the whole test suite
export PATH := $(PATH):/usr/local/go/bin

GO        ?= go
BIN       := bin
TESTFLAGS ?= -race -timeout 25m

.PHONY: all deps build demo test lab-test test-deploy bench bench-quick lint fuzz hostile clean

all: build

deps:
	@bash ci/install-deps.sh

build: deps
	$(GO) build -o $(BIN)/ ./cmd/...

demo: build
	./$(BIN)/zmqrpc demo

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

test: deps lint
	$(GO) test $(TESTFLAGS) $$($(GO) list ./... | grep -v '/lab$$')
	$(MAKE) lab-test
	$(MAKE) test-deploy

# The multi-node lab (lab/): Docker containers of images built from Debian
# packages. It skips without a Docker daemon unless FABRIC_REQUIRE_DOCKER=1
# (.ci/run sets it where a daemon answers); -v puts its fault figures in the log.
lab-test: deps
	$(GO) test -v -count=1 -timeout 20m ./lab/...

# The deployment code: DevStack plugin (bats, shellcheck), Ansible lint and
# a converge/verify run against containers (FABRIC_SKIP_DOCKER=1 skips that
# part on purpose on a machine without Docker).
test-deploy: deps
	bash ci/test-deploy.sh

# The benchmark table of BENCHMARKS.md: raw libzmq, our driver and proxy,
# NATS, interleaved, five rounds, then the scale section (about 17 minutes);
# bench-quick is a smoke run. BASELINE=REV also runs REV's driver and proxy,
# paired per round (bench/run.sh --baseline).
bench:
	bash bench/run.sh $(if $(BASELINE),--baseline $(BASELINE))

bench-quick:
	bash bench/run.sh --quick $(if $(BASELINE),--baseline $(BASELINE))

# A short fuzzing run of the wire decoders (the seeds already run in make test).
fuzz: deps
	$(GO) test -run=NONE -fuzz=FuzzParse -fuzztime=60s ./zmq/wire/

# Hostile input at process level with the full count (docs/hostile-input.md):
# 1,000,000 random and mutated messages, bombs and oversized frames at real
# zmqrpc and proxy processes. make test runs the quick version (20,000).
HOSTILE_MESSAGES ?= 1000000
hostile: deps
	HOSTILE_MESSAGES=$(HOSTILE_MESSAGES) $(GO) test -v -count=1 -timeout 60m -run TestHostileInput ./e2e/

clean:
	rm -rf $(BIN)

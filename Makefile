# berth — see README.md. `make run` sets up and starts the stack; `make test` runs every test.
GO       ?= go
BIN      := bin
SERVICES := apigw supervisor shim runtime init
BINARIES := $(addprefix $(BIN)/berth-,$(SERVICES))
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build deps run test test-short e2e acceptance lint bench bench-runtime fuzz soak clean $(BINARIES) $(BIN)/nats-server

all: build

build: $(BINARIES) $(BIN)/nats-server

# One shim runs per container: a static, stripped binary keeps its memory small.
ENV_shim   := CGO_ENABLED=0
FLAGS_shim := -ldflags "-s -w"
# The init of --init is bind-mounted into containers: static, whatever their libc.
ENV_init   := CGO_ENABLED=0
FLAGS_init := -ldflags "-s -w"

$(BINARIES): $(BIN)/berth-%:
	$(ENV_$*) $(GO) build $(FLAGS_$*) -o $@ ./services/$*

# The external bus of the tests (tests/stack StartExternal): go.mod's nats-server.
$(BIN)/nats-server:
	$(GO) build -o $@ github.com/nats-io/nats-server/v2

deps:
	@scripts/install-deps.sh

run: deps build
	scripts/run.sh

# Unit, integration and end-to-end tests (root needed for most; they skip otherwise).
test: deps build
	$(GO) vet ./...
	BERTH_BIN=$(CURDIR)/$(BIN) $(GO) test -p 1 -count=1 -timeout 30m ./...
	scripts/fuzz.sh 20000x

test-short: build
	$(GO) test -short -count=1 ./...

# The shared docker CLI scenarios against a stack started on temporary roots.
acceptance: deps build
	$(GO) test -count=1 -run TestSharedAcceptance -v ./tests/e2e/

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

bench: build
	@scripts/install-deps.sh --bench
	BERTH_BIN=$(CURDIR)/$(BIN) $(GO) test -run XXX -bench . -benchtime 1x -timeout 30m ./tests/bench/

bench-runtime: deps
	$(GO) test -run XXX -bench . -timeout 30m ./services/runtime/bench/

fuzz:
	scripts/fuzz.sh 60s

# 200 containers through create/start/stop/remove with random supervisor
# kills and bus restarts, on the embedded NATS (TestSoak) and on an external
# one killed on its own (TestSoakExternalBus); checks every record against
# reality (not in CI).
soak: build
	BERTH_SOAK=1 BERTH_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 60m -run TestSoak -v ./tests/faults/

clean:
	rm -rf $(BIN)

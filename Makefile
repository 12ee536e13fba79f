# vxland: build, test, demo, benchmark. Targets that build namespaces need root.
GO      ?= go
BIN     ?= bin
# Fuzz runs are counted, not timed: timed runs of go1.26 can end with a
# spurious "context deadline exceeded" from the fuzz coordinator.
FUZZTIME ?= 30000x

.PHONY: all build test unit fuzz vet demo bench bench-baseline bench-go bench-cluster soak clean

all: build

build:
	$(GO) build -o $(BIN)/vxland ./cmd/vxland
	$(GO) build -o $(BIN)/vxlanctl ./cmd/vxlanctl

## test: everything CI runs: vet, gofmt, unit + integration tests, short fuzzing.
## It stops when scripts/deps.sh cannot install what the tests use; CI runs it with
## VXLAND_REQUIRE_INTEROP=1, under which a test that would skip fails instead.
test: vet
	./scripts/deps.sh
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -race -count=1 ./dataplane ./fdb ./learning ./control ./stats
	$(MAKE) fuzz
	$(MAKE) soak SOAK=60s

## soak: vxland <-> kernel and vxland <-> vxland under load and faults for
## SOAK (default 10m), then a summary table of its checks (docs/soak.md).
SOAK ?= 10m
soak:
	$(GO) test -tags soak -count=1 -v -run '^TestSoak$$' -timeout $$(( $$(echo $(SOAK) | sed 's/[^0-9]//g') * $$(case $(SOAK) in *h) echo 3600;; *m) echo 60;; *) echo 1;; esac) + 600 ))s ./soak -soak.duration $(SOAK)

vet:
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## fuzz: run every fuzz target briefly (FUZZTIME each) on top of its seed corpus.
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    out=$$($(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 100x $$pkg 2>&1) || { echo "$$out"; exit 1; }; \
	    echo "$$out" | tail -n 1 | sed "s|\t| $$t\t|"; \
	  done; \
	done

## demo: two namespaces, vxland on one side, a kernel vxlan peer on the other.
demo: build
	sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; $$sudo ./scripts/demo.sh $(BIN)

## bench: the system benchmark against the kernel driver (see bench/README.md);
## BENCHFLAGS="--rounds 5 --duration 10s" to change it.
bench:
	$(GO) build -o $(BIN)/vxbench ./bench/cmd/vxbench
	sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; $$sudo $(BIN)/vxbench $(BENCHFLAGS)

## bench-baseline: the system benchmark with system VB, the vxland of commit BASE
## (default cf6a88a, the engine before the batch rework), measured in the same
## rounds as VK. BASE's ./cmd/vxland is built into $(BIN)/vxland-base from a
## temporary git worktree, which is removed once the build is done.
BASE ?= cf6a88a
bench-baseline:
	$(GO) build -o $(BIN)/vxbench ./bench/cmd/vxbench
	@set -e; git rev-parse --verify --quiet '$(BASE)^{commit}' >/dev/null || { echo "BASE=$(BASE) is not a commit"; exit 1; }; \
	  out=$(abspath $(BIN))/vxland-base; tmp=$$(mktemp -d); \
	  trap 'git worktree remove --force "$$tmp/src" 2>/dev/null; rm -rf "$$tmp"' EXIT; \
	  git worktree add --quiet --detach "$$tmp/src" $(BASE); \
	  echo "building $(BASE) ./cmd/vxland into $$out"; \
	  (cd "$$tmp/src" && $(GO) build -o "$$out" ./cmd/vxland)
	sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; $$sudo $(BIN)/vxbench --baseline-bin $(BIN)/vxland-base \
	  --baseline-name "$$(git rev-parse --short '$(BASE)^{commit}')" $(BENCHFLAGS)

## bench-go: allocation and speed of the per-packet code paths.
bench-go:
	$(GO) test -run '^$$' -bench . -benchmem ./encap ./fdb ./learning ./checksum ./offload ./dataplane

## bench-cluster: cluster mode with 5, 10 and 20 members on one etcd (root): time to a
## full mesh, to see a leave and a join, etcd writes at rest, memory (README table).
bench-cluster:
	@echo '| members | mesh | leave | join | etcd writes / member / min | RSS median / max |'
	@for n in 5 10 20; do \
	  out=$$(VXLAND_CLUSTER_NODES=$$n $(GO) test -count=1 -run '^TestClusterScale$$' -v ./interop 2>&1) || { echo "$$out" | tail -40; exit 1; }; \
	  echo "$$out" | grep -E '^ +cluster_test.go:[0-9]+: \|' | sed 's/^ *cluster_test.go:[0-9]*: //'; \
	done

clean:
	rm -rf $(BIN)

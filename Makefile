# kpbench: `make bench` runs the main job on the local lab; `make test` runs
# every test. Both do their own set-up on a fresh Debian machine.
SHELL := /bin/bash
GO ?= go
BIN := bin/kpbench
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/kpbench/kpbench/cmd/kpbench/app.Version=$(VERSION)
SCENARIO ?= quick
PROVIDER ?= lab
OUT ?= results
# Go test timeout for the whole suite (the first lab build takes minutes).
TEST_TIMEOUT ?= 75m

.PHONY: all deps deps-vm deps-test deps-kind deps-bpf generate build test unit bench bench-vm node-image perf lint verify clean

all: build

deps:
	@./hack/deps.sh

# What the lab's VM client node needs as well (qemu, a guest kernel, ...).
deps-vm:
	@./hack/deps.sh --vm

# What `make generate` needs (clang-16 for the kernel probe's BPF objects).
# What `make test` needs besides: the VM node's packages, chromium, and the
# kind provider's podman, runc, netavark and mmdebstrap.
deps-test:
	@./hack/deps.sh --vm --test

deps-bpf:
	@./hack/deps.sh --bpf

# What the kind provider needs without Docker or a registry: podman with
# runc and netavark, and mmdebstrap for the offline node image.
deps-kind:
	@./hack/deps.sh --kind

# Regenerate the kernel probe's BPF objects (collector/firstpacket) from
# their C source; the results are committed.
generate: deps-bpf
	$(GO) generate ./collector/firstpacket/

build: deps
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/kpbench

# The full suite: unit tests everywhere; as root also the integration tests
# on the real lab (they skip with a reason when they cannot run).
# Packages run one at a time (-p 1): several bring up labs and measure CPU,
# and each measures better on a machine the others are not loading.
test: build deps-test
	@if [ "$$(id -u)" = 0 ]; then $(BIN) lab binaries; fi
	KPBENCH_BIN=$(CURDIR)/$(BIN) $(GO) test -p 1 -timeout $(TEST_TIMEOUT) -count=1 ./...

# Unit tests only (no root, no lab).
unit:
	KPBENCH_SKIP_INTEGRATION=1 $(GO) test -count=1 ./...

# The main job: run a scenario on the lab and write its report.
bench: build
	$(BIN) run --scenario $(SCENARIO) --provider $(PROVIDER) --out $(OUT)

# All three modes, IPVS included, from a client node that is a qemu VM
# with its own kernel (KVM where this machine has it, else software
# emulation, labelled so in the report). VM_ARGS, e.g. --kernel PATH, go
# to kpbench run.
VM_SCENARIO ?= ipvs-vm-smoke
VM_ARGS ?=
bench-vm: build deps-vm
	$(BIN) run --scenario $(VM_SCENARIO) --provider lab --node vm $(VM_ARGS) --out $(OUT)

# kind's node image built offline (docs/kind-offline.md), cached per
# Kubernetes version, and loaded into podman. As root.
node-image: build deps-kind
	$(BIN) image node --load podman

# Benchmarks and the load generator's side-by-side comparison with fortio
# and wrk on loopback (PERF_ARGS, e.g. --reps 1, go to hack/perf-loadgen; as
# root the fixed-rate runs use SCHED_FIFO to keep other load out of them).
PERF_ARGS ?= $(if $(filter 0,$(shell id -u)),--rt 20,)
perf: build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	./hack/perf-loadgen.sh $(PERF_ARGS)

lint: verify
verify: generate
	@if ! git diff --quiet -- collector/firstpacket; then echo "the committed BPF objects differ from a fresh 'make generate':"; git diff --stat -- collector/firstpacket; exit 1; fi
	@fmt=$$(gofmt -l . | grep -v '^results/' || true); if [ -n "$$fmt" ]; then echo "gofmt would change:"; echo "$$fmt"; exit 1; fi
	$(GO) vet ./...
	@if ! $(GO) mod tidy -diff; then echo "go mod tidy would change go.mod/go.sum (the diff above)"; exit 1; fi

clean:
	rm -rf bin

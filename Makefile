# mmpipe: build, demo, tests and benchmarks. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
BIN := bin/mmpipe
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILD_TIME ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildTime=$(BUILD_TIME)
TOOLS := .tools/node
ORT_VERSION := 1.30.0
ORT_LIB := .ort/libonnxruntime.so.1
# GoMLX's pure-Go backend (the trainer's dense layers: sasrec) vectorises its
# matrix products with Go's SIMD experiment on amd64 (AVX2/AVX-512); without it
# they fall back to scalar loops (research: ~1.8x slower transformer steps).
ifeq ($(shell $(GO) env GOARCH),amd64)
GOEXPERIMENT ?= simd
export GOEXPERIMENT
endif

.PHONY: help build build-xla ort-gpu pjrt-cuda demo test test-short fuzz tools ort bench bench-ingest bench-encode bench-crawl bench-train bench-seeds bench-mmssl-clip vet fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

build: ## build bin/mmpipe (cgo: LMDB's C source is compiled in)
	CGO_ENABLED=1 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/mmpipe

build-xla: ## build bin/mmpipe with GoMLX's XLA backend too (GOMLX_BACKEND=xla:<plugin>; needs a PJRT plugin at run time)
	CGO_ENABLED=1 $(GO) build -tags xla -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/mmpipe

demo: build ## the whole pipeline on a generated sample: ingest, crawl, encode, train (no downloads)
	rm -rf demo-out
	./$(BIN) demo --out demo-out

vet: ## go vet and gofmt check
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

test: vet ## run every test (real data in ../shared/data is used when present; see README, Tests)
	$(GO) test -count=1 ./...

test-short: ## quick tests only
	$(GO) test -short ./...

# Every fuzz target, found in the *_test.go files as package:target pairs (go test
# fuzzes one target per package per invocation). A failing input is saved in the
# package's testdata/fuzz/<target>/ and fails `make test` from then on.
# Go 1.26's fuzz coordinator can report a bare "context deadline exceeded" when
# -fuzztime expires under CPU contention (golang/go#75804, fixed in Go 1.27): no
# input fails and none is written. Such a run is retried once and, if it ends the
# same way, reported as a flake; any written failing input, panic or test error
# still fails.
FUZZTIME ?= 5s
FUZZ_ROOTS := cmd pipeline store train extract
fuzz: ## run every fuzz target for FUZZTIME each (default 5s); lists the ones that fail
	@targets=$$(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' $(FUZZ_ROOTS) | \
		sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz.*)$$#./\1:\2#' | sort -u); \
	failed=""; start=$$(date +%s); log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	for pt in $$targets; do \
		pkg=$${pt%%:*}; fn=$${pt##*:}; t0=$$(date +%s); \
		run() { $(GO) test "$$pkg" -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) >"$$log" 2>&1; }; \
		deadline_flake() { grep -q 'context deadline exceeded' "$$log" && \
			! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' "$$log"; }; \
		if run; then \
			echo "ok    $$pkg $$fn ($$(( $$(date +%s) - t0 ))s)"; \
		elif deadline_flake && { run || deadline_flake; }; then \
			echo "ok    $$pkg $$fn ($$(( $$(date +%s) - t0 ))s; a fuzztime deadline flake retried, golang/go#75804)"; \
		else \
			echo "FAIL  $$pkg $$fn"; grep -v '^fuzz: elapsed' "$$log" | tail -20; failed="$$failed $$pkg:$$fn"; \
		fi; \
	done; \
	echo "fuzz: $$(echo $$targets | wc -w) targets, $(FUZZTIME) each, $$(( $$(date +%s) - start ))s"; \
	if [ -n "$$failed" ]; then echo "fuzz failures:$$failed"; exit 1; fi

tools: ## install the interop checkers: npm apache-arrow and @duckdb/node-api into .tools/node
	mkdir -p $(TOOLS)
	cd $(TOOLS) && { test -f package.json || echo '{"private":true}' > package.json; } && \
		npm install --no-audit --no-fund --loglevel=error apache-arrow@21.2.0 @duckdb/node-api@1.5.6-r.1 >/dev/null
	@echo "interop tools in $(TOOLS)/node_modules"

ort: ## install ONNX Runtime (CPU, ORT_VERSION) from npm onnxruntime-node into .ort/; idempotent
	@if [ -f $(ORT_LIB) ] && [ "$$(cat .ort/VERSION 2>/dev/null)" = "$(ORT_VERSION)" ]; then \
		echo "ONNX Runtime $(ORT_VERSION) already in $(ORT_LIB)"; else \
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	( cd "$$tmp" && npm pack --silent onnxruntime-node@$(ORT_VERSION) >/dev/null && \
	  tar xzf onnxruntime-node-$(ORT_VERSION).tgz package/bin/napi-v6/linux/x64/libonnxruntime.so.1 ); \
	mkdir -p .ort && cp "$$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" $(ORT_LIB).tmp && \
	mv $(ORT_LIB).tmp $(ORT_LIB) && echo $(ORT_VERSION) > .ort/VERSION && \
	echo "ONNX Runtime $(ORT_VERSION) installed in $(ORT_LIB)"; fi

# GPU libraries for Dockerfile.cuda (they need github.com and pypi.org, which this project's CI machines cannot
# reach). The versions must match each other: ORT_GPU_VERSION's CUDA provider is built for one CUDA major version
# (see its release notes), and the PJRT plugin must speak the PJRT C API that go-xla (pulled in by GoMLX) expects.
ORT_GPU_VERSION ?= 1.30.0
ORT_GPU_URL ?= https://github.com/microsoft/onnxruntime/releases/download/v$(ORT_GPU_VERSION)/onnxruntime-linux-x64-gpu-$(ORT_GPU_VERSION).tgz
PJRT_WHEEL ?= jax-cuda12-pjrt==0.8.1
ort-gpu: ## ONNX Runtime GPU build (CUDA execution provider) into .ort-gpu/ (downloads from GitHub; for Dockerfile.cuda)
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	curl -fsSL "$(ORT_GPU_URL)" | tar xz -C "$$tmp" --strip-components=2 --wildcards '*/lib/libonnxruntime*.so*'; \
	mkdir -p .ort-gpu && cp "$$tmp"/libonnxruntime*.so* .ort-gpu/

pjrt-cuda: ## the PJRT CUDA plugin of GoMLX's XLA backend into .pjrt/ (pip wheel PJRT_WHEEL; for Dockerfile.cuda)
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	python3 -m pip download --no-deps --only-binary=:all: -d "$$tmp" "$(PJRT_WHEEL)"; \
	cd "$$tmp" && python3 -m zipfile -e *.whl x && cd - >/dev/null; \
	plugin=$$(find "$$tmp/x" -name xla_cuda_plugin.so | head -1); test -n "$$plugin"; \
	mkdir -p .pjrt && mv "$$plugin" .pjrt/pjrt_c_api_cuda_plugin.so

bench: build ## Go benchmarks, bench-ingest and bench-encode (bench-crawl, bench-train run apart; figures in BENCHMARKS.md)
	mkdir -p bench/out
	$(GO) test -run '^$$' -bench . -benchtime 3x ./store/... ./pipeline/... ./extract/... | tee bench/out/go.txt
	$(MAKE) bench-ingest
	$(MAKE) bench-encode

bench-ingest: build ## ingest a generated 10M-row Amazon 2018 ratings CSV, report rows/s and peak RSS
	bash bench/ingest.sh

bench-crawl: build ## crawl 2,000 real-size JPEGs from a local server: structural, decode, resize
	go run ./bench/crawl -n 2000

bench-train: build ## pop / MF-BPR / LightGCN on TikTok and Baby, LightGCN epoch against PyTorch CPU
	bash bench/train/run.sh

bench-seeds: build ## seed spread (mean ± sd over 6 seeds) of LightGCN and MF-BPR on TikTok; MODEL=... SETS=... for others
	THREADS=1 MODEL=lightgcn bash bench/train/seeds.sh
	THREADS=1 MODEL=mf bash bench/train/seeds.sh

bench-mmssl-clip: build ## MMSSL (both modes, ablations) against pop / MF-BPR / LightGCN on the CLIP image + text subset, several seeds
	bash bench/train/mmssl_clip.sh

bench-encode: build ## image preprocessing (Go vs Pillow+numpy) and built-in encoder throughput
	bash bench/encode/run.sh

clean: ## remove build outputs
	rm -rf bin demo-out bench/out

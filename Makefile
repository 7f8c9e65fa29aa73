# The two commands of the README: `make run` and `make test`.
# Everything else here is what those two need, each step idempotent.

SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
BIN := target/release/xiaoer
# The HTTP tests whose servers store conversations, accounts and edits: with
# XIAOER_TEST_STORAGE=postgres they run on a real PostgreSQL (tests/common/pg.rs).
POSTGRES_TESTS := api accounts canned conversation_flow desk_metrics kb_ops learning service_hours stats

.PHONY: run cluster test setup models build index lint bench bench-reference bench-console loadtest bench-storage eval calibrate clean

## Set everything up and serve the HTTP API on the sample knowledge base.
run: setup models build
	$(BIN) serve

## Two replicas on PostgreSQL behind nginx on this machine (issue #15); Ctrl-C stops it all.
cluster: setup models build
	bash scripts/cluster.sh

## Set everything up and run the whole test suite (Rust tests, the behavioural tests that
## store anything once more on PostgreSQL, then the browser tests).
test: setup models
	$(CARGO) test --release --all-targets
	XIAOER_TEST_STORAGE=postgres $(CARGO) test --release $(foreach t,$(POSTGRES_TESTS),--test $(t))
	$(CARGO) build --release --bin xiaoer
	cd e2e && node --test --test-concurrency=1

setup:
	@bash scripts/setup.sh

models:
	@bash scripts/fetch-model.sh

build:
	$(CARGO) build --release

index: build
	$(BIN) index

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets -- -D warnings

bench: setup models
	$(CARGO) bench

## Query embedding side by side with the reference C engine (docs/BENCHMARKS.md).
bench-reference: setup models
	bash scripts/bench-reference.sh

## The agent console in Chromium under 50 simultaneous conversations (docs/BENCHMARKS.md).
bench-console: setup models build
	cd e2e && node console-bench.mjs

## HTTP load test of POST /v1/answer with wrk, and memory at 100k phrasings.
loadtest: setup models
	bash scripts/loadtest/run.sh

## POST /v1/answer on SQLite vs PostgreSQL, one replica vs two behind nginx (issue #15;
## docs/BENCHMARKS.md). Uses target/release/xiaoer as built (`make build` first after changes).
bench-storage: setup models
	bash scripts/loadtest/storage.sh

eval: build
	@for d in ant bq xling; do \
	  $(BIN) --kb ../shared/eval/$$d-dev/faq.jsonl eval --queries ../shared/eval/$$d-dev/queries.jsonl; \
	done
	$(BIN) eval --queries eval/store-queries.jsonl

calibrate: build
	$(BIN) calibrate --data ../shared/eval/ant-dev --data ../shared/eval/bq-dev \
	  --data knowledge_base:eval/store-queries.jsonl --write xiaoer.toml

clean:
	rm -rf data target/criterion

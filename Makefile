# Everything a fresh checkout needs: `make run` and `make test` build the virtualenv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# One stamp per lock installed. requirements.lock, the service's own, builds the venv from scratch (--clear:
# no stale packages left over, and the other stamps go too); `make test` adds requirements-dev.lock,
# `make bench` requirements-bench.lock and `make cluster` requirements-cluster.lock (Patroni) on top of it,
# pinning what they share with it alike.
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench
CLUSTER_STAMP := $(VENV)/.installed-cluster

.DEFAULT_GOAL := help
.PHONY: help venv run lint test bench chaos migrate check purge-keys token lock clean cluster cluster-test cluster-capacity

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

venv: $(STAMP) ## Create the virtualenv from requirements.lock (what the service needs, nothing more)

FRESH_VENV = $(PYTHON) -m venv --clear $(VENV) && $(BIN)/python -m pip install --quiet --upgrade pip \
  && $(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock && touch $(STAMP)

$(STAMP): requirements.lock
	$(FRESH_VENV)

# An extra's stamp that exists is older than its lock, which changed: start again from the runtime lock,
# so that nothing only the old lock named stays behind.
$(VENV)/.installed-%: requirements-%.lock $(STAMP)
	@if [ -e $@ ]; then echo "$< changed: $(VENV) starts again from requirements.lock"; $(FRESH_VENV); fi
	$(BIN)/python -m pip install --quiet --require-hashes -r $<
	touch $@

run: $(STAMP) ## Serve the API (embedded PostgreSQL unless DATABASE_URL is set)
	$(BIN)/python -m app.operations.serve

lint: $(DEV_STAMP) ## ruff (lint and format) over the whole tree, and the import contract (pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-logo

# Lint first: a lint failure fails `make test`, and so CI, before the suite's minutes are spent.
test: lint ## Lint, then the test suite with coverage (PYTEST_ARGS="tests/unit -x" to narrow it)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

chaos: $(DEV_STAMP) ## Long chaos run: retrying clients vs killed workers, server and database (DURATION=60)
	$(BIN)/python -m tests.chaos --duration $(or $(DURATION),60)

# Not part of `make test`: these need Debian's haproxy, pgbouncer and etcd-server, which they install (as root)
# if missing, and Patroni (requirements-cluster.lock).
cluster: $(CLUSTER_STAMP) ## Run 3 instances behind HAProxy, with PgBouncer, Redis and a 3-member Patroni PostgreSQL (Ctrl-C stops all)
	$(BIN)/python -m cluster

cluster-test: $(DEV_STAMP) $(CLUSTER_STAMP) ## Start the cluster, run the black-box suite (failovers too) through its balancer, tear it down
	$(BIN)/python -m pytest cluster/tests --no-cov -rs

cluster-capacity: $(CLUSTER_STAMP) ## Requests/s through the cluster with wrk: one hot event vs many (~90 s)
	$(BIN)/python -m cluster.capacity

bench: $(BENCH_STAMP) ## Hot-event booking throughput beside the PostgreSQL ceiling (docs/performance.md)
	$(BIN)/python -m bench

migrate: $(STAMP) ## Apply database migrations (alembic upgrade head)
	$(BIN)/python -m app.operations.serve migrate

check: $(STAMP) ## Verify every event's invariants and its ledger (flask check); exit 1 on a mismatch
	$(BIN)/python -m app.operations.serve flask check

purge-keys: $(STAMP) ## Delete expired Idempotency-Keys (safe while serving; run it from cron)
	$(BIN)/python -m app.operations.serve flask purge-idempotency-keys

# AUTH_MODE=jwt without a key source: a token signed with the development key (refused in production).
token: $(STAMP) ## Print a development JWT: make token USER=alice [SCOPES="bookings:any events:admin"]
	@# USER must come from the command line: the environment's USER (the login name) is not meant.
	@test "$(origin USER)" = "command line" -a -n "$(USER)" || { echo 'usage: make token USER=alice [SCOPES="bookings:any"]' >&2; exit 2; }
	@$(BIN)/python -m app.operations.dev_keys token "$(USER)" --scopes "$(SCOPES)"

# pip config is bypassed so that the locks name only packages and hashes from the public index.
PIP_COMPILE := env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL -u PIP_CONSTRAINT PIP_CONFIG_FILE=/dev/null \
  $(BIN)/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links

# Each lock is constrained by the one it is installed on top of, so a package they share has one version.
lock: $(STAMP) ## Re-resolve pyproject.toml into requirements.lock and the dev, bench and cluster locks
	$(BIN)/python -m pip install --quiet pip-tools
	$(PIP_COMPILE) -o requirements.lock pyproject.toml
	$(PIP_COMPILE) --extra dev -c requirements.lock -o requirements-dev.lock pyproject.toml
	$(PIP_COMPILE) --extra bench -c requirements-dev.lock -o requirements-bench.lock pyproject.toml
	$(PIP_COMPILE) --extra cluster -c requirements-dev.lock -o requirements-cluster.lock pyproject.toml

clean: ## Remove the virtualenv and caches (keeps instance/ and its data)
	rm -rf $(VENV) .pytest_cache .ruff_cache .import_linter_cache .coverage .coverage.* htmlcov
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

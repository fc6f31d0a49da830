# Two commands on a fresh machine with only Python 3.11 and make: `make run`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp-install
PG_STAMP := $(VENV)/.stamp-postgres
CHROMIUM_STAMP := $(VENV)/.stamp-chromium
export ASYNCTASK_HOME ?= $(CURDIR)/.asynctask

.PHONY: venv run stop test test-fast test-slow lint format bench bench-peers bench-compare soak clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# PostgreSQL's binaries for the store tests' private cluster (tests/pgcluster.py): found, or
# installed from Debian's packages. Where that cannot be done (no apt-get, not root, offline)
# `make test` goes on and the PostgreSQL tests skip, each saying why; the stamp is then not
# written, so the next run tries again.
$(PG_STAMP): scripts/install-postgres | $(STAMP)
	@if bash scripts/install-postgres; then touch $@; else \
	  echo "make: no PostgreSQL here; the PostgreSQL tests will skip with the reason" >&2; fi

# Headless Chromium for the web console's browser tests, the same way: they skip with the
# reason when it cannot be installed.
$(CHROMIUM_STAMP): scripts/install-chromium | $(STAMP)
	@if bash scripts/install-chromium; then touch $@; else \
	  echo "make: no Chromium here; the browser tests will skip with the reason" >&2; fi

## Start the daemon (home ./.asynctask) and run the demo workload from examples/.
run: $(STAMP)
	@$(BIN)/python examples/demo.py --start-daemon

## Stop the daemon that `make run` started: it drains, and this returns once it has exited
## (`asynctask stop`), so `make stop && make run` works.
stop: $(STAMP)
	@if [ -f $(ASYNCTASK_HOME)/daemon.pid ]; then $(BIN)/python -m asynctask stop; else echo "no daemon running in $(ASYNCTASK_HOME)"; fi

## Lint, type-check, architecture contracts, then the whole suite except `slow` tests.
test: lint test-fast

test-fast: $(STAMP) $(PG_STAMP) $(CHROMIUM_STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: $(STAMP) $(PG_STAMP) $(CHROMIUM_STAMP)
	$(BIN)/python -m pytest -m slow -q

lint: $(STAMP)
	$(BIN)/ruff check asynctask tests benchmarks examples
	$(BIN)/ruff format --check asynctask tests benchmarks examples
	$(BIN)/python scripts/unasync.py --check  # the blocking client is generated from the async one
	$(BIN)/python scripts/taskfields.py --check  # every list of a task's fields is generated from asynctask/taskfields.py
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix asynctask tests benchmarks examples
	$(BIN)/ruff format asynctask tests benchmarks examples

## Throughput and latency figures (prints; asserts no times).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_daemon.py
	$(BIN)/python benchmarks/bench_core.py
	$(BIN)/python benchmarks/bench_store.py
	$(BIN)/python benchmarks/bench_commit_floor.py
	$(BIN)/python benchmarks/bench_poison.py
	$(BIN)/python benchmarks/bench_sandbox.py
	$(BIN)/python benchmarks/bench_history.py
	$(BIN)/python benchmarks/bench_top.py
	$(BIN)/python benchmarks/bench_tenants.py
	$(BIN)/python benchmarks/bench_request_cpu.py

## The reliability battery with full counts (~5 min): power cuts replayed from the daemon's
## write journal (durability normal vs full), 30 kill -9s of the daemon plus worker kills, a
## disk-full tmpfs (root) and an fsync-EIO run, 3 min of a mixed failure load sampling
## RSS/fds/threads/WAL, and hostile clients (peak RSS, event-loop stall). Writes benchmarks/RELIABILITY.md; exits 1 when
## a check found a broken promise. Short runs of each are in `make test` (tests/reliability/).
## Smaller: make soak SOAK_ARGS="--kills 5 --mixed-duration 30 --hostile-scale 0.3"
SOAK_ARGS ?=
soak: $(STAMP)
	$(BIN)/python -m benchmarks.reliability.soak $(SOAK_ARGS)

## The peer task queues (Huey, Celery, Dramatiq, RQ, arq, taskiq, SAQ, procrastinate) on this
## machine, same workloads; prints a table (~25 min with 3 reps). Installs redis-server,
## .venv-peers* and PostgreSQL (procrastinate's broker: the tests' private cluster) if
## missing. Smoke run: make bench-peers PEER_ARGS="--reps 1 --quick"
PEER_ARGS ?= --reps 3
bench-peers: $(STAMP) $(PG_STAMP)
	PYTHON=$(PYTHON) bash benchmarks/peers/setup.sh
	.venv-peers/bin/python benchmarks/peers/run.py $(PEER_ARGS)

## Ours and the peers in one go, then one table with the ratio ours / best peer per workload
## (~35 min). Quicker: make bench-compare PEER_ARGS="--reps 1 --quick" OUR_ARGS="--reps 1 --quick"
OUR_ARGS ?= --reps 3
bench-compare: $(STAMP) bench-peers
	$(BIN)/python benchmarks/bench_daemon.py $(OUR_ARGS)
	$(BIN)/python benchmarks/compare.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build *.egg-info

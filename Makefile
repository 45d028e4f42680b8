# Paymesh: two commands on a fresh machine.
#   make run    start everything (embedded Postgres + Redis unless configured) with demo data
#   make test   the whole suite (embedded servers unless PAYMESH_TEST_* point at real ones)
#   make bench  the benchmark table (figure, reference, ratio measured in the same run)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2

.PHONY: run test bench venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/paymesh demo

test: $(STAMP)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .paymesh

# make simulate   the money simulation, long: 100,000 random operations (SIM_OPS), the whole
#                 database checked every SIM_FULL_EVERY steps (the touched order every step);
#                 PAYMESH_SIM_SEED=<seed> replays a run
SIM_OPS ?= 100000
SIM_FULL_EVERY ?= 100
.PHONY: simulate
simulate: $(STAMP)
	PAYMESH_SIM_OPS=$(SIM_OPS) PAYMESH_SIM_FULL_EVERY=$(SIM_FULL_EVERY) $(BIN)/python -m pytest \
		-n 0 -q -s -p no:cacheprovider tests/workers/test_money_simulation.py \
		-k test_every_cent_is_accounted_for

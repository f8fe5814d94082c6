# sqltargets: the verbs. `make demo` and `make test` are the quick start.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
DEMO := .demo
DEMO_USERS ?= 2000

.PHONY: venv demo test lint format bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[dev,torch,plot]'
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	mkdir -p $(DEMO)
	$(BIN)/sqltargets demo-data --users $(DEMO_USERS) --out $(DEMO)/data --seed 7
	$(BIN)/sqltargets validate examples/demo.yaml
	@echo "--- the native program: DuckDB prologue, then one kernel per target ---"
	$(BIN)/sqltargets explain examples/demo.yaml --input $(DEMO)/data
	@echo "--- the portable SQL (runs unchanged in the duckdb shell and, with --dialect spark, in Spark) ---"
	$(BIN)/sqltargets explain examples/demo.yaml --input $(DEMO)/data --engine sql
	$(BIN)/sqltargets run examples/demo.yaml --input $(DEMO)/data --output $(DEMO)/targets.parquet --summary
	$(BIN)/sqltargets verify examples/demo.yaml --input $(DEMO)/data --users 5
	@echo "--- the targets described: statistics, redundancy, coverage (and an HTML report) ---"
	$(BIN)/sqltargets describe examples/demo.yaml --input $(DEMO)/data --html $(DEMO)/report.html

test: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n auto --dist loadgroup

bench: venv
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python bench/bench_targets.py
	$(BIN)/python bench/bench_torch.py --repeat 3

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache .hypothesis

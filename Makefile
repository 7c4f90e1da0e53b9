# plg-bridge: `make demo` shows the whole flow, `make test` runs the whole suite.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format bench install clean constraints

$(STAMP): requirements.txt requirements-dev.txt constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python scripts/demo.py

# Under CI (the CI variable every CI service sets, or .ci/run) the end-to-end tests are required:
# without PostgreSQL or Redis they fail instead of skipping.
test: $(STAMP)
	PLG_E2E_REQUIRE=$(if $(CI),1,$(PLG_E2E_REQUIRE)) $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/delivery.py

# Refresh the pinned set after changing requirements*.txt (needs a clean venv).
constraints:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^plg-bridge' > constraints.txt

clean:
	rm -rf .demo .bench $(VENV)

# The two commands a new user types: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export LINERNOTES_HOME ?= $(CURDIR)/.linernotes
PORT ?= 8000

.PHONY: setup demo test ui serve bench clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	@$(VENV)/bin/linernotes demo

test: setup
	@$(PY) -m pytest -q $(PYTEST_ARGS)

ui: setup
	@DAGSTER_HOME=$(LINERNOTES_HOME)/dagster $(VENV)/bin/dagster dev -w workspace.yaml

serve: setup
	@$(VENV)/bin/linernotes serve --port $(PORT)

bench: setup
	@for b in bench/*.py; do $(PY) $$b; done

clean:
	rm -rf $(LINERNOTES_HOME)

# Two commands do all set-up on a fresh machine: `make up` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up down status test install clean-var

$(STAMP): pyproject.toml
	@command -v java >/dev/null || { echo "error: Java not found: install a JDK >= 17 (apt-get install -y openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "error: Maven not found: install it (apt-get install -y maven)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

up: $(STAMP)
	$(BIN)/kowalski up

down:
	@if [ -x $(BIN)/kowalski ]; then $(BIN)/kowalski down; fi

status: $(STAMP)
	$(BIN)/kowalski status

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean-var: down
	rm -rf var

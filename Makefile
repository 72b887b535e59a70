# Two commands do all set-up on a fresh machine: `make up` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up down status test install hub-deps test-deps clean-var compose-test compose-up compose-down images images-lock

# JupyterHub's proxy (npm) and the browser of the hub's browser test (Debian's chromium; Playwright
# never downloads one). Versions as in ../shared/reference/local-services.md.
CHP      := var/lib/chp/node_modules/.bin/configurable-http-proxy
CHROMIUM := /usr/bin/chromium

$(STAMP): pyproject.toml
	@command -v java >/dev/null || { echo "error: Java not found: install a JDK >= 17 (apt-get install -y openjdk-17-jre-headless)"; exit 1; }
	@command -v mvn >/dev/null || { echo "error: Maven not found: install it (apt-get install -y maven)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

$(CHP):
	@command -v npm >/dev/null || { echo "error: npm not found: install Node.js and npm (apt-get install -y nodejs npm)"; exit 1; }
	npm install --silent --no-fund --no-audit --prefix var/lib/chp configurable-http-proxy@5.3.0

hub-deps: $(CHP)

$(CHROMIUM):
	@[ "$$(id -u)" = 0 ] || { echo "error: chromium not found: install it (sudo apt-get install -y chromium)"; exit 1; }
	apt-get install -y -q chromium || { apt-get update -q && apt-get install -y -q chromium; }

test-deps: $(STAMP) $(CHP) $(CHROMIUM)

up: $(STAMP) $(CHP)
	$(BIN)/kowalski up

down:
	@if [ -x $(BIN)/kowalski ]; then $(BIN)/kowalski down; fi

status: $(STAMP)
	$(BIN)/kowalski status

test: test-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean-var: down
	rm -rf var

# Containers (not part of `make test`: a first build takes minutes). Needs root or a running Docker
# engine; installs docker.io, docker-compose and debootstrap from Debian when missing.
images:
	images/compose.sh build

compose-up: $(STAMP)
	images/compose.sh up

compose-test: $(STAMP)
	images/compose.sh test

compose-down:
	images/compose.sh down

# after changing pyproject.toml's dependencies: re-pin what the images install
images-lock:
	images/lock.sh

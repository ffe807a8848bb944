# wsfleet: `make run` starts a node on its embedded default; `make test` installs what the tests
# need and runs every check CI runs. Both work on a fresh Debian machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMPS := .stamps
JS := clients/js
JS_BUNDLE := service/wsfleet/demo/static/wsfleet-client.js

.PHONY: run test lint typecheck pytest js-test bench chaos deps system-deps venv run-venv js-build interop-deps k8s-deps clean

# `make run` installs only what running needs (`pip install -e .`); the test toolchain comes with
# `make test` (the dev extra), on top of the same virtualenv.
run: run-venv js-build
	$(VENV)/bin/wsfleet serve

test: deps lint typecheck pytest js-test

deps: system-deps venv js-build interop-deps k8s-deps

interop-deps: tests/interop/original-node/node_modules/.package-lock.json

tests/interop/original-node/node_modules/.package-lock.json: tests/interop/original-node/package-lock.json
	cd tests/interop/original-node && npm ci --no-audit --no-fund --loglevel=error

# kube-apiserver, etcd, kube-controller-manager, kube-scheduler, kubectl and helm for the tests,
# built once per machine from their Go modules into a cache outside the checkout.
# Without Go this only warns (the k8s tests then skip), unless WSFLEET_REQUIRE_K8S=1 (CI).
k8s-deps:
	@bash tools/k8s-controlplane/build.sh || { \
	  if [ "$${WSFLEET_REQUIRE_K8S:-}" = 1 ]; then exit 1; fi; \
	  echo "Warning: no Kubernetes tools, so the tests in tests/k8s, tests/k8s_e2e and tests/chart will be skipped (WSFLEET_REQUIRE_K8S=1 makes this an error)." >&2; }

system-deps:
	@bash tools/ensure-system-deps.sh

venv: $(STAMPS)/venv

run-venv: $(STAMPS)/run-venv

$(STAMPS)/run-venv: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11+ is required: install python3 (e.g. apt-get install python3 python3-venv)." >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11 or newer is required, found $$($(PYTHON) --version)." >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { echo "Cannot create a virtualenv: install python3-venv." >&2; exit 1; }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	@mkdir -p $(STAMPS) && touch $@

$(STAMPS)/venv: $(STAMPS)/run-venv
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

js-build: $(JS_BUNDLE)

$(JS_BUNDLE): $(wildcard $(JS)/src/*.ts) $(JS)/package.json
	@command -v npm >/dev/null || { echo "npm is required to build the browser client: install Node.js 20+ and npm." >&2; exit 1; }
	cd $(JS) && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent
	cp $(JS)/dist/wsfleet-client.min.js $(JS_BUNDLE)

lint: venv
	$(VENV)/bin/ruff check service operator tests bench examples chaos
	$(VENV)/bin/ruff format --check service operator tests bench examples chaos

typecheck: venv
	$(VENV)/bin/mypy
	MYPYPATH=service $(VENV)/bin/mypy chaos

pytest: venv interop-deps
	$(PY) -m pytest -q
	# the server-facing tests again on the aiohttp WebSocket engine, with its direct frame hook
	WSFLEET_WEBSOCKET_ENGINE=aiohttp $(PY) -m pytest -q tests/integration tests/unit
	# and on aiohttp's public read path (the fallback of the hook)
	WSFLEET_WEBSOCKET_ENGINE=aiohttp WSFLEET_WS_PATH=public $(PY) -m pytest -q tests/integration tests/unit

js-test: js-build
	cd $(JS) && WSFLEET_BIN=$(CURDIR)/$(VENV)/bin/wsfleet npm test --silent

bench: venv
	$(PY) -m bench.run

# The chaos and soak suite (not part of `make test`): real nodes and redis-servers on loopback,
# faults injected while traffic flows, a table of figures. SOAK_MINUTES=0 skips the soak.
SOAK_MINUTES ?= 10
chaos: venv
	$(PY) -m chaos.run --soak-minutes $(SOAK_MINUTES)

clean:
	rm -rf $(STAMPS) $(VENV) $(JS)/node_modules $(JS)/dist $(JS_BUNDLE)

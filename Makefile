# Two entry points (README): `make serve` and `make test`. Each does its own set-up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt client/pyproject.toml | sha256sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: serve serve-deploy test archives weights weights-status venv java lint lint-check clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e client  # the `imagelab` CLI
	rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

java:
	@command -v java >/dev/null 2>&1 || { echo "TorchServe 0.12 needs Java 17: install it (Debian: apt-get install openjdk-17-jre-headless)"; exit 1; }
	@java -version 2>&1 | head -1 | grep -Eq '"(1[7-9]|[2-9][0-9])[."]' || { echo "TorchServe 0.12 needs Java 17 or newer; found: $$(java -version 2>&1 | head -1)"; exit 1; }

# Three rooms, three CLIs: weights (`python -m weightstore`), archives (`python -m archiver`),
# operations (`python -m operations`: serving and the version lifecycle).
weights: venv
	$(PY) -m weightstore synth

weights-status: venv
	$(PY) -m weightstore status
	$(PY) -m archiver status

archives: venv
	$(PY) -m archiver build

serve: venv java archives
	$(PY) -m operations serve

# The same server with the model-management API open, for `python -m operations deploy`.
serve-deploy: venv java archives
	$(PY) -m operations serve --allow-deploy

test: venv java weights frontend-deps lint-check
	$(PY) -m pytest $(PYTEST_ARGS)

# ruff (STYLE.md): `make lint` checks and formats; `make test` runs the check.
lint-check: venv
	$(VENV)/bin/ruff check .

lint: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf model_store/*.mar var/

# Load tests and benchmarks (loadtests/). `make loadtest` runs against a server that is already
# up (`make serve` in another terminal): warm-up, then locust headless, then a pass/fail summary.
#   make loadtest USERS=8 SPAWN_RATE=2 DURATION=5m LOADTEST_PROFILE=real P95_MS=fast_style=5000
# `make bench` measures on demand and rewrites BENCHMARKS.md (BENCH_ARGS=--quick for a sanity run).
LOADTEST_HOST ?= http://127.0.0.1:8080
LOADTEST_KEY_FILE ?= var/serve/key_file.json
USERS ?= 4
SPAWN_RATE ?= 1
DURATION ?= 2m
WARMUP_ROUNDS ?= 2
STOP_TIMEOUT ?= 900s
MAX_FAILURE_RATIO ?= 0.01
P95_MS ?= fast_style=15000,neural_style=300000,txt2img=600000,animals=600000
REQUIRE ?=
REPORTS ?= reports
BENCH_ARGS ?=
export LOADTEST_KEY_FILE

.PHONY: loadtest bench

loadtest: venv
	mkdir -p $(REPORTS)
	$(PY) loadtests/warmup.py --host $(LOADTEST_HOST) --rounds $(WARMUP_ROUNDS)
	$(PY) -m locust -f loadtests/locustfile.py --headless --host $(LOADTEST_HOST) \
	    -u $(USERS) -r $(SPAWN_RATE) -t $(DURATION) --stop-timeout $(STOP_TIMEOUT) \
	    --csv $(REPORTS)/loadtest --html $(REPORTS)/loadtest.html --exit-code-on-error 0 --only-summary
	$(PY) loadtests/summary.py $(REPORTS)/loadtest_stats.csv --max-failure-ratio $(MAX_FAILURE_RATIO) \
	    --p95-ms "$(P95_MS)" --require "$(REQUIRE)"

bench: venv java weights
	$(PY) -m loadtests.bench.run $(BENCH_ARGS)

# Web playground (frontend/ + gateway/). `make ui` builds the app when its sources changed and
# serves it on http://127.0.0.1:$(UI_PORT) in front of the `make serve` server (start that
# first); the gateway reads the tokens from var/serve/key_file.json, the browser never sees them.
UI_PORT ?= 8090
FRONTEND_SOURCES := $(shell find frontend/src -type f 2>/dev/null) frontend/index.html frontend/vite.config.js frontend/package.json

.PHONY: ui

frontend/node_modules/.package-lock.json: frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund
	touch $@

frontend/dist/index.html: frontend/node_modules/.package-lock.json $(FRONTEND_SOURCES)
	cd frontend && npm run build

ui: venv frontend/dist/index.html
	$(PY) -m gateway --port $(UI_PORT) --inference http://127.0.0.1:8080 --management http://127.0.0.1:8081 \
	    --key-file var/serve/key_file.json

# The playground's browser tests need Debian's chromium and the built app; without chromium
# (no apt here) those tests skip and say why, the rest of the suite runs.
.PHONY: frontend-deps
frontend-deps:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || echo "chromium could not be installed: the playground's browser tests will skip"
	$(MAKE) frontend/dist/index.html

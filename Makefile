# Two entry points (README): `make serve` and `make test`. Each does its own set-up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.txt | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: serve serve-deploy test archives weights weights-status venv java lint clean

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

java:
	@command -v java >/dev/null 2>&1 || { echo "TorchServe 0.12 needs Java 17: install it (Debian: apt-get install openjdk-17-jre-headless)"; exit 1; }
	@java -version 2>&1 | head -1 | grep -Eq '"(1[7-9]|[2-9][0-9])[."]' || { echo "TorchServe 0.12 needs Java 17 or newer; found: $$(java -version 2>&1 | head -1)"; exit 1; }

weights: venv
	$(PY) -m archiver weights synth

weights-status: venv
	$(PY) -m archiver weights status

archives: venv
	$(PY) -m archiver build

serve: venv java archives
	$(PY) -m archiver serve

# The same server with the model-management API open, for `python -m archiver deploy`.
serve-deploy: venv java archives
	$(PY) -m archiver serve --allow-deploy

test: venv java weights
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf model_store/*.mar var/

# Every target installs what it needs first: on a fresh machine `make serve` or
# `make test` is all there is to type.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SERVE_VENV := .venv-serve
PORT ?= 8080
HOST ?= 127.0.0.1
MODEL_NAME := $(shell $(PYTHON) -c 'import json; print(json.load(open("model.json"))["name"])' 2>/dev/null)
# What ships in archive.zip: the one list of it is .gcloudignore, which gcloud reads too.
ARCHIVE_FILES := $(shell $(PYTHON) scripts/shipped.py)
# Debian packages some targets need: Chromium for the browser tests, wrk for load.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
APT_INSTALL := $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends
# Each CPython 3.11+ that pyenv has here (else $(PYTHON)): the deploy rehearsal runs on each.
VERIFY_PYTHONS ?= $(or $(wildcard $(HOME)/.pyenv/versions/3.1[1-9].*/bin/python3),$(PYTHON))
REGION ?= us-central1
MEMORY ?= 256Mi
RUNTIME ?= python312

.DEFAULT_GOAL := help
.PHONY: help install tools train package test serve archive verify wheels bench bench-tiers bench-compare soak deploy bigquery-sql screenshot clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

install: $(VENV)/test-installed $(SERVE_VENV)/installed ## make .venv (tools and tests) and .venv-serve (the function's requirements alone)

tools: $(VENV)/tools-installed ## make .venv with what train.py and package.py need (and the README's data and calls)

# .venv: the tools (train.py, package.py) from requirements-tools.txt; the tests add requirements-test.txt.
$(VENV)/tools-installed: requirements.txt requirements-tools.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-tools.txt
	touch $@

$(VENV)/test-installed: $(VENV)/tools-installed requirements-test.txt
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	touch $@

# .venv-serve: requirements.txt alone, as Cloud Functions builds it: what make serve runs, and bench measures.
$(SERVE_VENV)/installed: requirements.txt
	test -x $(SERVE_VENV)/bin/python || $(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/python -m pip install --quiet -r requirements.txt
	touch $@

chromium:
	@command -v chromium >/dev/null || { $(APT_INSTALL) chromium; }

wrk:
	@command -v wrk >/dev/null || { $(APT_INSTALL) wrk; }

train: $(VENV)/tools-installed ## fit a pipeline on iris, or DATA=file.csv TARGET=column [TASK= DROP=a,b SEP=';' OUT=folder]
	@$(BIN)/python train.py $(if $(DATA),--data "$(DATA)" --target "$(TARGET)") $(if $(TASK),--task "$(TASK)") \
		$(if $(DROP),--drop "$(DROP)") $(if $(SEP),--sep "$(SEP)") $(if $(OUT),--out "$(OUT)")

# TRUST= names the libraries whose code the pickle may run (scikit-learn, xgboost): only for a file you made.
package: $(VENV)/tools-installed ## describe a pipeline made elsewhere: MODEL=model.pkl [DATA=sample.csv TARGET= TRUST=scikit-learn MODULES=a.py CLASS_NAMES=a,b NAME= OUT=]
	@$(BIN)/python package.py "$(MODEL)" $(if $(DATA),--data "$(DATA)") $(if $(TARGET),--target "$(TARGET)") \
		$(if $(TRUST),--trust "$(TRUST)") $(if $(MODULES),--modules "$(MODULES)") $(if $(CLASS_NAMES),--class-names "$(CLASS_NAMES)") \
		$(if $(NAME),--name "$(NAME)") $(if $(OUT),--out "$(OUT)")

test: install chromium ## run every test
	$(BIN)/python -m pytest

serve: $(SERVE_VENV)/installed ## serve the function on http://127.0.0.1:8080 (PORT=, and HOST=0.0.0.0 to be reachable from elsewhere)
	@echo "serving model.pkl ($(MODEL_NAME)) on http://$(HOST):$(PORT) (Ctrl-C stops it)"
	@$(SERVE_VENV)/bin/functions-framework --target predict --source main.py --host $(HOST) --port $(PORT)

archive: archive.zip ## build archive.zip, the upload for Cloud Functions

archive.zip: .gcloudignore $(ARCHIVE_FILES)
	rm -f $@
	$(PYTHON) scripts/shipped.py --zip $@
	@echo "built $@: $(words $(ARCHIVE_FILES)) files, as .gcloudignore lists them"

verify: archive.zip ## rehearse a deploy: unzip, fresh venv, install, serve, call (each local Python 3.11+)
	@for python in $(VERIFY_PYTHONS); do $(PYTHON) scripts/verify.py archive.zip --python $$python || exit 1; done
	$(PYTHON) scripts/wheels.py requirements.txt

wheels: ## which Cloud Functions runtimes have wheels for every pin
	$(PYTHON) scripts/wheels.py requirements.txt

bench: install wrk ## speed, cold start and memory against their floors, then on each tier (about 50 minutes)
	$(BIN)/python bench/bench.py; full_cores=$$?; $(BIN)/python bench/tiers.py && exit $$full_cores

bench-tiers: install ## the tiers part of make bench alone: each kind of model as data, beside scikit-learn, on 128 and 256 MiB (cgroups; about 30 minutes)
	$(BIN)/python bench/tiers.py

bench-compare: install wrk ## main.py at COMMITS="..." beside today's and the floors: which commit moved a ratio
	COMMITS="$(COMMITS)" $(BIN)/python bench/compare.py

soak: install wrk ## 60 s of load at 16 connections: errors and memory growth
	$(BIN)/python bench/soak.py

deploy: archive.zip ## gcloud functions deploy archive.zip (MEMORY=256Mi, PUBLIC=1 to allow unauthenticated calls, DRY_RUN=1 to print only)
	@FUNCTION=$(FUNCTION) REGION=$(REGION) RUNTIME=$(RUNTIME) MEMORY=$(MEMORY) PUBLIC=$(PUBLIC) DRY_RUN=$(DRY_RUN) \
		$(PYTHON) scripts/deploy.py archive.zip

bigquery-sql: ## print the CREATE FUNCTION statement for BigQuery (PROJECT= DATASET= CONNECTION= REGION= FUNCTION=)
	@$(PYTHON) scripts/bigquery_sql.py model.json

screenshot: install chromium ## save docs/page.png, the try-it page after a prediction
	SCREENSHOT=docs/page.png $(BIN)/python -m pytest -q tests/test_browser.py -k test_page_predicts

clean: ## remove the virtual environments, archive.zip and caches
	rm -rf $(VENV) $(SERVE_VENV) archive.zip build .pytest_cache .hypothesis bench/results
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

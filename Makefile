# Every target installs what it needs first: on a fresh machine `make serve` or
# `make test` is all there is to type.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
ARCHIVE_FILES := main.py model_loader.py validation.py openapi.py page.html model.pkl model.json requirements.txt

.DEFAULT_GOAL := help
.PHONY: help install train test serve archive clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(VENV)/installed ## make .venv from requirements.txt and requirements-dev.txt

$(VENV)/installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

train: install ## fit the pipeline on iris (or DATA=file.csv TARGET=column) -> model.pkl, model.json
	$(BIN)/python train.py $(if $(DATA),--data "$(DATA)" --target "$(TARGET)")

test: install ## run every test
	$(BIN)/python -m pytest

serve: install ## serve the function on http://127.0.0.1:$(PORT) (PORT=8080 by default)
	$(BIN)/functions-framework --target predict --source main.py --port $(PORT)

archive: archive.zip ## build archive.zip, the upload for Cloud Functions

archive.zip: $(ARCHIVE_FILES)
	rm -f $@
	zip -X -q $@ $(ARCHIVE_FILES)
	@echo "built $@: $(ARCHIVE_FILES)"

clean: ## remove .venv, archive.zip and caches
	rm -rf $(VENV) archive.zip .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

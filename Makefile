# django-pluginlab: the two commands a newcomer needs are `make demo` and `make test`.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test test-sqlite test-postgres lint bench clean venv

## Create the virtualenv and install everything (skipped when up to date).
$(STAMP): requirements/base.txt requirements/test.txt requirements/dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.txt
	touch $(STAMP)

venv: $(STAMP)

## Run the demo site on http://127.0.0.1:8000/ against a local sandbox (Ctrl-C stops all).
demo: $(STAMP)
	$(PY) -m demo_project.run_demo

## The whole test suite: SQLite (everything, headless Chromium included), then PostgreSQL.
test: test-sqlite test-postgres

test-sqlite: $(STAMP)
	$(PY) -m tests.services --redis -- $(PY) -m pytest

test-postgres: $(STAMP)
	$(PY) -m tests.services --postgres --redis -- $(PY) -m pytest -m "not browser"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

## Benchmarks (not part of CI): each prints its figures and the ratio to its target.
bench: $(STAMP)
	for script in benchmarks/*.py; do \
	  case $$script in */settings*.py|*/_*.py) continue;; esac; \
	  echo "== $$script"; $(PY) $$script || exit 1; \
	done

clean:
	rm -rf $(VENV) build dist *.egg-info demo_project/db.sqlite3* tests/artifacts

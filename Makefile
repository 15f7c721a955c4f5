# django-pluginlab: the two commands a newcomer needs are `make demo` and `make test`.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test preflight test-sqlite test-postgres test-compat lint typecheck bench clean venv
.PHONY: test-compat-dj42 test-compat-dj6 venv-compat

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

## The whole test suite: SQLite (everything, headless Chromium included), then PostgreSQL
## (what depends on the database: tests marked no_db are the SQLite leg's alone).
## `make -j2 test` runs the two legs side by side, as .ci/run does.
test: preflight test-sqlite test-postgres

## PostgreSQL, Redis and Chromium present? As root with apt: installs what is
## missing; otherwise prints the one install command and stops.
preflight:
	$(PYTHON) tests/preflight.py

# Each leg has its own servers (tests.throwaway_servers), database and temporary
# directory, so legs can run side by side (make -j2); each line a leg prints
# starts with its name, and pipefail keeps pytest's exit status.
LEGS := test-sqlite test-postgres test-compat-dj42 test-compat-dj6
$(LEGS): SHELL := /bin/bash
$(LEGS): .SHELLFLAGS := -o pipefail -c
LABEL = 2>&1 | sed -u 's/^/[$@] /'

test-sqlite: $(STAMP) | preflight
	$(PY) -m tests.throwaway_servers --redis -- $(PY) -m pytest $(LABEL)

test-postgres: $(STAMP) | preflight
	$(PY) -m tests.throwaway_servers --postgres --redis -- $(PY) -m pytest -m "not browser and not no_db" $(LABEL)

## ruff, migrations in step with the models, and mypy (CI runs it: a type error fails it).
lint: $(STAMP) typecheck
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	DJANGO_SETTINGS_MODULE=tests.settings $(PY) -m django makemigrations --check --dry-run pluginlab_django

## mypy with django-stubs and djangorestframework-stubs (config in setup.cfg).
typecheck: $(STAMP)
	$(VENV)/bin/mypy pluginlab_django

## Benchmarks (not part of CI): each prints its figures and the ratio to its target.
## The scripts are the modules with a __main__ block; the rest are their settings, URLconfs, apps.
bench: $(STAMP)
	for script in benchmarks/*.py; do \
	  grep -q '^if __name__ == "__main__"' $$script || continue; \
	  echo "== $$script"; $(PY) $$script || exit 1; \
	done

clean:
	rm -rf $(VENV) .venv-dj42 .venv-dj6 build dist *.egg-info demo_project/db.sqlite3* tests/artifacts

## Other supported stacks (run by .ci/run after `make test`): Django 4.2 on
## Python 3.10 and Django 6 on Python 3.12, the fast tests on SQLite.
PY310 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.10*/bin/python3.10) $(shell command -v python3.10))
PY312 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) $(shell command -v python3.12))
COMPAT_TESTS := -m "not browser and not slow and not celery_worker" -p no:cacheprovider

.venv-dj42/.installed: requirements/base.txt requirements/test.txt
	test -x .venv-dj42/bin/python || $(PY310) -m venv .venv-dj42
	.venv-dj42/bin/python -m pip install --quiet -r requirements/test.txt "Django>=4.2,<5"
	touch $@

.venv-dj6/.installed: requirements/base.txt requirements/test.txt
	test -x .venv-dj6/bin/python || $(PY312) -m venv .venv-dj6
	.venv-dj6/bin/python -m pip install --quiet -r requirements/test.txt "Django>=6,<7"
	touch $@

venv-compat: .venv-dj42/.installed .venv-dj6/.installed

## `make -j2 test-compat` runs the two legs side by side.
test-compat: test-compat-dj42 test-compat-dj6

test-compat-dj42: .venv-dj42/.installed
	.venv-dj42/bin/python -m pytest $(COMPAT_TESTS) $(LABEL)

test-compat-dj6: .venv-dj6/.installed
	.venv-dj6/bin/python -m pytest $(COMPAT_TESTS) $(LABEL)

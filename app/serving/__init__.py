"""Launching the server: `make run`'s launcher, the local stand-in model, several instances, gunicorn's log lines."""

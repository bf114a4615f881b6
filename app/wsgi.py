"""The WSGI entry point gunicorn loads (`app.wsgi:app`); its gevent worker has monkey-patched already."""

from . import create_app

app = create_app()

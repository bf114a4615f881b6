"""The WSGI middlewares ChatRelay wraps around the app: each refuses before Flask routes."""

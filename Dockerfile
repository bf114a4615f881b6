# The relay as it runs in production: gunicorn with gunicorn.conf.py (one gevent worker) and the built page,
# in front of a real upstream (OPENAI_API_KEY or OPENAI_BASE_URL). No local model: that is `make run`'s stand-in.
#
#   docker build -t chat-relay .
#   docker run --stop-timeout 30 -p 8000:8000 -e OPENAI_API_KEY=sk-... -e ALLOWED_HOSTS=chat.example.com chat-relay
#
# The install and start commands are those of the Makefile (`make build`, requirements.txt) and of the README
# (`gunicorn -c gunicorn.conf.py`); tests/unit/test_dockerfile.py keeps them so, and `make lint` runs hadolint on it.

# The page, built as `make build` builds it.
FROM node:22-slim AS page
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0 \
    PORT=8000
WORKDIR /srv/chat-relay
COPY requirements.txt ./
RUN pip install -r requirements.txt
COPY gunicorn.conf.py ./
COPY app/ app/
COPY chat_relay/ chat_relay/
COPY --from=page /src/frontend/dist frontend/dist
# Never root: a user of its own, without a login shell or a home to write into.
RUN groupadd --system --gid 10001 relay \
    && useradd --system --no-log-init --uid 10001 --gid relay --shell /usr/sbin/nologin relay
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=4)"]
# SIGTERM drains the streams within SHUTDOWN_GRACE, 20 s by default (README, "Shutdown"); `docker stop` kills
# after 10 s unless told more: run it with --stop-timeout 30, or set SHUTDOWN_GRACE below 10.
STOPSIGNAL SIGTERM
ENTRYPOINT ["gunicorn", "-c", "gunicorn.conf.py"]

# meshbot's image: the web service by default (`meshbot serve`); the same image runs `meshbot worker` and the
# reference adapter (`meshbot adapter serve`): docker-compose.yml, docs/running.md.
#
# The install is ./dev's, step for step (tests/test_packaging.py compares them): every library from
# requirements.lock, each file checked against its recorded hash, then meshbot itself without dependencies,
# built by the locked setuptools, then `pip check`. The lock includes the test extra (one lock for all).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/meshbot \
    PATH=/opt/meshbot/bin:$PATH \
    MESHBOT_HOME=/var/lib/meshbot

RUN groupadd --system --gid 10001 meshbot \
    && useradd --system --uid 10001 --gid meshbot --home-dir /var/lib/meshbot --shell /usr/sbin/nologin meshbot \
    && install -d -o meshbot -g meshbot -m 0700 /var/lib/meshbot \
    && install -d -o meshbot -g meshbot -m 0750 /var/lib/meshbot-adapter \
    && python -m venv /opt/meshbot

WORKDIR /app

# The locked libraries first: this layer is rebuilt only when the lock changes.
COPY requirements.lock ./
RUN python -m pip --disable-pip-version-check install --require-hashes -r requirements.lock

COPY . .
RUN python -m pip --disable-pip-version-check install --no-deps --no-build-isolation -e . \
    && python -m pip --disable-pip-version-check check

USER meshbot
EXPOSE 8080

# Liveness only (/healthz); a load balancer should route on /readyz (Redis and workers).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]

ENTRYPOINT ["meshbot"]
# In a container meshbot must listen beyond the loopback; the forges reach it through your reverse proxy.
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]

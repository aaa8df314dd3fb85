# syntax=docker/dockerfile:1
# rerank-operator image: the kopf operator process only (no GPU, no model weights).
#
#   docker build -t rerank-operator:0.1.0 .
#   docker run --rm rerank-operator:0.1.0 --help
#
# Stage 1 builds wheels for the package and every dependency; stage 2 installs them offline
# (--no-index) into a clean slim image, so no compiler, build backend cache or source tree ships.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The package uses a src-like layout: setuptools maps "" to operator/ (see pyproject.toml).
COPY pyproject.toml README.md ./
COPY operator/ ./operator/
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="rerank-operator" \
      org.opencontainers.image.description="Kubernetes operator that runs GPU-backed vLLM rerankers for Milvus and publishes verified ranker configs" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="rerank-operator maintainers"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/nonroot
# Wheels only, no index: exactly what the builder resolved gets installed, nothing is compiled.
# The wheels are bind-mounted (BuildKit), so they never become a layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/rerank_operator-*.whl \
    && groupadd --system --gid 65532 nonroot \
    && useradd --system --uid 65532 --gid 65532 --home-dir /home/nonroot --create-home \
       --shell /usr/sbin/nologin nonroot \
    && rerank-operator --version
USER 65532:65532
WORKDIR /home/nonroot
# 8080: kopf liveness (/healthz), 9090: Prometheus metrics (both only when enabled by flags).
EXPOSE 8080 9090
ENTRYPOINT ["rerank-operator", "run"]

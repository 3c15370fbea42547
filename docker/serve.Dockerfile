# The API and fleet page image: `wattstream serve` on 8080. It reads the aggregates table
# (GetItem, Query, BatchGetItem) and never writes; no Java, no box code.
#
#   docker build -f docker/serve.Dockerfile -t wattstream-serve .      # from the repo root

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

# The page's chart library from npm, copied into api/static/vendor (`npm run build`); no
# install scripts run, so the emulators' packages fetch nothing.
FROM ${NODE_IMAGE} AS web
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund && npm run build

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/wattstream
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY readings ./readings
COPY batcher ./batcher
COPY sinks ./sinks
COPY consumer ./consumer
COPY api ./api
COPY --from=web /src/api/static/vendor ./api/static/vendor
RUN /opt/wattstream/bin/pip install '.[api]'

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 wattstream \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin wattstream
COPY --from=build /opt/wattstream /opt/wattstream
ENV PATH=/opt/wattstream/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 WATTSTREAM_API_PORT=8080
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://localhost:%s/health' % os.environ.get('WATTSTREAM_API_PORT', '8080'), timeout=3)"]
CMD ["wattstream", "serve", "--host", "0.0.0.0"]

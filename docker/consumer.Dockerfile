# The consumer image: `wattstream consume`, i.e. the KCL MultiLangDaemon (Java 17) with one
# Python record processor per shard, and the Prometheus endpoint on 9108.
#
#   docker build -f docker/consumer.Dockerfile -t wattstream-consumer .      # from the repo root
#
# What the ECS task expects of it (docs/deploy.md, "The image"): `python`, `wattstream` and
# `java` on PATH, the KCL jars where amazon_kclpy finds them, uid/gid 10001, and
# /var/lib/wattstream and /tmp declared as volumes owned by that user (the task's root
# filesystem is read-only). The command is a plain CMD: the task's `command` replaces it.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# A C compiler for the compiled hot path (the decoder's plain path, the batcher's common step);
# only this stage has it, the image gets the built package.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/wattstream
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY readings ./readings
COPY batcher ./batcher
COPY sinks ./sinks
COPY consumer ./consumer
# Only the consumer's packages and dependencies: no box (device/, bridge/: paho, pymodbus,
# cryptography) and no local dev kit (devstack/). amazon-kclpy downloads the KCL jars from
# Maven Central while it is built. Check them here, so a build that could not fetch them
# fails now rather than the task at its first start; and so must a build whose hot path did
# not compile.
RUN /opt/wattstream/bin/pip install '.[consumer]' \
 && /opt/wattstream/bin/python -m consumer.jars --check \
 && /opt/wattstream/bin/python -c 'import batcher.batch as b, readings.decode as d; assert b.COMPILED and d.COMPILED, "hot path not compiled"'

FROM ${PYTHON_IMAGE}
# The man folder is missing from slim images and openjdk's postinst links its man pages there.
RUN mkdir -p /usr/share/man/man1 \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 wattstream \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/wattstream --no-create-home \
      --shell /usr/sbin/nologin wattstream \
 && mkdir -p /var/lib/wattstream/consumer /var/lib/wattstream/metrics \
 && chown -R 10001:10001 /var/lib/wattstream && chmod 1777 /tmp
COPY --from=build /opt/wattstream /opt/wattstream
ENV PATH=/opt/wattstream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WATTSTREAM_WORK_DIR=/var/lib/wattstream/consumer \
    WATTSTREAM_METRICS_DIR=/var/lib/wattstream/metrics \
    WATTSTREAM_METRICS_PORT=9108
WORKDIR /var/lib/wattstream
# ECS copies a VOLUME path's owner and mode from the image into the task's empty volume.
VOLUME ["/var/lib/wattstream", "/tmp"]
USER 10001:10001
EXPOSE 9108
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://localhost:%s/metrics' % os.environ.get('WATTSTREAM_METRICS_PORT', '9108'), timeout=3)"]
# Exec form: `wattstream consume` gets SIGTERM itself and passes it to the daemon, which has
# every processor flush and checkpoint. Run it under an init (`docker run --init`, compose
# `init: true`, ECS initProcessEnabled) so orphaned processors are reaped.
CMD ["wattstream", "consume"]

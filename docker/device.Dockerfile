# The box image: `wattstream device run` (one box), `wattstream device simulate` (a virtual
# fleet), `wattstream bridge` (the local IoT Core rule) and `wattstream certs`. No Java.
#
#   docker build -f docker/device.Dockerfile -t wattstream-device .          # from the repo root

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/wattstream
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY readings ./readings
COPY batcher ./batcher
COPY sinks ./sinks
COPY consumer ./consumer
COPY device ./device
COPY bridge ./bridge
# The box's dependencies only (paho, pymodbus, pyserial for Modbus RTU, cryptography): no KCL,
# no Java, no local dev kit. consumer/ is here for the `wattstream` command line.
RUN /opt/wattstream/bin/pip install '.[device]'

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 wattstream \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/wattstream --no-create-home \
      --shell /usr/sbin/nologin wattstream \
 && mkdir -p /var/lib/wattstream \
 && chown -R 10001:10001 /var/lib/wattstream && chmod 1777 /tmp
COPY --from=build /opt/wattstream /opt/wattstream
ENV PATH=/opt/wattstream/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# Relative defaults (.local/spool, .local/certs) land in the volume.
WORKDIR /var/lib/wattstream
VOLUME ["/var/lib/wattstream"]
USER 10001:10001
# Exec form, so SIGTERM reaches the box, which drains its spool and stops.
CMD ["wattstream", "device", "run"]

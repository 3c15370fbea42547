"""Every container of docker-compose.yml built from this repository, run natively.

There is no Docker engine here, so each of our services' commands (or its image's CMD) runs
with the project's virtualenv, its environment rewritten by ``NativeRewrite``: named volumes
become folders of the test (shared between services as in compose), container ports become
free ports, LocalStack becomes the test's emulators. The chain is the compose one:
certs -> Mosquitto (mosquitto.docker.conf) -> init -> bridge + consumer + devices, and a
reading must travel from a simulated box to the consumer's aggregates.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest

from devstack.net import free_port
from devstack.report import metric_sum, scrape
from devstack.stack import wait_for
from tests.integration.stack.compose import (
    REPO,
    NativeRewrite,
    dockerfile_of,
    image_healthcheck,
    load_compose,
    our_services,
)
from tests.integration.stack.conftest import (
    Processes,
    mosquitto_binary,
    render_docker_mosquitto_conf,
)

pytestmark = pytest.mark.integration

# Long-running services: everything but the one-shot certs and init.
ONE_SHOT = ("certs", "init")


def metrics_up(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).read()  # noqa: S310 - loopback
        return True
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def test_compose_services_run_natively(aws_env: dict[str, str], tmp_path: Path, processes: Processes) -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed (apt-get install -y mosquitto)")
    compose = load_compose()
    ours = our_services(compose)
    assert set(ours) == {"init", "certs", "bridge", "consumer", "serve", "devices"}

    suffix = uuid.uuid4().hex[:8]
    broker_port, consumer_port, bridge_port, serve_port = free_port(), free_port(), free_port(), free_port()
    rewrite = NativeRewrite(
        volumes_root=tmp_path / "volumes",
        ports={8883: broker_port, 9108: consumer_port, 9109: bridge_port, 8080: serve_port},
        # The broker certificate names 127.0.0.1 too, so TLS host-name checks still pass.
        hosts={"mosquitto": "127.0.0.1"},
        aws_env=aws_env,
        overrides={
            # Own names, so this test shares nothing with others on the same emulators.
            "WATTSTREAM_STREAM_NAME": f"readings-{suffix}",
            "WATTSTREAM_APPLICATION_NAME": f"consumer-{suffix}",
            "WATTSTREAM_AGGREGATES_TABLE": f"aggregates-{suffix}",
            "WATTSTREAM_STATE_TABLE": f"state-{suffix}",
            "WATTSTREAM_RAW_BUCKET": f"raw-{suffix}",
            "WATTSTREAM_WORKER_ID": f"worker-{suffix}",
            # A small machine shared with other tests: the pipeline fixture's KCL pace and JVM.
            "WATTSTREAM_KCL_EXTRA_PROPERTIES": '{"leaseAssignmentIntervalMillis": "1000", "shardSyncIntervalMillis": "1000"}',
            "WATTSTREAM_JAVA_OPTIONS": "-Xmx384m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
            "WATTSTREAM_MAX_AGE_S": "3",
        },
    )
    base_env = dict(os.environ)
    native: dict[str, tuple[list[str], dict[str, str]]] = {}
    for name, svc in ours.items():
        argv, env = rewrite.command(svc), rewrite.environment(svc, base_env)
        assert not rewrite.leftover_container_paths(svc), (name, rewrite.leftover_container_paths(svc))
        native[name] = (argv, env)

    # certs (one-shot): CA, server, bridge and the 20 boxes, in the shared `certs` volume.
    certs = subprocess.run(
        native["certs"][0], env=native["certs"][1], cwd=REPO, capture_output=True, text=True, timeout=90
    )
    assert certs.returncode == 0, certs.stdout + certs.stderr
    cert_dir = rewrite.volumes_root / "certs"
    assert {"ca.crt", "server.crt", "server.key", "bridge.crt", "bridge.key"} <= {p.name for p in cert_dir.iterdir()}
    assert len(list((cert_dir / "devices").glob("box-*.crt"))) == 20

    # mosquitto (not ours, but the chain needs it): the image's config, on a free port.
    conf = render_docker_mosquitto_conf(
        compose["services"]["mosquitto"], rewrite.volumes_root, broker_port, tmp_path / "mosquitto.conf"
    )
    broker = processes.start("mosquitto", [mosquitto_binary(), "-c", str(conf)], dict(os.environ))
    assert wait_for(lambda: _listening(broker_port), 15, 0.1), broker.tail()

    # init (one-shot): the stream with 2 shards, the tables, the bucket.
    init = subprocess.run(
        native["init"][0], env=native["init"][1], cwd=REPO, capture_output=True, text=True, timeout=110
    )
    assert init.returncode == 0, init.stdout + init.stderr
    kinesis = boto3.client("kinesis", region_name="us-east-1")
    shards = kinesis.list_shards(StreamName=f"readings-{suffix}")["Shards"]
    assert len(shards) == 2

    # The long-running services.
    consumer = processes.start("consumer", *native["consumer"])
    bridge = processes.start("bridge", *native["bridge"])
    assert wait_for(lambda: "bridge_subscribed" in bridge.tail(200_000), 30, 0.2), bridge.tail()
    devices = processes.start("devices", *native["devices"])
    consumer_url = f"http://127.0.0.1:{consumer_port}/metrics"
    bridge_url = f"http://127.0.0.1:{bridge_port}/metrics"
    assert wait_for(lambda: metrics_up(consumer_url) or consumer.proc.poll() is not None, 60), consumer.tail()
    assert consumer.proc.poll() is None, consumer.tail()
    assert metrics_up(bridge_url), bridge.tail()

    # A reading travels box -> Mosquitto -> bridge -> Kinesis -> consumer -> aggregates.
    assert wait_for(lambda: metric_sum(scrape(bridge_url), "wattstream_bridge_records_put_total") > 0, 30, 1), (
        bridge.tail() + devices.tail()
    )
    assert wait_for(
        lambda: metric_sum(scrape(consumer_url), "wattstream_readings_stored_total") > 0, 90, 1
    ), consumer.tail()
    for started in (consumer, bridge, devices, broker):
        assert started.proc.poll() is None, f"{started.name} exited:\n{started.tail()}"

    def healthcheck(name: str) -> subprocess.CompletedProcess[str]:
        """The HEALTHCHECK of the service's image, run natively against the service."""
        command = image_healthcheck(dockerfile_of(ours[name]))
        argv, env = rewrite.command({**ours[name], "command": command}), native[name][1]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)

    # serve: the API over what the consumer stored, and its image's HEALTHCHECK.
    serve = processes.start("serve", *native["serve"])
    fleet_url = f"http://127.0.0.1:{serve_port}/fleet/now"
    assert wait_for(lambda: metrics_up(fleet_url) or serve.proc.poll() is not None, 60), serve.tail()
    assert wait_for(
        lambda: bool(json.loads(urllib.request.urlopen(fleet_url, timeout=5).read())["devices"]),  # noqa: S310 - loopback
        60,
        1,
    ), serve.tail()
    serve_check = healthcheck("serve")
    assert serve_check.returncode == 0, serve_check.stderr
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it so the exit status tells how it ended.
    assert processes.stop(serve, timeout_s=20) in (0, -signal.SIGTERM), serve.tail()
    assert "Traceback" not in serve.tail(200_000), serve.tail()

    # The image's HEALTHCHECK, pointed at this consumer, passes.
    check = healthcheck("consumer")
    assert check.returncode == 0, check.stderr

    # `docker stop`: SIGTERM to each; all stop cleanly (the consumer after flushing).
    assert processes.stop(devices, timeout_s=40) == 0, devices.tail()
    summary = json.loads(devices.tail(20_000)[devices.tail(20_000).rindex("{\n") :])
    assert summary["devices"] == 20
    assert processes.stop(bridge, timeout_s=20) == 0, bridge.tail()
    assert processes.stop(consumer, timeout_s=60) == 0, consumer.tail()
    assert "shutdown_flushed" in consumer.tail(500_000) or "batch_flushed" in consumer.tail(500_000)
    processes.stop(broker, timeout_s=10)
    # With the consumer gone, the health check fails.
    failed = healthcheck("consumer")
    assert failed.returncode != 0


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex(("127.0.0.1", port)) == 0

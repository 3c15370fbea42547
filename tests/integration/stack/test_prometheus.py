"""The real Prometheus scrapes the real consumer with the compose scrape config.

Debian's ``prometheus`` runs docker/prometheus/prometheus.yml with its targets moved to the
test's consumer and a 1 s scrape interval. Readings of a simulated fleet go onto the stream,
the consumer stores them, and the batch metrics read back through Prometheus's HTTP API must
match what was sent. Every query of the Grafana dashboard runs against the same data.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.loadgen import Fleet, put_records
from devstack.net import free_port
from devstack.report import metric_sum, scrape
from devstack.stack import wait_for
from tests.integration.stack.compose import REPO
from tests.integration.stack.conftest import Processes
from tests.integration.stack.test_stack_files import dashboard_targets

pytestmark = pytest.mark.integration

DEVICES = 20
PER_MESSAGE = 10
ROUNDS = 5  # messages per device
PROMETHEUS_CONFIG = REPO / "docker" / "prometheus" / "prometheus.yml"


def prometheus_binary() -> str | None:
    return shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)


def render_config(targets: dict[str, str], out: Path) -> Path:
    """The compose config with each target mapped (unmapped targets dropped) and 1 s scrapes."""
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    jobs = []
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            static["targets"] = [targets[t] for t in static["targets"] if t in targets]
        if any(static["targets"] for static in job["static_configs"]):
            jobs.append(job)
    config["scrape_configs"] = jobs
    out.write_text(yaml.safe_dump(config))
    return out


class PrometheusApi:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as response:  # noqa: S310
                return response.status == 200
        except OSError:
            return False


def test_prometheus_reads_the_batch_metrics(pipeline, processes: Processes, tmp_path: Path) -> None:
    binary = prometheus_binary()
    if binary is None:
        pytest.skip("prometheus is not installed (apt-get install -y prometheus)")

    fleet = Fleet(DEVICES, interval_ms=10_000, seed=5)
    now_ms = int(time.time() * 1000)
    sequence_numbers: list[str] = []
    for k in range(ROUNDS):
        ts_ms = now_ms - (ROUNDS - 1 - k) * PER_MESSAGE * fleet.interval_ms
        put_records(
            pipeline.kinesis,
            pipeline.settings.stream_name,
            fleet.messages(ts_ms, PER_MESSAGE, received_ms=now_ms),
            accepted=sequence_numbers,
        )
    records = DEVICES * ROUNDS
    readings = records * PER_MESSAGE
    assert len(sequence_numbers) == records
    energy_wh = sum(energy for _, energy in fleet.truth().values())

    consumer = pipeline.start_consumer()
    port = free_port()
    config = render_config({"consumer:9108": f"127.0.0.1:{consumer.metrics_port}"}, tmp_path / "prometheus.yml")
    prometheus = processes.start(
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        env={"PATH": "/usr/bin:/bin"},
    )
    api = PrometheusApi(port)
    assert wait_for(lambda: api.ready() or prometheus.proc.poll() is not None, 30, 0.2), prometheus.tail()
    assert prometheus.proc.poll() is None, prometheus.tail()

    pipeline.wait_stored(consumer, readings, timeout_s=100)
    direct = scrape(consumer.metrics_url)

    # Prometheus has scraped the final values once its view of stored readings reaches them.
    assert wait_for(lambda: api.scalar("sum(wattstream_readings_stored_total)") == readings, 20, 0.5), (
        api.query("wattstream_readings_stored_total"),
        prometheus.tail(),
    )
    assert api.scalar('up{job="consumer"}') == 1
    assert api.scalar("sum(wattstream_records_total)") == records
    assert len(api.query("wattstream_records_total")) == 2, "one series per shard"
    batches = api.scalar("sum(wattstream_batches_flushed_total)")
    assert batches == metric_sum(direct, "wattstream_batches_flushed_total") >= 2
    by_trigger = {
        r["metric"]["trigger"]: float(r["value"][1])
        for r in api.query("sum by (trigger) (wattstream_batches_flushed_total)")
    }
    assert sum(by_trigger.values()) == batches and set(by_trigger) <= {
        "size",
        "age",
        "bytes",
        "shutdown",
        "shard_end",
        "replay",
    }
    # Histograms: one observation per batch; records per batch add up to the records sent.
    assert api.scalar("sum(wattstream_batch_records_count)") == batches
    assert api.scalar("sum(wattstream_batch_records_sum)") == records
    assert api.scalar("sum(wattstream_flush_duration_seconds_count)") == batches
    assert api.scalar('sum(wattstream_flush_duration_seconds_bucket{le="+Inf"})') == batches
    p95 = api.scalar("histogram_quantile(0.95, sum by (le) (wattstream_flush_duration_seconds_bucket))")
    assert p95 is not None and 0 < p95 <= 30
    assert api.scalar("sum(wattstream_checkpoints_total)") == batches
    assert api.scalar("sum(wattstream_energy_wh_total)") == pytest.approx(energy_wh, rel=1e-6)
    assert (api.scalar("sum(wattstream_rejected_total)") or 0) == 0
    writes = api.scalar("sum(wattstream_dynamodb_writes_total)")
    assert writes == metric_sum(direct, "wattstream_dynamodb_writes_total") and 0 < writes < readings

    # Every query of the Grafana dashboard is valid PromQL, and the batch and energy panels
    # have data (once every series has the samples a rate() needs, new ones included).
    every_series = '{__name__=~"wattstream_.+"}[5m]'
    assert wait_for(lambda: min(len(series["values"]) for series in api.query(every_series)) >= 3, 20, 0.5)
    optional = re.compile(r"rejected|register_flags|processor_errors|bridge_|s3_puts|dynamodb_writes_skipped")
    for title, expr in dashboard_targets():
        promql = expr.replace("$__rate_interval", "15s").replace("$__range", "5m")
        result = api.query(promql)  # asserts status == success
        if not optional.search(expr):
            assert result, f"panel {title!r}: no data for {promql}"

    assert processes.stop(prometheus, timeout_s=20) == 0
    assert consumer.stop() == 0

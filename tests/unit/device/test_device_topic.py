"""Basic Ingest: the topic a box publishes to, refused where no IoT Core rules engine listens."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from device import certs as certs_lib
from device.cli import device
from device.runtime import build_box
from device.settings import DeviceSettings
from device.topic import basic_ingest_topic, is_iot_core_endpoint, publish_topic
from readings.errors import ConfigError
from readings.models import thing_from_topic

ENDPOINT = "a1b2c3d4e5f6g7-ats.iot.us-east-1.amazonaws.com"
RULE = "wattstream_energy_consumption"


def test_without_a_rule_the_box_publishes_to_its_own_topic() -> None:
    assert publish_topic("box-0001", broker_host="localhost", basic_ingest_rule=None) == "energy/consumption/box-0001"


def test_with_a_rule_the_topic_is_the_prefix_plus_the_same_topic() -> None:
    topic = publish_topic("box-0001", broker_host=ENDPOINT, basic_ingest_rule=RULE)
    assert topic == f"$aws/rules/{RULE}/energy/consumption/box-0001"
    # IoT Core strips the first three levels ($aws/rules/<rule>) before the rule runs, so the
    # rule's topic(3) -- thing_from_topic here -- is still the thing name.
    assert thing_from_topic(topic.split("/", 3)[3]) == "box-0001"


@pytest.mark.parametrize(
    "host", ["localhost", "127.0.0.1", "mosquitto", "amazonaws.com.example.org", "evilamazonaws.com"]
)
def test_a_broker_that_is_not_iot_core_is_refused_unless_forced(host: str) -> None:
    assert not is_iot_core_endpoint(host)
    with pytest.raises(ConfigError, match="IoT Core only"):
        publish_topic("box-0001", broker_host=host, basic_ingest_rule=RULE)
    forced = publish_topic("box-0001", broker_host=host, basic_ingest_rule=RULE, force=True)
    assert forced.startswith(f"$aws/rules/{RULE}/")


@pytest.mark.parametrize("host", [ENDPOINT, "iot.cn-north-1.amazonaws.com.cn", ENDPOINT.upper() + "."])
def test_iot_core_endpoints_are_recognised(host: str) -> None:
    assert is_iot_core_endpoint(host)


@pytest.mark.parametrize("name", ["wattstream-energy", "", "a/b", "x" * 129, "$aws"])
def test_rule_names_aws_would_refuse_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="rule name"):
        basic_ingest_topic(name, "box-0001")


def test_settings_take_the_rule_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTSTREAM_DEVICE_BASIC_INGEST_RULE", RULE)
    monkeypatch.setenv("WATTSTREAM_DEVICE_BROKER_HOST", ENDPOINT)
    assert DeviceSettings(device_id="box-0042").publish_topic() == f"$aws/rules/{RULE}/energy/consumption/box-0042"
    monkeypatch.setenv("WATTSTREAM_DEVICE_BROKER_HOST", "localhost")
    with pytest.raises(ConfigError):
        DeviceSettings().publish_topic()
    monkeypatch.setenv("WATTSTREAM_DEVICE_BASIC_INGEST_FORCE", "true")
    assert DeviceSettings().publish_topic().startswith("$aws/rules/")


def test_the_built_box_publishes_to_the_basic_ingest_topic(tmp_path: Path) -> None:
    certs_lib.init_authority(tmp_path / "certs")
    certs_lib.issue_device(tmp_path / "certs", "box-0007")
    common = {"device_id": "box-0007", "cert_dir": tmp_path / "certs", "spool_path": tmp_path / "box.db"}
    box = build_box(DeviceSettings(broker_host=ENDPOINT, basic_ingest_rule=RULE, **common), now_ms=1_800_000_000_000)
    try:
        assert box.topic == f"$aws/rules/{RULE}/energy/consumption/box-0007"
    finally:
        box.close()
    with pytest.raises(ConfigError):
        build_box(DeviceSettings(broker_host="localhost", basic_ingest_rule=RULE, **common), now_ms=0)


def test_the_cli_refuses_basic_ingest_on_the_local_broker(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        device,
        ["simulate", "--devices", "1", "--duration-s", "1", "--cert-dir", str(tmp_path), "--basic-ingest-rule", RULE],
    )
    assert result.exit_code != 0 and "IoT Core only" in result.output
    assert not (tmp_path / "devices").exists()  # refused before any certificate was issued
    result = runner.invoke(
        device,
        ["run", "--broker-host", ENDPOINT, "--cert-dir", str(tmp_path), "--basic-ingest-rule", "not-a-rule-name"],
    )
    assert result.exit_code != 0 and "rule name" in result.output

"""Settings: file < environment < CLI overrides; nested Modbus settings from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from device.settings import load_settings
from readings.errors import ConfigError


def test_precedence_file_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "box.toml"
    path.write_text('device_id = "box-file"\nbroker_port = 1883\nread_interval_s = 5\n[modbus]\nhost = "10.0.0.9"\n')
    monkeypatch.setenv("WATTSTREAM_DEVICE_BROKER_PORT", "18883")
    monkeypatch.setenv("WATTSTREAM_DEVICE_MODBUS__UNIT_ID", "3")
    s = load_settings(path, device_id="box-cli")
    assert (s.device_id, s.broker_port, s.read_interval_s) == ("box-cli", 18883, 5.0)
    assert (s.modbus.host, s.modbus.unit_id) == ("10.0.0.9", 3)
    assert s.resolved_spool_path == Path(".local/spool/box-cli.db")
    assert s.mqtt_config().cert_file == Path(".local/certs/devices/box-cli.crt")


def test_json_file_and_bad_suffix(tmp_path: Path) -> None:
    path = tmp_path / "box.json"
    path.write_text('{"device_id": "box-json", "meter": "modbus"}')
    assert load_settings(path).meter == "modbus"
    bad = tmp_path / "box.yaml"
    bad.write_text("x: 1")
    with pytest.raises(ConfigError):
        load_settings(bad)


def test_message_limits_the_box_could_not_honour_are_refused() -> None:
    from pydantic import ValidationError

    from device.batching import MIN_MESSAGE_BYTES
    from readings.decode import MAX_READINGS

    assert load_settings(max_message_bytes=MIN_MESSAGE_BYTES, max_readings=MAX_READINGS).batch_policy
    for limits in ({"max_message_bytes": MIN_MESSAGE_BYTES - 1}, {"max_readings": MAX_READINGS + 1}):
        with pytest.raises(ValidationError):
            load_settings(**limits)

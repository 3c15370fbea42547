"""The rendered Mosquitto config carries IoT Core's policy; the Docker config says the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.deadletter import MAX_PAYLOAD_BYTES
from device.certs import init_authority
from devstack import broker

MOSQUITTO_DIR = Path(__file__).resolve().parents[3] / "devstack" / "resources" / "mosquitto"
LISTENER_POLICY = {
    "use_identity_as_username": "true",
    "use_username_as_clientid": "true",
    "require_certificate": "true",
}
GLOBAL_POLICY = {"allow_anonymous": "false", "retain_available": "false", "per_listener_settings": "false"}


def directives(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out[key] = value.strip()
    return out


def listener_options(text: str) -> dict[str, str]:
    """The directives after the ``listener`` line: Mosquitto applies them to that listener."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("listener "))
    return directives("\n".join(lines[start:]))


@pytest.fixture
def rendered(tmp_path: Path) -> str:
    cert_dir = tmp_path / "certs"
    init_authority(cert_dir)
    return broker.render_config(tmp_path / "work", cert_dir, port=18883).read_text()


def test_the_rendered_config_ties_client_id_to_the_certificate_and_checks_the_crl(
    rendered: str, tmp_path: Path
) -> None:
    options = listener_options(rendered)
    assert {k: options.get(k) for k in LISTENER_POLICY} == LISTENER_POLICY
    assert {k: directives(rendered).get(k) for k in GLOBAL_POLICY} == GLOBAL_POLICY
    # use_username_as_clientid is a listener option: before the listener line it would be ignored
    assert "use_username_as_clientid" not in directives(rendered.split("\nlistener ")[0])
    assert options["crlfile"] == str((tmp_path / "certs" / "ca.crl").resolve())


def test_the_docker_config_has_the_same_policy_as_the_template() -> None:
    docker = (MOSQUITTO_DIR / "mosquitto.docker.conf").read_text()
    options = listener_options(docker)
    assert {k: options.get(k) for k in LISTENER_POLICY} == LISTENER_POLICY
    assert {k: directives(docker).get(k) for k in GLOBAL_POLICY} == GLOBAL_POLICY
    assert options["crlfile"] == "/mosquitto/certs/ca.crl"
    template = directives((MOSQUITTO_DIR / "mosquitto.conf.template").read_text())
    for key, value in template.items():
        if "$" not in key + value and key not in {"log_dest", "log_timestamp"}:
            assert directives(docker).get(key) == value, key


def test_dead_letters_are_bounded_at_the_brokers_message_size_limit() -> None:
    template = directives((MOSQUITTO_DIR / "mosquitto.conf.template").read_text())
    assert int(template["message_size_limit"]) == MAX_PAYLOAD_BYTES


def test_start_explains_a_missing_crl(tmp_path: Path) -> None:
    cert_dir = tmp_path / "certs"
    init_authority(cert_dir)
    (cert_dir / "ca.crl").unlink()
    with pytest.raises(broker.BrokerError, match="certs init"):
        broker.stop(broker.start(tmp_path / "work", cert_dir))  # stop: only if it started after all

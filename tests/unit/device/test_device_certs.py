"""Certificates chain to the CA, carry the identity Mosquitto will see and the right usages; the CRL
revokes them; names are thing names and never the broker's own identities."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from device.certs import (
    BRIDGE_IDENTITY,
    RESERVED_NAMES,
    CertLayout,
    common_name,
    init_authority,
    issue_device,
    revoke,
)
from device.cli import certs as certs_cli
from readings.errors import DeviceError


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_leaf_certificates_are_signed_by_the_ca(tmp_path: Path) -> None:
    layout = init_authority(tmp_path)
    issue_device(tmp_path, "box-0042")
    ca = load(layout.ca.cert_path)
    for path in (layout.server.cert_path, layout.bridge.cert_path, layout.device("box-0042").cert_path):
        cert = load(path)
        cert.verify_directly_issued_by(ca)
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)


def test_server_san_and_client_usages(tmp_path: Path) -> None:
    layout = init_authority(tmp_path)
    server = load(layout.server.cert_path)
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    device = load(issue_device(tmp_path, "box-1").cert_path)
    eku = device.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku


def test_init_keeps_an_existing_ca_and_issue_is_idempotent(tmp_path: Path) -> None:
    first = CertLayout(tmp_path).ca.cert_path
    init_authority(tmp_path)
    before = first.read_bytes()
    init_authority(tmp_path)
    assert first.read_bytes() == before
    a = issue_device(tmp_path, "box-1").cert_path.read_bytes()
    assert issue_device(tmp_path, "box-1").cert_path.read_bytes() == a


def test_extra_server_names_reach_the_broker_certificate(tmp_path: Path) -> None:
    layout = init_authority(tmp_path, server_names=("mosquitto", "192.0.2.10"))
    san = load(layout.server.cert_path).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "mosquitto"} <= set(san.get_values_for_type(x509.DNSName))
    assert ipaddress.ip_address("192.0.2.10") in san.get_values_for_type(x509.IPAddress)


# -- revocation: the CRL the broker checks ----------------------------------------------------


def load_crl(layout: CertLayout) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl(layout.crl.read_bytes())


def test_init_writes_an_empty_crl_signed_by_the_ca(tmp_path: Path) -> None:
    layout = init_authority(tmp_path)
    crl = load_crl(layout)
    assert crl.is_signature_valid(load(layout.ca.cert_path).public_key())
    assert len(crl) == 0
    # Mosquitto refuses every client once the CRL's next update has passed: not before the CA ends.
    assert crl.next_update_utc >= load(layout.ca.cert_path).not_valid_after_utc


def test_revoke_lists_the_serial_signs_a_newer_crl_and_frees_the_name(tmp_path: Path) -> None:
    layout = init_authority(tmp_path)
    serial = load(issue_device(tmp_path, "box-1").cert_path).serial_number
    before = load_crl(layout)
    revoked = revoke(tmp_path, "box-1")
    crl = load_crl(layout)
    assert crl.is_signature_valid(load(layout.ca.cert_path).public_key())
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None
    number = x509.CRLNumber
    assert crl.extensions.get_extension_for_class(number).value.crl_number > (
        before.extensions.get_extension_for_class(number).value.crl_number
    )
    # never "not yet valid" on a broker whose clock is a little behind
    assert crl.last_update_utc < dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    assert revoked.serial_number == serial
    assert load(revoked.cert_path).serial_number == serial
    assert not layout.device("box-1").cert_path.exists()
    # a new certificate for the same thing is not revoked
    fresh = load(issue_device(tmp_path, "box-1").cert_path)
    assert load_crl(layout).get_revoked_certificate_by_serial_number(fresh.serial_number) is None


def test_revocations_survive_init(tmp_path: Path) -> None:
    layout = init_authority(tmp_path)
    serial = load(issue_device(tmp_path, "box-1").cert_path).serial_number
    revoke(tmp_path, "box-1")
    init_authority(tmp_path)
    assert load_crl(layout).get_revoked_certificate_by_serial_number(serial) is not None
    init_authority(tmp_path, force=True)  # a new CA: the old certificates are void anyway
    assert len(load_crl(layout)) == 0


def test_the_bridge_identity_can_be_revoked(tmp_path: Path) -> None:
    layout = init_authority(tmp_path)
    serial = load(layout.bridge.cert_path).serial_number
    revoke(tmp_path, BRIDGE_IDENTITY)
    assert load_crl(layout).get_revoked_certificate_by_serial_number(serial) is not None
    assert not layout.bridge.cert_path.exists()


def test_revoking_an_unknown_name_is_refused(tmp_path: Path) -> None:
    init_authority(tmp_path)
    with pytest.raises(DeviceError, match="no certificate"):
        revoke(tmp_path, "box-9")
    with pytest.raises(DeviceError, match="thing name"):
        revoke(tmp_path, "../ca")


# -- names: what IoT Core accepts as a thing name, minus the broker's own identities -------------


@pytest.mark.parametrize(
    "name", ["../../x", "a/b", "", "x" * 129, "box a", "box+", "#", "box.1", "box-\u00e9", "box\n1", ".", "..", "~"]
)
def test_device_names_must_be_thing_names(tmp_path: Path, name: str) -> None:
    init_authority(tmp_path / "certs")
    with pytest.raises(DeviceError, match="thing name"):
        issue_device(tmp_path / "certs", name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["certs"]
    assert not (tmp_path / "certs" / "devices").exists()


def test_the_longest_common_name_is_accepted_and_longer_thing_names_refused(tmp_path: Path) -> None:
    init_authority(tmp_path)
    name = "a:b_c-" + "x" * 58
    assert common_name(issue_device(tmp_path, name).cert_path) == name
    with pytest.raises(DeviceError, match="64 characters"):
        issue_device(tmp_path, name + "x")


@pytest.mark.parametrize("name", [BRIDGE_IDENTITY, "WATTSTREAM-BRIDGE", "localhost", "mosquitto"])
def test_reserved_names_are_refused(tmp_path: Path, name: str) -> None:
    init_authority(tmp_path, server_names=("mosquitto",))
    with pytest.raises(DeviceError, match="reserved"):
        issue_device(tmp_path, name)


def test_every_identity_the_acl_privileges_is_reserved() -> None:
    acl = (Path(__file__).resolve().parents[3] / "devstack" / "resources" / "mosquitto" / "acl").read_text()
    users = {line.split(None, 1)[1].strip() for line in acl.splitlines() if line.startswith("user ")}
    assert users
    assert users <= RESERVED_NAMES


def test_certs_device_refuses_a_bad_name_with_a_clear_message(tmp_path: Path) -> None:
    init_authority(tmp_path)
    result = CliRunner().invoke(certs_cli, ["device", "--dir", str(tmp_path), "../../x"])
    assert result.exit_code != 0
    assert "Error:" in result.output and "thing name" in result.output
    result = CliRunner().invoke(certs_cli, ["device", "--dir", str(tmp_path), BRIDGE_IDENTITY])
    assert result.exit_code != 0 and "reserved" in result.output


def test_certs_revoke_command(tmp_path: Path) -> None:
    init_authority(tmp_path)
    issue_device(tmp_path, "box-1")
    result = CliRunner().invoke(certs_cli, ["revoke", "--dir", str(tmp_path), "box-1"])
    assert result.exit_code == 0, result.output
    assert "box-1" in result.output and "SIGHUP" in result.output
    result = CliRunner().invoke(certs_cli, ["revoke", "--dir", str(tmp_path), "box-1"])
    assert result.exit_code != 0 and "no certificate" in result.output
    help_text = CliRunner().invoke(certs_cli, ["revoke", "--help"]).output
    assert "Examples:" in help_text

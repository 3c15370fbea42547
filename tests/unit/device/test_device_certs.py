"""Certificates chain to the CA, carry the identity Mosquitto will see, and the right usages."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from device.certs import CertLayout, init_authority, issue_device


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

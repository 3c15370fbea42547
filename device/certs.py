"""A local certificate authority for mutual TLS between boxes, Mosquitto and the bridge.

In production AWS IoT Core issues (or registers) device certificates; on a laptop this module
plays that role. Everything lands in one folder (default ``.local/certs/``, git-ignored)::

    ca.crt  ca.key                   the local CA (keep ca.key private)
    server.crt  server.key           Mosquitto's certificate, SAN localhost and 127.0.0.1
    bridge.crt  bridge.key           the bridge identity (CN wattstream-bridge)
    devices/<thing>.crt|.key         one identity per box, CN = thing name

Mosquitto runs with ``use_identity_as_username``, so a certificate's CN *is* the identity the
ACL sees: the CN of a device certificate must be its thing name, exactly as IoT Core's policy
variable ``${iot:Connection.Thing.ThingName}``.

Keys are ECDSA P-256 (small handshakes on small boxes), written with mode 0600.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from readings.errors import DeviceError

DEFAULT_CERT_DIR = Path(".local/certs")
BRIDGE_IDENTITY = "wattstream-bridge"
CA_VALIDITY_DAYS = 3650
LEAF_VALIDITY_DAYS = 825


@dataclass(frozen=True, slots=True)
class Identity:
    """Where one certificate and its private key live."""

    cert_path: Path
    key_path: Path


@dataclass(frozen=True, slots=True)
class CertLayout:
    """The file names inside a certificate folder (see the module docstring)."""

    root: Path

    @property
    def ca(self) -> Identity:
        return Identity(self.root / "ca.crt", self.root / "ca.key")

    @property
    def server(self) -> Identity:
        return Identity(self.root / "server.crt", self.root / "server.key")

    @property
    def bridge(self) -> Identity:
        return Identity(self.root / "bridge.crt", self.root / "bridge.key")

    def device(self, thing: str) -> Identity:
        return Identity(self.root / "devices" / f"{thing}.crt", self.root / "devices" / f"{thing}.key")


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _load(identity: Identity) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate(identity.cert_path.read_bytes())
        key = serialization.load_pem_private_key(identity.key_path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise DeviceError(f"no CA in {identity.cert_path.parent}: run `wattstream certs init` first") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise DeviceError(f"{identity.key_path} is not an EC key")
    return cert, key


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "wattstream local"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def create_ca(layout: CertLayout, *, common_name: str = "wattstream local CA", now: dt.datetime | None = None) -> Identity:
    """Write a new self-signed CA into ``layout`` (overwrites an existing one)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(layout.ca.key_path, key)
    _write_cert(layout.ca.cert_path, cert)
    return layout.ca


def issue(
    layout: CertLayout,
    target: Identity,
    common_name: str,
    *,
    server: bool = False,
    server_names: tuple[str, ...] = (),
    now: dt.datetime | None = None,
) -> Identity:
    """Issue a leaf certificate signed by the CA of ``layout`` and write it to ``target``.

    A server certificate carries SAN ``localhost``, ``127.0.0.1``, ``::1`` and each of
    ``server_names`` (host names or IP addresses the broker is reached by) and the serverAuth
    usage; a client certificate (device, bridge) the clientAuth usage and its CN as a DNS SAN.
    """
    ca_cert, ca_key = _load(layout.ca)
    now = now or dt.datetime.now(dt.timezone.utc)
    key = ec.generate_private_key(ec.SECP256R1())
    if server:
        sans: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
            *(_san(name) for name in server_names),
        ]
        usage = ExtendedKeyUsageOID.SERVER_AUTH
    else:
        sans = [x509.DNSName(common_name)]
        usage = ExtendedKeyUsageOID.CLIENT_AUTH
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=LEAF_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(target.key_path, key)
    _write_cert(target.cert_path, cert)
    return target


def _san(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def init_authority(root: Path, *, force: bool = False, server_names: tuple[str, ...] = ()) -> CertLayout:
    """CA + server + bridge certificates in ``root``; an existing CA is kept unless ``force``.

    ``server_names`` are further names of the broker (``mosquitto`` in docker compose).
    """
    layout = CertLayout(root)
    if force or not layout.ca.cert_path.exists():
        create_ca(layout)
    issue(layout, layout.server, "localhost", server=True, server_names=server_names)
    issue(layout, layout.bridge, BRIDGE_IDENTITY)
    return layout


def issue_device(root: Path, thing: str, *, overwrite: bool = False) -> Identity:
    """The certificate of box ``thing`` (CN = thing); kept as is when it exists already."""
    layout = CertLayout(root)
    target = layout.device(thing)
    if target.cert_path.exists() and target.key_path.exists() and not overwrite:
        return target
    return issue(layout, target, thing)


def common_name(cert_path: Path) -> str:
    """The CN of a PEM certificate (what Mosquitto takes as the username)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)

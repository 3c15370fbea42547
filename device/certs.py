"""A local certificate authority for mutual TLS between boxes, Mosquitto and the bridge.

In production AWS IoT Core issues (or registers) device certificates; on a laptop this module
plays that role. Everything lands in one folder (default ``.local/certs/``, git-ignored)::

    ca.crt  ca.key                   the local CA (keep ca.key private)
    ca.crl                           revoked certificates, signed by the CA (Mosquitto's crlfile)
    server.crt  server.key           Mosquitto's certificate, SAN localhost and 127.0.0.1
    bridge.crt  bridge.key           the bridge identity (CN wattstream-bridge)
    devices/<thing>.crt|.key         one identity per box, CN = thing name
    revoked/<name>-<serial>.crt|.key certificates taken out of use by ``revoke``

Mosquitto runs with ``use_identity_as_username`` and ``use_username_as_clientid``, so a
certificate's CN *is* the identity the ACL sees and the client id of its session: the CN of a
device certificate must be its thing name, exactly as IoT Core's policy variable
``${iot:Connection.Thing.ThingName}``. Hence a device name must be a valid thing name (which
also keeps its files inside ``devices/``) and never one of ``RESERVED_NAMES``, the broker's own
identities.

Revocation: ``revoke`` adds a certificate's serial to ``ca.crl`` and signs it again. The CRL
exists from ``init_authority`` on (empty), since Mosquitto refuses to start with a missing
``crlfile``, and its next update is the CA's end, since Mosquitto refuses every client once a
CRL has expired. Mosquitto reads the file at start and on SIGHUP only.

Keys are ECDSA P-256 (small handshakes on small boxes), written with mode 0600.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from readings.errors import DeviceError
from readings.models import is_thing_name

DEFAULT_CERT_DIR = Path(".local/certs")
BRIDGE_IDENTITY = "wattstream-bridge"
SERVER_COMMON_NAME = "localhost"
CA_VALIDITY_DAYS = 3650
LEAF_VALIDITY_DAYS = 825

MAX_COMMON_NAME_CHARS = 64
"""X.509's upper bound of a CN (RFC 5280 ub-common-name): thing names beyond it have no CN here."""
RESERVED_NAMES = frozenset({BRIDGE_IDENTITY, SERVER_COMMON_NAME})
"""Identities of the broker and the bridge; the broker ACL grants ``user`` lines to them (a test
checks devstack/resources/mosquitto/acl). A box with one of these CNs would get their privileges."""


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

    @property
    def crl(self) -> Path:
        return self.root / "ca.crl"

    def device(self, thing: str) -> Identity:
        return Identity(self.root / "devices" / f"{thing}.crt", self.root / "devices" / f"{thing}.key")


@dataclass(frozen=True, slots=True)
class Revoked:
    """A revoked certificate: its serial, and where its files went (out of use)."""

    name: str
    serial_number: int
    cert_path: Path
    key_path: Path


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


def create_ca(
    layout: CertLayout, *, common_name: str = "wattstream local CA", now: dt.datetime | None = None
) -> Identity:
    """Write a new self-signed CA into ``layout`` (overwrites an existing one)."""
    now = now or dt.datetime.now(dt.UTC)
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
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
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
    now = now or dt.datetime.now(dt.UTC)
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
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
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
    issue(layout, layout.server, SERVER_COMMON_NAME, server=True, server_names=server_names)
    issue(layout, layout.bridge, BRIDGE_IDENTITY)
    write_crl(layout, _revoked_entries(layout))
    return layout


def check_device_name(layout: CertLayout, thing: str) -> None:
    """Raise ``DeviceError`` unless ``thing`` is a valid thing name and no reserved identity.

    Reserved: ``RESERVED_NAMES`` and every name the broker's certificate in ``layout`` carries
    (``--server-name``), compared without case. Thing names longer than a CN can be are refused.
    """
    if not is_thing_name(thing):
        raise DeviceError(
            f"{thing!r} is not a valid thing name: 1 to 128 of a-z A-Z 0-9 : _ - (as AWS IoT Core requires)"
        )
    if len(thing) > MAX_COMMON_NAME_CHARS:
        raise DeviceError(
            f"{thing!r} is a valid thing name, but longer than the {MAX_COMMON_NAME_CHARS} characters of a "
            "certificate CN, which the local broker takes as the identity"
        )
    reserved = {name.casefold() for name in RESERVED_NAMES | _server_names(layout)}
    if thing.casefold() in reserved:
        raise DeviceError(f"{thing!r} is reserved for the broker or the bridge; choose another thing name")


def _server_names(layout: CertLayout) -> set[str]:
    try:
        cert = x509.load_pem_x509_certificate(layout.server.cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (FileNotFoundError, x509.ExtensionNotFound, ValueError):
        return set()
    return {str(name) for name in san.get_values_for_type(x509.DNSName)}


def issue_device(root: Path, thing: str, *, overwrite: bool = False) -> Identity:
    """The certificate of box ``thing`` (CN = thing); kept as is when it exists already.

    Raises ``DeviceError`` for a name that is not a thing name or is reserved (see
    ``check_device_name``), before anything is written.
    """
    layout = CertLayout(root)
    check_device_name(layout, thing)
    target = layout.device(thing)
    if target.cert_path.exists() and target.key_path.exists() and not overwrite:
        return target
    return issue(layout, target, thing)


def common_name(cert_path: Path) -> str:
    """The CN of a PEM certificate (what Mosquitto takes as the username)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


# -- revocation -----------------------------------------------------------------------------


def _load_crl(layout: CertLayout) -> x509.CertificateRevocationList | None:
    try:
        return x509.load_pem_x509_crl(layout.crl.read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def _revoked_entries(layout: CertLayout) -> list[x509.RevokedCertificate]:
    """The entries of the current CRL when the current CA signed it; none for a new CA."""
    crl = _load_crl(layout)
    ca_cert, _ = _load(layout.ca)
    if crl is None or crl.issuer != ca_cert.subject or not crl.is_signature_valid(ca_cert.public_key()):  # type: ignore[arg-type]
        return []
    return list(crl)


def write_crl(layout: CertLayout, entries: list[x509.RevokedCertificate], *, now: dt.datetime | None = None) -> Path:
    """Sign ``entries`` into ``ca.crl`` (replaced whole, atomically); returns its path.

    The last update lies five minutes back, as the certificates' start does: a CRL "not yet
    valid" on a broker whose clock is a little behind would refuse every client. The next
    update is the CA's end of validity (see the module docstring). The CRL number counts up.
    """
    ca_cert, ca_key = _load(layout.ca)
    now = now or dt.datetime.now(dt.UTC)
    previous = _load_crl(layout)
    number = 1
    if previous is not None:
        with contextlib.suppress(x509.ExtensionNotFound):
            number = previous.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(max(ca_cert.not_valid_after_utc, now + dt.timedelta(days=1)))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    for entry in entries:
        builder = builder.add_revoked_certificate(entry)
    crl = builder.sign(ca_key, hashes.SHA256())
    layout.crl.parent.mkdir(parents=True, exist_ok=True)
    tmp = layout.crl.with_name(layout.crl.name + ".tmp")
    tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    tmp.replace(layout.crl)  # the broker never reads half a file
    return layout.crl


def revoke(root: Path, name: str, *, now: dt.datetime | None = None) -> Revoked:
    """Revoke the current certificate of box ``name`` or of the bridge identity (its CN).

    The serial goes into ``ca.crl`` (signed again); the certificate and key move to
    ``revoked/``, so ``issue_device`` (or ``issue`` for the bridge) makes a new one for the same
    name. Raises ``DeviceError`` when there is no such certificate or the CA in ``root`` did
    not issue it. The broker applies the new CRL to new connections after a SIGHUP or restart.
    """
    layout = CertLayout(root)
    if layout.bridge.cert_path.exists() and name == common_name(layout.bridge.cert_path):
        identity = layout.bridge
    else:
        if not is_thing_name(name):
            raise DeviceError(f"{name!r} is not a valid thing name, nor the bridge identity")
        identity = layout.device(name)
    if not identity.cert_path.exists():
        raise DeviceError(f"no certificate for {name} in {root} (revoked already, or never issued)")
    cert = x509.load_pem_x509_certificate(identity.cert_path.read_bytes())
    ca_cert, _ = _load(layout.ca)
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise DeviceError(f"{identity.cert_path} was not issued by the CA in {root}") from exc
    now = now or dt.datetime.now(dt.UTC)
    entries = _revoked_entries(layout)
    if all(entry.serial_number != cert.serial_number for entry in entries):
        entries.append(x509.RevokedCertificateBuilder().serial_number(cert.serial_number).revocation_date(now).build())
    write_crl(layout, entries, now=now)
    stem = f"{name}-{cert.serial_number:x}"
    moved = Revoked(name, cert.serial_number, root / "revoked" / f"{stem}.crt", root / "revoked" / f"{stem}.key")
    moved.cert_path.parent.mkdir(parents=True, exist_ok=True)
    identity.cert_path.replace(moved.cert_path)
    if identity.key_path.exists():
        identity.key_path.replace(moved.key_path)
    return moved

"""Certificates of the local IoT Core: a CA, the broker's server certificate and
one client certificate per thing (CN = thing name), generated on first use.

Layout under ``settings.pki_dir``::

    ca.pem  ca.key                      the local certificate authority
    server.pem  server.key              broker certificate, SAN localhost + 127.0.0.1
    things/<name>/cert.pem  key.pem     one client identity per thing
    services/<name>/cert.pem  key.pem   the delivery stream's and the flush client's identities

The broker binds each connection's client id to its certificate's CN
(:mod:`.broker`): a thing connects as its thing name, the delivery stream as
``aircast-firehose-<stream>``, flush requests as ``aircast-flush-<token>``. No
thing may be registered under those names.

Keys are ECDSA P-256 (what AWS IoT also accepts), so generation takes
milliseconds and TLS handshakes stay cheap.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

THING_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: prefix of the delivery stream's identity (CN = client id = ``aircast-firehose-<stream>``)
DELIVERY_PREFIX = "aircast-firehose-"
#: identity of flush/control requests; they connect as ``aircast-flush-<token>``
CONTROL_IDENTITY = "aircast-flush"
#: names no thing may take: the service identities above (and the delivery stream's
#: identity of earlier versions), since a thing's client id is its name
RESERVED_NAMES = frozenset({"aircast-delivery", CONTROL_IDENTITY})
RESERVED_PREFIXES = (DELIVERY_PREFIX, CONTROL_IDENTITY + "-")
_VALIDITY = dt.timedelta(days=3650)


class PKIError(ValueError):
    """A certificate could not be made; the message says why."""


@dataclass(frozen=True)
class ThingCredentials:
    """Paths an MQTT client needs to connect as one thing."""

    thing_name: str
    cert_path: Path
    key_path: Path
    ca_path: Path

    def as_dict(self) -> dict[str, str]:
        return {"thing_name": self.thing_name, "cert": str(self.cert_path),
                "key": str(self.key_path), "ca": str(self.ca_path)}


def validate_thing_name(name: str) -> str:
    """Return ``name`` if it is a valid thing name (``[A-Za-z0-9_-]{1,64}``), else raise PKIError."""
    if not THING_NAME_RE.match(name or ""):
        raise PKIError(f"invalid thing name {name!r}: use 1-64 characters from A-Z a-z 0-9 _ -")
    return name


def ca_paths(pki_dir: Path) -> tuple[Path, Path]:
    return pki_dir / "ca.pem", pki_dir / "ca.key"


def server_paths(pki_dir: Path) -> tuple[Path, Path]:
    return pki_dir / "server.pem", pki_dir / "server.key"


def thing_paths(pki_dir: Path, thing_name: str, kind: str = "things") -> ThingCredentials:
    """Where a thing's (or, with ``kind="services"``, a service's) certificate and key live."""
    d = pki_dir / kind / validate_thing_name(thing_name)
    return ThingCredentials(thing_name, d / "cert.pem", d / "key.pem", ca_paths(pki_dir)[0])


@contextmanager
def _locked(pki_dir: Path) -> Iterator[None]:
    """Serialize generation across processes (two CLIs registering at once)."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    with open(pki_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_ca(pki_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = ca_paths(pki_dir)
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def make_ca(common_name: str = "aircast local IoT CA") -> tuple[bytes, bytes]:
    """A self-signed CA certificate and its key, as PEM bytes (pure: writes nothing)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aircast"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issue_certificate(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, common_name: str,
                      server: bool = False) -> tuple[bytes, bytes]:
    """A leaf certificate signed by the CA (client, or server with SAN localhost + 127.0.0.1)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
               .issuer_name(ca_cert.subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + _VALIDITY)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if server:
        builder = (builder
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                               x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def ensure_ca(pki_dir: Path) -> Path:
    """Create the CA on first use; return the CA certificate path."""
    cert_path, key_path = ca_paths(pki_dir)
    with _locked(pki_dir):
        if not (cert_path.is_file() and key_path.is_file()):
            cert_pem, key_pem = make_ca()
            _write(key_path, key_pem, private=True)
            _write(cert_path, cert_pem)
    return cert_path


def ensure_server_cert(pki_dir: Path) -> tuple[Path, Path]:
    """Create the broker certificate (and the CA) on first use; return (cert, key) paths."""
    ensure_ca(pki_dir)
    cert_path, key_path = server_paths(pki_dir)
    with _locked(pki_dir):
        if not (cert_path.is_file() and key_path.is_file()):
            ca_cert, ca_key = _load_ca(pki_dir)
            cert_pem, key_pem = issue_certificate(ca_cert, ca_key, "localhost", server=True)
            _write(key_path, key_pem, private=True)
            _write(cert_path, cert_pem)
    return cert_path, key_path


def ensure_identity(pki_dir: Path, name: str, kind: str = "things") -> ThingCredentials:
    """Create a client certificate with CN=name on first use (any identity, reserved ones included)."""
    ensure_ca(pki_dir)
    creds = thing_paths(pki_dir, name, kind)
    with _locked(pki_dir):
        if not (creds.cert_path.is_file() and creds.key_path.is_file()):
            ca_cert, ca_key = _load_ca(pki_dir)
            cert_pem, key_pem = issue_certificate(ca_cert, ca_key, name)
            _write(creds.key_path, key_pem, private=True)
            _write(creds.cert_path, cert_pem)
    return creds


def register_thing(pki_dir: Path, thing_name: str) -> ThingCredentials:
    """Make (or return the existing) certificate and key of a thing; refuses reserved names."""
    validate_thing_name(thing_name)
    if thing_name in RESERVED_NAMES or thing_name.startswith(RESERVED_PREFIXES):
        raise PKIError(f"thing name {thing_name!r} is reserved for the local delivery stream "
                       "(names aircast-delivery, aircast-flush, aircast-firehose-*, aircast-flush-*); "
                       "choose another name")
    return ensure_identity(pki_dir, thing_name)


def delivery_identity(stream: str) -> str:
    """CN and client id of the delivery stream ``stream`` (the local IoT rule's subscriber)."""
    return validate_thing_name(DELIVERY_PREFIX + stream)


def delivery_credentials(pki_dir: Path, stream: str) -> ThingCredentials:
    """Certificate of the delivery stream ``stream``; it connects with client id = its CN."""
    return ensure_identity(pki_dir, delivery_identity(stream), "services")


def control_credentials(pki_dir: Path) -> ThingCredentials:
    """Certificate of flush/control requests (client ids ``aircast-flush-<token>``)."""
    return ensure_identity(pki_dir, CONTROL_IDENTITY, "services")

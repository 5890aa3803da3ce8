"""Certificates of the local IoT Core."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from infra.local.iot_core import broker, pki


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_thing_certificate_has_the_thing_name_as_cn_and_is_signed_by_the_ca(tmp_path: Path) -> None:
    creds = pki.register_thing(tmp_path, "sensor-7")
    cert, ca = _cert(creds.cert_path), _cert(creds.ca_path)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "sensor-7"
    cert.verify_directly_issued_by(ca)
    assert (creds.key_path.stat().st_mode & 0o077) == 0  # private key readable by its owner only
    # registering again returns the same identity
    assert pki.register_thing(tmp_path, "sensor-7").cert_path.read_bytes() == creds.cert_path.read_bytes()


def test_server_certificate_names_localhost_and_loopback(tmp_path: Path) -> None:
    cert_path, _ = pki.ensure_server_cert(tmp_path)
    san = _cert(cert_path).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, "a/b", "a+", "#"])
def test_invalid_thing_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(pki.PKIError, match="invalid thing name"):
        pki.register_thing(tmp_path, name)


@pytest.mark.parametrize("name", [pki.DELIVERY_IDENTITY, "aircast-firehose-aircast-telemetry", "aircast-flush-1"])
def test_the_delivery_identity_and_client_ids_are_reserved(tmp_path: Path, name: str) -> None:
    with pytest.raises(pki.PKIError, match="reserved"):
        pki.register_thing(tmp_path, name)


def test_acl_lets_a_thing_write_only_its_own_topic() -> None:
    acl = broker.render_acl()
    assert "pattern write sensors/%u/telemetry" in acl.splitlines()
    assert f"user {pki.DELIVERY_IDENTITY}" in acl and "topic read sensors/+/telemetry" in acl


def test_broker_config_requires_client_certificates(settings) -> None:
    conf = broker.render_config(settings, Path("/x/acl"), Path("/x/p"))
    for line in ("allow_anonymous false", "require_certificate true", "use_identity_as_username true",
                 f"listener {settings.mqtt_port} 127.0.0.1", "acl_file /x/acl"):
        assert line in conf.splitlines()

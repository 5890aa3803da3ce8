"""Certificates of the local IoT Core."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from infra.local.core.config import LocalConfig
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


@pytest.mark.parametrize("name", ["aircast-delivery", pki.CONTROL_IDENTITY, "aircast-firehose-aircast-telemetry",
                                  "aircast-flush-1"])
def test_the_delivery_identity_and_client_ids_are_reserved(tmp_path: Path, name: str) -> None:
    with pytest.raises(pki.PKIError, match="reserved"):
        pki.register_thing(tmp_path, name)


def test_acl_lets_a_thing_write_only_its_own_topic() -> None:
    acl = broker.render_acl("aircast-telemetry").splitlines()
    assert "pattern write sensors/%u/telemetry" in acl
    stream = acl.index("user aircast-firehose-aircast-telemetry")
    control = acl.index(f"user {pki.CONTROL_IDENTITY}")
    assert "topic read sensors/+/telemetry" in acl[stream:control]
    assert not [line for line in acl[control:] if "sensors" in line and "pattern" not in line]


def test_broker_config_requires_client_certificates_and_binds_client_ids(tmp_path: Path) -> None:
    config = broker.BrokerConfig(LocalConfig(tmp_path), port=18883, delivery_stream="s", autosave_seconds=7)
    conf = broker.render_config(config, Path("/x/acl"), Path("/x/p"), Path("/x/plugin.so")).splitlines()
    for line in ("allow_anonymous false", "require_certificate true", "plugin /x/plugin.so",
                 f"listener {config.port} 127.0.0.1", "acl_file /x/acl",
                 f"autosave_interval {config.autosave_seconds}", f"cafile {tmp_path / 'pki' / 'ca.pem'}"):
        assert line in conf
    # mosquitto skips authentication plugins for use_identity_as_username listeners
    assert "use_identity_as_username true" not in conf


def test_service_identities_live_apart_from_things(tmp_path: Path) -> None:
    stream = pki.delivery_credentials(tmp_path, "aircast-telemetry")
    assert stream.thing_name == "aircast-firehose-aircast-telemetry"
    assert stream.cert_path.parent.parent.name == "services"
    cn = _cert(pki.control_credentials(tmp_path).cert_path).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert cn[0].value == pki.CONTROL_IDENTITY

"""The broker binds the MQTT client id to the certificate, as AWS IoT's
``iot:Connect`` on ``client/${iot:Connection.Thing.ThingName}`` does: no thing can take
over the delivery stream's (or another thing's) persistent session."""

from __future__ import annotations

import datetime as dt
import subprocess

import paho.mqtt.client as mqtt
import pytest

from aircast.local_wiring import delivery_config
from device.publisher import DeviceCredentials, publish_fleet
from device.readings import simulate
from infra.local.firehose.delivery import client_id as delivery_client_id
from infra.local.iot_core import pki
from tests.ingest.conftest import IngestStack
from tests.ingest.mqtt_clients import paho_client, try_connect


def _connect_as(st: IngestStack, creds: pki.ThingCredentials, client_id: str, protocol: int = mqtt.MQTTv311) -> str:
    client = paho_client(st.settings, creds.cert_path, creds.key_path, creds.ca_path, client_id, protocol)
    return try_connect(client, st.settings)


@pytest.mark.parametrize("protocol", [mqtt.MQTTv311, mqtt.MQTTv5])
def test_a_thing_cannot_connect_with_the_delivery_streams_client_id(shared_stack: IngestStack, protocol: int) -> None:
    st = shared_stack
    intruder = st.thing("intruder")
    stream_id = delivery_client_id(delivery_config(st.settings))
    assert _connect_as(st, intruder, stream_id, protocol) == "refused: Not authorized"
    # the stream kept its session and connection: a reading published now reaches the lake
    prefix = f"after-takeover-v{protocol}"
    readings = list(simulate(1, dt.datetime(2024, 3, 1, tzinfo=dt.UTC), 3, prefix=prefix, seed=3))
    creds = st.thing(f"{prefix}-001")
    report = publish_fleet(readings, lambda _: DeviceCredentials(creds.cert_path, creds.key_path, creds.ca_path),
                           st.settings.mqtt_host, st.settings.mqtt_port)
    assert report.acknowledged == 3
    st.flush()
    assert sum(r["thing_name"] == f"{prefix}-001" for r in st.records()) == 3
    log = (st.settings.run_dir / "iot_core.log").read_text()
    assert f"refused client id '{stream_id}' for certificate 'intruder'" in log


def test_a_thing_connects_only_as_itself(shared_stack: IngestStack) -> None:
    st = shared_stack
    st.thing("victim")
    intruder = st.thing("intruder")
    assert _connect_as(st, intruder, "victim") == "refused: Not authorized"
    assert _connect_as(st, intruder, "intruder-2") == "refused: Not authorized"  # no prefix for things
    assert _connect_as(st, intruder, "").startswith(("refused", "disconnected"))  # no server-assigned id
    assert _connect_as(st, intruder, "intruder") == "connected"


def test_the_awsiotsdk_device_is_refused_with_another_client_id(shared_stack: IngestStack) -> None:
    from awscrt import exceptions
    from awsiot import mqtt_connection_builder

    st = shared_stack
    c = st.thing("sdk-intruder")
    stream_id = delivery_client_id(delivery_config(st.settings))
    conn = mqtt_connection_builder.mtls_from_path(
        endpoint=st.settings.mqtt_host, port=st.settings.mqtt_port, cert_filepath=str(c.cert_path),
        pri_key_filepath=str(c.key_path), ca_filepath=str(c.ca_path), client_id=stream_id,
        clean_session=True, keep_alive_secs=30)
    # the SDK reports the refused CONNACK as a protocol error once the broker closes the connection
    with pytest.raises(exceptions.AwsCrtError):
        conn.connect().result(10)
    log = (st.settings.run_dir / "iot_core.log").read_text()
    assert f"refused client id '{stream_id}' for certificate 'sdk-intruder'" in log


def test_service_identities_are_bound_to_their_own_client_ids(shared_stack: IngestStack) -> None:
    st = shared_stack
    control = pki.control_credentials(st.settings.pki_dir)
    stream = pki.delivery_credentials(st.settings.pki_dir, st.settings.delivery_stream)
    # the flush client may open several connections (aircast-flush-<token>), never the stream's
    assert _connect_as(st, control, delivery_client_id(delivery_config(st.settings))) == "refused: Not authorized"
    assert _connect_as(st, control, "aircast-flush-0123abcd") == "connected"
    assert _connect_as(st, control, "aircast-flushx") == "refused: Not authorized"
    # the stream's certificate is good for the stream's client id only
    assert _connect_as(st, stream, "aircast-flush-0123abcd") == "refused: Not authorized"
    assert _connect_as(st, stream, "victim") == "refused: Not authorized"
    # and a flush still works end to end with the control identity
    assert "delivered" in st.flush()


def test_mosquitto_pub_connects_with_the_thing_name_as_client_id_only(shared_stack: IngestStack) -> None:
    st = shared_stack
    c = st.thing("pub-cli")
    base = ["mosquitto_pub", "-h", st.settings.mqtt_host, "-p", str(st.settings.mqtt_port), "--cafile",
            str(c.ca_path), "--cert", str(c.cert_path), "--key", str(c.key_path), "-q", "1",
            "-t", "sensors/pub-cli/telemetry", "-m", '{"seq": 1, "pm2_5": 12.5}']
    refused = subprocess.run(base, capture_output=True, text=True, timeout=20)  # its own random client id
    assert refused.returncode != 0 and "not authorised" in (refused.stderr + refused.stdout).lower()
    assert subprocess.run([*base, "-i", "pub-cli"], capture_output=True, timeout=20).returncode == 0
    st.flush()
    assert [r["pm2_5"] for r in st.records() if r["thing_name"] == "pub-cli"] == [12.5]

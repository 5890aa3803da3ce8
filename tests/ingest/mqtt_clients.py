"""Small real MQTT clients for the tests: paho (any identity, or none) and awsiotsdk."""

from __future__ import annotations

import ssl
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from aircast.settings import Settings


def paho_client(settings: Settings, cert: Path | None, key: Path | None, ca: Path, client_id: str,
                protocol: int = mqtt.MQTTv311) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
    client.tls_set(ca_certs=str(ca), certfile=str(cert) if cert else None, keyfile=str(key) if key else None,
                   cert_reqs=ssl.CERT_REQUIRED)
    return client


def try_connect(client: mqtt.Client, settings: Settings, timeout: float = 5.0) -> str:
    """Connect and report 'connected' or why not (TLS refusal, CONNACK code, timeout)."""
    done = threading.Event()
    outcome: list[str] = []

    def on_connect(c, userdata, flags, reason_code, properties) -> None:
        outcome.append("connected" if not reason_code.is_failure else f"refused: {reason_code}")
        done.set()

    def on_disconnect(c, userdata, flags, reason_code, properties) -> None:
        outcome.append(f"disconnected: {reason_code}")
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=10)
    except (OSError, ssl.SSLError) as exc:
        return f"tls refused: {exc}"
    client.loop_start()
    try:
        if not done.wait(timeout):
            return "timeout"
        return outcome[0]
    finally:
        client.disconnect()
        client.loop_stop()


def publish_raw(settings: Settings, cert: Path, key: Path, ca: Path, thing: str, topic: str,
                payloads: list[bytes], protocol: int = mqtt.MQTTv311, timeout: float = 10.0) -> list[object]:
    """Publish payloads QoS 1 with paho; return each PUBACK's reason code (MQTT 5) or rc."""
    client = paho_client(settings, cert, key, ca, thing, protocol)
    acks: dict[int, object] = {}
    all_acked = threading.Event()
    mids: list[int] = []

    def on_publish(c, userdata, mid, reason_code, properties) -> None:
        acks[mid] = reason_code
        if len(acks) == len(payloads):
            all_acked.set()

    client.on_publish = on_publish
    client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=10)
    client.loop_start()
    try:
        for p in payloads:
            mids.append(client.publish(topic, p, qos=1).mid)
        assert all_acked.wait(timeout), f"only {len(acks)} of {len(payloads)} publishes acknowledged"
    finally:
        client.disconnect()
        client.loop_stop()
    return [acks[m] for m in mids]


def awsiot_publish(settings: Settings, cert: Path, key: Path, ca: Path, thing: str, topic: str,
                   payload: bytes) -> None:
    """Publish one payload exactly as given with the AWS IoT Device SDK v2, QoS 1."""
    from awscrt import mqtt as crt_mqtt
    from awsiot import mqtt_connection_builder

    conn = mqtt_connection_builder.mtls_from_path(
        endpoint=settings.mqtt_host, port=settings.mqtt_port, cert_filepath=str(cert), pri_key_filepath=str(key),
        ca_filepath=str(ca), client_id=thing, clean_session=True, keep_alive_secs=30)
    conn.connect().result(10)
    try:
        future, _ = conn.publish(topic, payload, crt_mqtt.QoS.AT_LEAST_ONCE)
        future.result(10)
    finally:
        conn.disconnect().result(5)

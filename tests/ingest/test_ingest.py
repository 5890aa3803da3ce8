"""Device → mosquitto (mutual TLS) → IoT rule + delivery stream → raw lake, on real processes."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time

import paho.mqtt.client as mqtt

from device.publisher import DeviceCredentials, publish_fleet
from device.readings import simulate
from infra.local.iot_core import pki
from tests.helpers import wait_until
from tests.ingest.conftest import IngestStack
from tests.ingest.mqtt_clients import awsiot_publish, paho_client, publish_raw, try_connect
from tests.local.firehose.test_rule import SEED_PAYLOAD


def _creds(st: IngestStack, thing: str) -> DeviceCredentials:
    c = st.thing(thing)
    return DeviceCredentials(c.cert_path, c.key_path, c.ca_path)


def test_seed_payload_arrives_unchanged_plus_thing_name_and_received_at(shared_stack: IngestStack) -> None:
    st = shared_stack
    c = st.thing("seed-device")
    before = int(time.time() * 1000)
    awsiot_publish(st.settings, c.cert_path, c.key_path, c.ca_path, "seed-device",
                   "sensors/seed-device/telemetry", SEED_PAYLOAD.encode())
    st.flush()
    records = [r for r in st.records() if r["thing_name"] == "seed-device"]
    assert len(records) == 1
    record = records[0]
    received_at = record.pop("received_at")
    assert before <= received_at <= int(time.time() * 1000)
    assert record == {**json.loads(SEED_PAYLOAD), "thing_name": "seed-device"}
    assert list(record)[:8] == list(json.loads(SEED_PAYLOAD))  # field order kept too
    # the object sits in Firehose's layout, hour of arrival (UTC)
    path = next(p for p in st.objects("raw/telemetry") if "seed-device" in p.read_text())
    t = dt.datetime.fromtimestamp(received_at / 1000, dt.UTC)
    rel = path.relative_to(st.settings.s3_root / "aircast-lake").as_posix()
    assert rel.startswith(f"raw/telemetry/{t:%Y/%m/%d/%H}/aircast-telemetry-1-{t:%Y-%m-%d-%H}-")


def test_published_equals_delivered_by_seq_for_several_things(shared_stack: IngestStack) -> None:
    st = shared_stack
    start = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    readings = list(simulate(3, start, 72, prefix="fleet", seed=1))
    report = publish_fleet(readings, lambda thing: _creds(st, thing), st.settings.mqtt_host, st.settings.mqtt_port,
                           max_in_flight=20)
    assert report.failed == 0 and report.published == report.acknowledged == len(readings)
    st.flush()
    delivered = [r for r in st.records() if r["thing_name"].startswith("fleet-")]
    published = {(r.thing_name, seq) for thing in {r.thing_name for r in readings}
                 for seq, r in enumerate([x for x in readings if x.thing_name == thing], start=1)}
    assert {(r["thing_name"], r["seq"]) for r in delivered} == published
    assert len(delivered) == len(published)  # no duplicates in a run without crashes
    for r in delivered:
        assert r["device_id"] == r["thing_name"] and r["timestamp"].endswith("Z") and "pm2_5" in r


def test_buffer_interval_hint_writes_without_a_flush(shared_stack: IngestStack) -> None:
    st = shared_stack
    c = st.thing("interval-thing")
    publish_raw(st.settings, c.cert_path, c.key_path, c.ca_path, "interval-thing",
                "sensors/interval-thing/telemetry", [b'{"seq": 1}'])
    # buffer hint is 1 s
    assert wait_until(lambda: any(r["thing_name"] == "interval-thing" for r in st.records()), 10, 0.1,
                      "the interval hint's write")


def test_a_thing_cannot_publish_to_another_things_topic(shared_stack: IngestStack) -> None:
    st = shared_stack
    st.thing("victim")
    c = st.thing("intruder")
    # MQTT 5 PUBACK says why; MQTT 3.1.1 acknowledges but the broker drops it
    codes = publish_raw(st.settings, c.cert_path, c.key_path, c.ca_path, "intruder", "sensors/victim/telemetry",
                        [b'{"forged": true}'], protocol=mqtt.MQTTv5)
    assert str(codes[0]) == "Not authorized"
    publish_raw(st.settings, c.cert_path, c.key_path, c.ca_path, "intruder", "sensors/victim/telemetry",
                [b'{"forged": true}'])
    publish_raw(st.settings, c.cert_path, c.key_path, c.ca_path, "intruder", "sensors/intruder/telemetry",
                [b'{"own": true}'])
    st.flush()
    records = st.records()
    assert not [r for r in records if r.get("forged")]
    assert [r["thing_name"] for r in records if r.get("own")] == ["intruder"]


def test_clients_without_a_certificate_or_with_a_foreign_ca_are_refused(shared_stack: IngestStack, tmp_path) -> None:
    st = shared_stack
    ca = pki.ca_paths(st.settings.pki_dir)[0]
    no_cert = paho_client(st.settings, None, None, ca, "anon")
    # refused in the TLS handshake (1.2) or right after it (1.3 checks the client certificate later)
    assert try_connect(no_cert, st.settings).startswith(("tls refused", "disconnected"))
    foreign = pki.register_thing(tmp_path / "other-pki", "victim")  # same name, another CA
    impostor = paho_client(st.settings, foreign.cert_path, foreign.key_path, ca, "impostor")
    assert try_connect(impostor, st.settings).startswith(("tls refused", "disconnected"))
    real = st.thing("victim")
    assert try_connect(paho_client(st.settings, real.cert_path, real.key_path, ca, "victim"), st.settings) == "connected"


def test_malformed_payloads_land_in_raw_errors_with_reasons(shared_stack: IngestStack) -> None:
    st = shared_stack
    c = st.thing("sloppy")
    bad = {
        "invalid_json": b"temperature=21",
        "not_an_object": b"[1, 2, 3]",
        "payload_too_large": b'{"blob": "' + b"x" * (130 * 1024) + b'"}',
    }
    publish_raw(st.settings, c.cert_path, c.key_path, c.ca_path, "sloppy", "sensors/sloppy/telemetry",
                [*bad.values(), b'{"seq": 99, "ok": true}'])
    st.flush()
    errors = [e for e in st.records("raw/errors") if e["thing_name"] == "sloppy"]
    assert {e["reason"]: base64.b64decode(e["raw_base64"]) for e in errors} == bad
    assert all(e["detail"] and e["topic"] == "sensors/sloppy/telemetry" for e in errors)
    # the stream kept going: the good record after them was delivered
    assert [r["seq"] for r in st.records() if r["thing_name"] == "sloppy"] == [99]
    for path in st.objects("raw/errors"):
        assert path.relative_to(st.settings.s3_root / "aircast-lake").as_posix().startswith("raw/errors/")

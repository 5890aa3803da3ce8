"""Ingestion benchmark: device → broker → delivery stream → lake, against the raw broker path.

``python -m bench.ingest --messages N`` starts a private local IoT Core (mosquitto,
mutual TLS) on a free port in a temp data dir, then on that same broker:

1. raw path: a paho publisher (QoS 1) → a paho subscriber (QoS 1), N messages;
2. lake path: the awsiotsdk device (QoS 1, capped in-flight) → broker → IoT rule +
   Firehose delivery stream → durable objects in the raw lake, N messages, timed
   until the stream has flushed everything (so the last object is on disk).

The last line printed is one JSON object with ``delivered``, ``lost``,
``lake_msgs_per_s``, ``broker_msgs_per_s`` and ``ratio`` (lake / broker). Goal:
``lost`` 0 and ``ratio`` >= 0.8, i.e. the delivery stream is not the bottleneck.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import itertools
import json
import math
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from aircast.settings import Settings, load_settings
from bench import pyplot
from device.publisher import DeviceCredentials, make_payload, publish_fleet
from device.readings import Reading, simulate
from infra.local import stack
from infra.local.firehose import flush
from infra.local.iot_core import pki

SERVICES = ("infra.local.iot_core.service", "infra.local.firehose.service")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def bench_readings(n: int, things: int, prefix: str) -> list[Reading]:
    """N realistic readings spread over ``things`` simulated sensors, time-major."""
    hours = math.ceil(n / things / 0.85) + 24
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return list(itertools.islice(simulate(things, start, hours, prefix=prefix, seed=7), n))


def _paho(settings: Settings, creds: pki.ThingCredentials, client_id: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    client.tls_set(ca_certs=str(creds.ca_path), certfile=str(creds.cert_path), keyfile=str(creds.key_path),
                   cert_reqs=ssl.CERT_REQUIRED)
    return client


def raw_broker_path(settings: Settings, readings: list[Reading], max_in_flight: int, timeout: float) -> dict:
    """paho publisher → mosquitto → paho subscriber, QoS 1 both ways; messages/s end to end."""
    n = len(readings)
    sub_creds = pki.delivery_credentials(settings.pki_dir)  # the identity allowed to read all telemetry
    pub_creds = pki.register_thing(settings.pki_dir, "bench-raw")
    payloads = [make_payload("bench-raw", i + 1, r) for i, r in enumerate(readings)]
    received = 0
    last_at = 0.0
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(c, userdata, msg) -> None:
        nonlocal received, last_at
        received += 1
        if received >= n:
            last_at = time.monotonic()
            done.set()

    sub = _paho(settings, sub_creds, "bench-raw-subscriber")
    sub.on_message = on_message
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_connect = lambda c, *a: c.subscribe("sensors/bench-raw/telemetry", qos=1)
    sub.connect(settings.mqtt_host, settings.mqtt_port, keepalive=30)
    sub.loop_start()
    pub = _paho(settings, pub_creds, "bench-raw")
    # Cap in-flight publishes ourselves, like the device does: paho's own cap rescans its
    # whole queue on every PUBACK (quadratic), which would make this baseline unfairly slow.
    slots = threading.Semaphore(max_in_flight)
    pub.max_inflight_messages_set(0)
    pub.on_publish = lambda *a: slots.release()
    pub.connect(settings.mqtt_host, settings.mqtt_port, keepalive=30)
    pub.loop_start()
    try:
        if not subscribed.wait(10):
            raise RuntimeError("raw subscriber could not subscribe")
        t0 = time.monotonic()
        for p in payloads:
            slots.acquire()
            pub.publish("sensors/bench-raw/telemetry", p, qos=1)
        done.wait(timeout)
        elapsed = (last_at or time.monotonic()) - t0
    finally:
        pub.disconnect()
        pub.loop_stop()
        sub.disconnect()
        sub.loop_stop()
    return {"received": received, "elapsed_s": elapsed, "msgs_per_s": received / elapsed if elapsed > 0 else 0.0}


def lake_path(settings: Settings, readings: list[Reading], max_in_flight: int, timeout: float) -> dict:
    """awsiotsdk device → mosquitto → delivery stream → lake; timed until everything is written."""
    def creds(thing: str) -> DeviceCredentials:
        c = pki.register_thing(settings.pki_dir, thing)
        return DeviceCredentials(c.cert_path, c.key_path, c.ca_path)

    for thing in {r.thing_name for r in readings}:  # certificates are setup, not part of the timing
        creds(thing)
    t0 = time.monotonic()
    report = publish_fleet(readings, creds, settings.mqtt_host, settings.mqtt_port, max_in_flight=max_in_flight,
                           ack_timeout_s=timeout)
    published_s = time.monotonic() - t0
    flush(settings, timeout)
    elapsed = time.monotonic() - t0
    keys: collections.Counter[tuple[str, int]] = collections.Counter()
    root = settings.s3_root / settings.lake_bucket / "raw/telemetry"
    for path in root.rglob("*"):
        if path.is_file():
            for line in path.read_bytes().splitlines():
                rec = json.loads(line)
                keys[(rec["thing_name"], rec["seq"])] += 1
    return {"report": report, "published_s": published_s, "elapsed_s": elapsed, "keys": keys,
            "objects": sum(1 for p in root.rglob("*") if p.is_file())}


def _plot(out_dir: Path, result: dict) -> Path:
    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(["raw broker\n(paho → paho)", "lake\n(device → stream → lake)"],
           [result["broker_msgs_per_s"], result["lake_msgs_per_s"]], color=["#888", "#2a7"])
    ax.set_ylabel("messages / s")
    ax.set_title(f"ingestion, {result['messages']} msgs, ratio {result['ratio']:.2f}, lost {result['lost']}")
    fig.tight_layout()
    path = out_dir / "ingest.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="messages per path (default 20000)")
    parser.add_argument("--things", type=int, default=1, help="devices on the lake path (default 1, like the raw path)")
    parser.add_argument("--max-in-flight", type=int, default=1000, help="unacknowledged publishes per path")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds each path may take")
    parser.add_argument("--out", type=Path, default=Path("bench/out"), help="folder for the plot")
    args = parser.parse_args(argv)
    if args.messages < 1:
        parser.error("--messages must be at least 1")

    with tempfile.TemporaryDirectory(prefix="aircast-bench-") as tmp:
        settings = load_settings(data_dir=Path(tmp), mqtt_port=_free_port(), endpoint_port=_free_port(),
                                 eventbus_port=_free_port())
        readings = bench_readings(args.messages, args.things, "bench-device")
        iot_core, firehose = stack.load_services(SERVICES)
        _log(f"bench: broker on 127.0.0.1:{settings.mqtt_port}, {args.messages} messages per path")
        stack.start_service(iot_core, settings)
        try:
            # Raw path first: the delivery stream's persistent session does not exist yet,
            # so the broker does no extra queueing work for it.
            raw = raw_broker_path(settings, readings, args.max_in_flight, args.timeout)
            _log(f"bench: raw broker path: {raw['received']} received in {raw['elapsed_s']:.2f} s "
                 f"= {raw['msgs_per_s']:.0f} msg/s")
            stack.start_service(firehose, settings)
            lake = lake_path(settings, readings, args.max_in_flight, args.timeout)
        finally:
            stack.down(settings, SERVICES)
    report = lake["report"]
    counters: collections.Counter[str] = collections.Counter()
    expected: set[tuple[str, int]] = set()
    for r in readings:
        counters[r.thing_name] += 1
        expected.add((r.thing_name, counters[r.thing_name]))
    delivered = len(expected & set(lake["keys"]))
    lake_rate = args.messages / lake["elapsed_s"] if lake["elapsed_s"] > 0 else 0.0
    result = {
        "messages": args.messages,
        "delivered": delivered,
        "lost": args.messages - delivered,
        "duplicates": sum(c - 1 for c in lake["keys"].values()),
        "device_acknowledged": report.acknowledged,
        "device_failed": report.failed,
        "objects": lake["objects"],
        "lake_elapsed_s": round(lake["elapsed_s"], 3),
        "broker_elapsed_s": round(raw["elapsed_s"], 3),
        "lake_msgs_per_s": round(lake_rate, 1),
        "broker_msgs_per_s": round(raw["msgs_per_s"], 1),
        "ratio": round(lake_rate / raw["msgs_per_s"], 3) if raw["msgs_per_s"] else 0.0,
    }
    _log(f"bench: lake path: device {report.summary()}; {delivered} delivered in {lake['elapsed_s']:.2f} s "
         f"= {lake_rate:.0f} msg/s (publishing took {lake['published_s']:.2f} s)")
    plot = _plot(args.out, result)
    if plot:
        _log(f"bench: plot {plot}")
    print(json.dumps(result))
    return 0 if result["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""The raw-broker baseline's subscriber, in its own process like the delivery stream.

``python -m bench.raw_subscriber --data-dir D --messages N`` connects to the local
IoT Core as the delivery stream's identity (the one allowed to read all telemetry;
clean session, so it leaves no session behind), subscribes to ``sensors/+/telemetry``
with QoS 1, prints ``ready`` once subscribed and, after N messages (or
``--timeout``), acknowledges them all and prints one JSON line: ``received`` and
``last_at`` (``time.monotonic()`` once the acknowledgements are out; on Linux the
same clock in every process).

It acknowledges the way the delivery stream does (in one batch, after the last
message, where the stream acknowledges after each object write) rather than per
message as paho does by default: deferred acknowledgements keep the broker's
work away from the publishing device, and a baseline that acknowledged each
message would be slower than the stream for that reason alone.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from aircast.settings import load_settings
from infra.local.iot_core import pki


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.raw_subscriber", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--messages", type=int, required=True)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    settings = load_settings(data_dir=args.data_dir)
    creds = pki.delivery_credentials(settings.pki_dir, settings.delivery_stream)
    received = 0
    last_at = 0.0
    mids: list[int] = []
    subscribed = threading.Event()
    done = threading.Event()

    def on_message(c, userdata, msg) -> None:
        nonlocal received
        received += 1
        mids.append(msg.mid)
        if received >= args.messages:
            done.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=pki.delivery_identity(settings.delivery_stream),
                         clean_session=True, protocol=mqtt.MQTTv311, manual_ack=True)
    client.tls_set(ca_certs=str(creds.ca_path), certfile=str(creds.cert_path), keyfile=str(creds.key_path),
                   cert_reqs=ssl.CERT_REQUIRED)
    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_connect = lambda c, *a: c.subscribe("sensors/+/telemetry", qos=1)
    client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=30)
    client.loop_start()
    try:
        if not subscribed.wait(10):
            print("raw subscriber: could not subscribe", file=sys.stderr)
            return 1
        print("ready", flush=True)
        done.wait(args.timeout)
        for mid in list(mids):
            client.ack(mid, 1)
        last_at = time.monotonic()
    finally:
        client.disconnect()
        client.loop_stop()
    print(json.dumps({"received": received, "last_at": last_at}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

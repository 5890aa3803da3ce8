"""Ask the running delivery stream to write what it holds, and wait until it has.

The request is a barrier message: the broker queues it for the stream's session
after every message it accepted before, so when the stream answers, everything
published (and acknowledged by the broker) before :func:`flush` was called is
in the lake. An unanswered request is repeated (each answer is a flush, so a
repeat only costs a small object).
"""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from infra.local.firehose import FlushTimeout
from infra.local.firehose.config import DeliveryConfig
from infra.local.firehose.delivery import control_topic
from infra.local.iot_core import pki

#: seconds between repeats of an unanswered flush request
REPEAT_S = 2.0


def flush(config: DeliveryConfig, timeout: float = 30.0) -> dict[str, Any]:
    """Make the delivery stream write every buffered record now; return its counters.

    Raises :class:`FlushTimeout` when it does not answer within ``timeout`` seconds,
    or ``ConnectionError`` when the broker cannot be reached.
    """
    creds = pki.control_credentials(config.local.pki_dir)
    token = uuid.uuid4().hex
    reply_topic = control_topic(config, f"flushed/{token}")
    subscribed = threading.Event()
    answered = threading.Event()
    reply: dict[str, Any] = {}
    refused: list[str] = []

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"{pki.CONTROL_IDENTITY}-{token[:12]}",
                         clean_session=True, protocol=mqtt.MQTTv311)
    client.tls_set(ca_certs=str(creds.ca_path), certfile=str(creds.cert_path), keyfile=str(creds.key_path),
                   cert_reqs=ssl.CERT_REQUIRED)

    def on_connect(c, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            refused.append(str(reason_code))
            subscribed.set()
            return
        c.subscribe(reply_topic, qos=1)

    def on_subscribe(c, userdata, mid, reason_codes, properties) -> None:
        subscribed.set()

    def on_message(c, userdata, msg) -> None:
        try:
            reply.update(json.loads(msg.payload))
        except ValueError:
            pass
        answered.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    deadline = time.monotonic() + timeout
    try:
        client.connect(config.mqtt_host, config.mqtt_port, keepalive=30)
    except OSError as exc:
        raise ConnectionError(f"cannot reach the local IoT Core at {config.mqtt_host}:{config.mqtt_port}: {exc} "
                              "(is the stack up?)") from exc
    client.loop_start()
    try:
        if not subscribed.wait(max(0.0, deadline - time.monotonic())):
            raise FlushTimeout("the broker did not confirm the flush subscription in time")
        if refused:
            raise ConnectionError(f"the local IoT Core refused the flush client: {refused[0]} "
                                  f"(certificate {creds.cert_path})")
        # Ask again every few seconds: a stream whose session the broker lost (a broker
        # restarted without its save) subscribes again only when it reconnects.
        while True:
            client.publish(control_topic(config, "flush"), token, qos=1)
            if answered.wait(max(0.0, min(REPEAT_S, deadline - time.monotonic()))) or time.monotonic() >= deadline:
                break
        if not answered.is_set():
            raise FlushTimeout(f"the delivery stream {config.stream} did not flush within {timeout:.0f} s "
                               "(is it running?)")
    finally:
        client.disconnect()
        client.loop_stop()
    return reply

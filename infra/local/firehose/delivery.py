"""The local IoT rule + Kinesis Data Firehose delivery stream, as one process.

It subscribes to ``sensors/+/telemetry`` with its own certificate and a
persistent QoS 1 session (fixed client id, ``clean_session=False``), applies the
rule (:mod:`infra.local.firehose.rule`), buffers records by size and interval
hints, and writes Firehose-layout objects atomically. A message is acknowledged
to the broker only after the object holding it is durably written, so a
``kill -9`` loses nothing: the broker redelivers whatever was not acknowledged
(duplicates are possible and countable by ``(thing_name, seq)``).

Flush on demand: SIGUSR1, or a barrier message on
``aircast/firehose/<stream>/flush`` (see :func:`infra.local.firehose.flush`),
which, arriving after everything the broker accepted before it, makes the
stream write its buffers and answer on ``.../flushed/<token>``.
SIGTERM/SIGINT flush and exit.

When the connection to the broker drops, the stream writes what it holds
(unacknowledged: acknowledgements belong to the connection) instead of dropping
it. A broker that kept those messages redelivers them (duplicates); one that was
killed before saving them does not, and they are in the lake anyway.

Fault hook (local only, for reliability tests): ``AIRCAST_FIREHOSE_FAULT_INJECTION=
kill-before-ack[:N]`` makes the process ``SIGKILL`` itself on its N-th object
write (default 1), after the objects are durably in the lake and before the
broker gets the acknowledgements, i.e. with messages certainly in flight. It logs
the keys of the objects it wrote first. See ``deployment/README.md`` for the
endpoint host's ``AIRCAST_FAULT_INJECTION``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from infra.local.core import clock
from infra.local.firehose import rule, writer
from infra.local.firehose.config import DeliveryConfig
from infra.local.iot_core import pki
from infra.local.iot_core.broker import CONTROL_TOPIC_ROOT

TELEMETRY_FILTER = "sensors/+/telemetry"
#: broker message ids are 16-bit: never hold more unacknowledged messages than this
MAX_PENDING = 50_000
FAULT_ENV = "AIRCAST_FIREHOSE_FAULT_INJECTION"
#: how often the stats file is refreshed while records arrive (it is also written on each flush)
STATS_EVERY_S = 1.0


def parse_fault(value: str | None) -> int | None:
    """The object write to die on for ``kill-before-ack[:N]`` (None: no fault); ValueError if malformed."""
    if not value:
        return None
    kind, colon, count = value.partition(":")
    if kind != "kill-before-ack" or (colon and not (count.isdigit() and int(count) >= 1)):
        raise ValueError(f"{FAULT_ENV}={value!r}: expected kill-before-ack or kill-before-ack:N with N >= 1")
    return int(count) if colon else 1


def control_topic(config: DeliveryConfig, kind: str) -> str:
    return f"{CONTROL_TOPIC_ROOT}/{config.stream}/{kind}"


def client_id(config: DeliveryConfig) -> str:
    """Fixed client id, so the broker keeps the session (and its queue) across restarts;
    the broker accepts it only with the stream's own certificate (CN = client id)."""
    return pki.delivery_identity(config.stream)


def ready_path(config: DeliveryConfig) -> Path:
    return config.local.run_dir / "firehose.ready"


def stats_path(config: DeliveryConfig) -> Path:
    return config.local.run_dir / "firehose.stats.json"


@dataclass
class Buffer:
    """Records waiting for one object write."""

    lines: list[bytes] = field(default_factory=list)
    size: int = 0
    first_arrival_ms: int | None = None

    def add(self, line: bytes, received_at_ms: int) -> None:
        if self.first_arrival_ms is None:
            self.first_arrival_ms = received_at_ms
        self.lines.append(line)
        self.size += len(line)

    def clear(self) -> None:
        self.lines = []
        self.size = 0
        self.first_arrival_ms = None


class DeliveryStream:
    """Buffers rule output and writes objects; owns the MQTT session (single-threaded)."""

    def __init__(self, config: DeliveryConfig, log=print) -> None:
        self.config = config
        self.log = log
        self.buffer_bytes = max(1, int(config.buffer_mib * 1024 * 1024))
        self.buffer_seconds = max(0.001, config.buffer_seconds)
        self.telemetry = Buffer()
        self.errors = Buffer()
        # (mid, qos) of messages whose records are only in memory
        self.pending: list[tuple[int, int]] = []
        self.flush_tokens: list[str] = []
        self.flush_requested = False
        self.stop_requested = False
        self.connected = False
        self.counts = {"received": 0, "delivered": 0, "errors": 0, "objects": 0, "error_objects": 0}
        self.kill_on_write = parse_fault(os.environ.get(FAULT_ENV))
        self.writes = 0
        self.stats_written_at = 0.0
        self.stats_counts: dict[str, int] = {}
        creds = pki.delivery_credentials(config.local.pki_dir, config.stream)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id(config), clean_session=False,
                                  protocol=mqtt.MQTTv311, manual_ack=True)
        self.client.tls_set(ca_certs=str(creds.ca_path), certfile=str(creds.cert_path), keyfile=str(creds.key_path),
                            cert_reqs=ssl.CERT_REQUIRED)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.flush_topic = control_topic(config, "flush")

    # ---- MQTT callbacks ---------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.log(f"firehose: connect refused: {reason_code}")
            return
        self.connected = True
        client.subscribe([(TELEMETRY_FILTER, 1), (self.flush_topic, 1)])
        self.log(f"firehose: connected to {self.config.mqtt_host}:{self.config.mqtt_port} "
                 f"as {client_id(self.config)} (session present: {flags.session_present})")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        held = len(self.telemetry.lines) + len(self.errors.lines)
        self.connected = False
        # Acknowledgements are per connection, so what we hold cannot be acknowledged any
        # more. Write it anyway: a broker killed before it saved these messages cannot
        # redeliver them, one that saved them will (duplicates, never loss).
        note = "held nothing unwritten"
        try:
            if held:
                self._write_buffers()
                note = f"wrote the {held} record(s) it held; the broker redelivers what it still has"
        except OSError as exc:
            note = f"could not write the {held} record(s) it held ({exc}); the broker redelivers what it still has"
        self.telemetry.clear()
        self.errors.clear()
        self.pending.clear()
        self.flush_tokens.clear()
        self.log(f"firehose: disconnected ({reason_code}); {note}")
        self._write_stats()

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        now_ms = clock.now_ms()
        self.pending.append((msg.mid, msg.qos))
        topic = msg.topic
        if topic == self.flush_topic:
            self.flush_tokens.append(msg.payload.decode("utf-8", "replace"))
            return
        self.counts["received"] += 1
        result = rule.apply_rule(topic, msg.payload, now_ms)
        if result.line is not None:
            self.telemetry.add(result.line, now_ms)
        else:
            self.errors.add(rule.error_line(topic, msg.payload, result.reason or "unknown", now_ms), now_ms)

    # ---- buffering --------------------------------------------------------------
    def due(self, now_ms: int) -> bool:
        """Whether a buffer hint (size or interval) or a flush request says: write now."""
        if self.flush_requested or self.flush_tokens or len(self.pending) >= MAX_PENDING:
            return bool(self.pending) or self.flush_requested
        if self.telemetry.size + self.errors.size >= self.buffer_bytes:
            return True
        oldest = min((b.first_arrival_ms for b in (self.telemetry, self.errors) if b.first_arrival_ms is not None),
                     default=None)
        return oldest is not None and now_ms - oldest >= self.buffer_seconds * 1000

    def seconds_until_due(self, now_ms: int) -> float:
        oldest = min((b.first_arrival_ms for b in (self.telemetry, self.errors) if b.first_arrival_ms is not None),
                     default=None)
        if oldest is None:
            return 1.0
        return max(0.0, (oldest + self.buffer_seconds * 1000 - now_ms) / 1000.0)

    def _write_buffers(self) -> list[str]:
        """Write both buffers as objects (durably) and empty them; return the keys written."""
        bucket = self.config.bucket
        stream = self.config.stream
        keys = []
        for buf, prefix, kind in ((self.telemetry, rule.TELEMETRY_PREFIX, "objects"),
                                  (self.errors, rule.ERRORS_PREFIX, "error_objects")):
            if not buf.lines:
                continue
            key = rule.object_key(prefix, stream, clock.from_epoch_ms(buf.first_arrival_ms or 0))
            writer.write_object(self.config.local, bucket, key, buf.lines)
            keys.append(f"{key} ({len(buf.lines)} records)")
            self.counts[kind] += 1
            self.counts["delivered" if kind == "objects" else "errors"] += len(buf.lines)
            buf.clear()
        return keys

    def flush(self) -> None:
        """Write both buffers as objects, then acknowledge every message they hold."""
        self.flush_requested = False
        keys = self._write_buffers()
        if keys:
            self.writes += 1
            if self.writes == self.kill_on_write:
                self.log(f"firehose: fault injection {FAULT_ENV}: killed after writing {', '.join(keys)}, "
                         "before acknowledging them")
                os.kill(os.getpid(), signal.SIGKILL)
        # Durable now: acknowledge (the broker may drop them) and answer flush barriers.
        for mid, qos in self.pending:
            if qos > 0:
                self.client.ack(mid, qos)
        self.pending.clear()
        for token in self.flush_tokens:
            self.client.publish(control_topic(self.config, f"flushed/{token}"),
                                json.dumps(self.counts), qos=1)
        self.flush_tokens.clear()
        self._write_stats()

    def _write_stats(self) -> None:
        self.stats_written_at = time.monotonic()
        self.stats_counts = dict(self.counts)
        try:
            tmp = stats_path(self.config).with_suffix(".tmp")
            tmp.write_text(json.dumps({**self.counts, "pid": os.getpid(),
                                       "updated_at": clock.utc_now().isoformat()}))
            os.replace(tmp, stats_path(self.config))
        except OSError:
            pass

    # ---- main loop ---------------------------------------------------------------
    def run(self) -> int:
        """Connect, consume, flush on hints; return 0 after a clean stop (SIGTERM/SIGINT)."""
        config = self.config
        removed = writer.clean_temp(config.local)
        if removed:
            self.log(f"firehose: removed {removed} partial temp file(s) from an earlier crash")
        config.local.run_dir.mkdir(parents=True, exist_ok=True)
        backoff = 0.2
        while not self.stop_requested:
            try:
                self.client.connect(config.mqtt_host, config.mqtt_port, keepalive=30)
                break
            except (OSError, ssl.SSLError) as exc:
                self.log(f"firehose: cannot reach broker {config.mqtt_host}:{config.mqtt_port}: {exc}; "
                         f"retrying in {backoff:.1f} s")
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        ready_written = False
        while not self.stop_requested:
            now_ms = clock.now_ms()
            rc = self.client.loop(timeout=min(0.2, self.seconds_until_due(now_ms)))
            if rc != mqtt.MQTT_ERR_SUCCESS:
                # paho has already called on_disconnect (buffers dropped, broker will redeliver)
                self.connected = False
                self._reconnect()
                continue
            if self.connected and not ready_written:
                ready_path(config).write_text(str(os.getpid()))
                ready_written = True
            if self.counts != self.stats_counts and time.monotonic() - self.stats_written_at >= STATS_EVERY_S:
                self._write_stats()
            if self.connected and self.due(clock.now_ms()):
                try:
                    self.flush()
                except OSError as exc:
                    # e.g. disk full: keep the records unacknowledged and retry; nothing is lost
                    self.log(f"firehose: cannot write to the lake ({exc}); retrying in 1 s")
                    time.sleep(1.0)
        # Clean stop: deliver what we hold, so a stop loses nothing and duplicates nothing.
        if self.connected:
            self.flush()
            self.client.loop(timeout=0.2)
            self.client.disconnect()
        ready_path(config).unlink(missing_ok=True)
        self.log(f"firehose: stopped; {json.dumps(self.counts)}")
        return 0

    def _reconnect(self) -> None:
        backoff = 0.2
        while not self.stop_requested:
            time.sleep(backoff)
            try:
                if self.client.reconnect() == mqtt.MQTT_ERR_SUCCESS:
                    return
            except (OSError, ssl.SSLError) as exc:
                self.log(f"firehose: reconnect failed: {exc}; retrying in {backoff:.1f} s")
            backoff = min(backoff * 2, 5.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local.firehose.delivery",
                                     description="Local IoT rule + Firehose delivery stream (MQTT → raw lake).")
    DeliveryConfig.add_arguments(parser)
    config = DeliveryConfig.from_arguments(parser.parse_args(argv))

    def log(msg: str) -> None:
        print(f"{clock.utc_now():%Y-%m-%dT%H:%M:%S} {msg}", file=sys.stderr, flush=True)

    try:
        stream = DeliveryStream(config, log=log)
    except ValueError as exc:
        print(f"firehose: error: {exc}", file=sys.stderr)
        return 2

    def on_stop(signum, frame) -> None:
        stream.stop_requested = True

    def on_flush(signum, frame) -> None:
        stream.flush_requested = True

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGUSR1, on_flush)
    log(f"firehose: stream {config.stream} → s3://{config.bucket}/{rule.TELEMETRY_PREFIX} "
        f"(buffer {config.buffer_mib} MiB / {config.buffer_seconds} s)")
    return stream.run()


if __name__ == "__main__":
    sys.exit(main())

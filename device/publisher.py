"""The sensor client: publishes readings over MQTT with mutual TLS using the AWS IoT
Device SDK v2 (``awsiotsdk``). The same code talks to AWS IoT Core (its ATS
endpoint, the Amazon root CA and the thing's certificate) and to the local broker.

Reliability: QoS 1; a cap on unacknowledged publishes (an uncapped client fills
the SDK's queue and loses messages to ``AWS_ERROR_MQTT_QUEUE_FULL``); automatic
reconnect with exponential backoff, after which queued publishes go out in order;
a report of published / acknowledged / failed counts at the end.

Payload (DESIGN.md): ``{"device_id", "seq", <measurements>, "timestamp"}`` on
``sensors/<thing>/telemetry``; ``seq`` counts per device, across runs, and is never
reused (:class:`SeqStore`): the ETL drops a reading whose ``(thing_name, seq)`` it
has seen, so a reused number would lose a new reading as a "duplicate".
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aircast.settings import Settings, load_settings, number_in_range
from device.readings import (
    Reading,
    iso_timestamp,
    parse_time,
    replay_beijing,
    simulate,
    simulated_thing_names,
)

DEFAULT_MAX_IN_FLIGHT = 100
DEFAULT_REPLAY_THING = "beijing-us-embassy"
#: seq numbers reserved (saved) ahead of use: a device killed with -9 skips fewer than this
SEQ_RESERVE = 256
#: After Ctrl-C: how long the device still waits for the acknowledgements of what it already sent.
STOP_DRAIN_S = 5.0


class DeviceError(RuntimeError):
    """The device could not do its job; the message says why and what to do."""


@dataclass(frozen=True)
class DeviceCredentials:
    """Certificate, private key and CA of one thing."""

    cert_path: Path
    key_path: Path
    ca_path: Path

    def check(self, thing_name: str) -> None:
        for label, p in (("certificate", self.cert_path), ("private key", self.key_path), ("CA", self.ca_path)):
            if not Path(p).is_file():
                raise DeviceError(f"{label} for thing {thing_name} not found at {p} "
                                  f"(locally: aircast local register-thing {thing_name})")


@dataclass
class PublishReport:
    """What happened to the readings handed to the publisher."""

    published: int = 0
    acknowledged: int = 0
    failed: int = 0
    things: int = 0
    interruptions: int = 0
    elapsed_s: float = 0.0
    stopped: bool = False  # Ctrl-C: the readings after the last published one were not sent
    last_seq: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (f"published {self.published} acknowledged {self.acknowledged} failed {self.failed} "
                f"({self.things} thing(s), {self.interruptions} interruption(s), {self.elapsed_s:.1f} s"
                f"{', stopped by Ctrl-C' if self.stopped else ''})")


def telemetry_topic(thing_name: str) -> str:
    return f"sensors/{thing_name}/telemetry"


def seq_keys(readings: Iterable[Reading]) -> set[tuple[str, int]]:
    """``(thing_name, seq)`` of each reading as one run numbers them, each thing from 1."""
    counters: dict[str, int] = {}
    keys = set()
    for r in readings:
        counters[r.thing_name] = counters.get(r.thing_name, 0) + 1
        keys.add((r.thing_name, counters[r.thing_name]))
    return keys


def make_payload(thing_name: str, seq: int, reading: Reading) -> bytes:
    """The device payload of DESIGN.md: device_id, seq, measurements, timestamp."""
    body: dict[str, Any] = {"device_id": thing_name, "seq": seq}
    body.update(reading.measurements)
    body["timestamp"] = iso_timestamp(reading.timestamp)
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


class _Fleet:
    """One MQTT connection per thing, a shared in-flight cap and shared counters."""

    def __init__(self, host: str, port: int, max_in_flight: int, report: PublishReport,
                 log: Callable[[str], None], claim_seq: Callable[[str, int], None] | None = None) -> None:
        if max_in_flight < 1:
            raise DeviceError("max_in_flight must be at least 1")
        self.host, self.port = host, port
        self.report = report
        self.log = log
        self.lock = threading.Lock()
        self.slots = threading.Semaphore(max_in_flight)
        self.outstanding: set[Future] = set()
        self.connections: dict[str, Any] = {}
        self.seq: dict[str, int] = {}
        self.claim_seq = claim_seq

    def connect(self, thing_name: str, creds: DeviceCredentials, first_seq: int, timeout_s: float) -> None:
        from awscrt import mqtt
        from awsiot import mqtt_connection_builder

        creds.check(thing_name)

        def interrupted(connection, error, **kwargs) -> None:
            with self.lock:
                self.report.interruptions += 1
            self.log(f"device {thing_name}: connection interrupted ({error}); reconnecting with backoff")

        def resumed(connection, return_code, session_present, **kwargs) -> None:
            self.log(f"device {thing_name}: connection resumed ({return_code}, session present {session_present})")

        connection = mqtt_connection_builder.mtls_from_path(
            endpoint=self.host, port=self.port, cert_filepath=str(creds.cert_path),
            pri_key_filepath=str(creds.key_path), ca_filepath=str(creds.ca_path),
            client_id=thing_name, clean_session=False, keep_alive_secs=30, ping_timeout_ms=3000,
            reconnect_min_timeout_secs=1, reconnect_max_timeout_secs=16,
            on_connection_interrupted=interrupted, on_connection_resumed=resumed)
        deadline = time.monotonic() + timeout_s
        backoff = 0.5
        while True:
            try:
                connection.connect().result(timeout=max(1.0, deadline - time.monotonic()))
                break
            except Exception as exc:  # awscrt raises AwsCrtError subclasses and timeouts
                if time.monotonic() + backoff > deadline:
                    raise DeviceError(f"device {thing_name} cannot connect to {self.host}:{self.port}: {exc} "
                                      "(locally: is the stack up? aircast local up)") from exc
                time.sleep(backoff)
                backoff = min(backoff * 2, 8.0)
        self.connections[thing_name] = (connection, mqtt.QoS.AT_LEAST_ONCE)
        self.seq[thing_name] = first_seq - 1

    def publish(self, reading: Reading, stop_requested: Callable[[], bool] | None = None) -> bool:
        """Send one reading once an in-flight slot is free; False (no seq used, nothing sent) when
        ``stop_requested()`` turned true while waiting for the slot."""
        if stop_requested is None:
            self.slots.acquire()
        else:
            while not self.slots.acquire(timeout=0.05):
                if stop_requested():
                    return False
        connection, qos = self.connections[reading.thing_name]
        seq = self.seq[reading.thing_name] + 1
        if self.claim_seq is not None:
            self.claim_seq(reading.thing_name, seq)  # saved before it can reach the broker
        self.seq[reading.thing_name] = seq
        payload = make_payload(reading.thing_name, seq, reading)
        try:
            future, _ = connection.publish(telemetry_topic(reading.thing_name), payload, qos)
        except Exception as exc:
            self.slots.release()
            with self.lock:
                self.report.published += 1
                self.report.failed += 1
                self._note_error(f"{reading.thing_name} seq {seq}: {exc}")
            return True
        with self.lock:
            self.report.published += 1
            self.report.last_seq[reading.thing_name] = seq
            self.outstanding.add(future)
        future.add_done_callback(self._done)
        return True

    def _note_error(self, text: str) -> None:
        if len(self.report.errors) < 10:
            self.report.errors.append(text)

    def _done(self, future: Future) -> None:
        exc = future.exception()
        with self.lock:
            self.outstanding.discard(future)
            if exc is None:
                self.report.acknowledged += 1
            else:
                self.report.failed += 1
                self._note_error(str(exc))
        self.slots.release()

    def in_flight(self) -> int:
        with self.lock:
            return len(self.outstanding)

    def drain(self, timeout_s: float) -> None:
        """Wait for outstanding acknowledgements; what is still unacknowledged then counts as failed."""
        deadline = time.monotonic() + timeout_s
        while self.in_flight() and time.monotonic() < deadline:
            time.sleep(0.01)
        with self.lock:
            if self.outstanding:
                self.report.failed += len(self.outstanding)
                self._note_error(f"{len(self.outstanding)} publish(es) unacknowledged after {timeout_s:.0f} s")
                self.outstanding.clear()

    def close(self) -> None:
        for connection, _ in self.connections.values():
            try:
                connection.disconnect().result(timeout=5)
            except Exception:  # closing a connection that is already gone is fine
                pass


def publish_fleet(readings: Iterable[Reading], credentials: Callable[[str], DeviceCredentials],
                  host: str, port: int, *, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT, speed: float = 0.0,
                  first_seq: Callable[[str], int] = lambda thing: 1, ack_timeout_s: float = 60.0,
                  connect_timeout_s: float = 10.0, progress: Callable[[PublishReport], None] | None = None,
                  progress_every_s: float = 5.0, log: Callable[[str], None] = lambda m: None,
                  claim_seq: Callable[[str, int], None] | None = None,
                  stop_requested: Callable[[], bool] | None = None) -> PublishReport:
    """Publish readings (any number of things, in the order given) and wait for their acknowledgements.

    ``speed`` paces by the readings' own timestamps (3600 = one hour of readings per
    second; 0 = as fast as acknowledgements allow). Each thing connects on its first
    reading with its own certificate. ``claim_seq(thing, seq)`` is called before each
    seq is used (:meth:`SeqStore.claim`). Once ``stop_requested()`` (read between
    readings and while waiting) turns true, no further reading is sent, the ones in flight
    get up to ``STOP_DRAIN_S`` for their acknowledgements and the report says ``stopped``.
    Returns the counts; never raises for a failed publish (it is counted), raises
    :class:`DeviceError` when a thing cannot connect.
    """
    report = PublishReport()
    fleet = _Fleet(host, port, max_in_flight, report, log, claim_seq)
    t0 = time.monotonic()
    first_ts: dt.datetime | None = None
    next_progress = t0 + progress_every_s
    stopping = stop_requested or (lambda: False)
    try:
        for reading in readings:
            if stopping():
                break
            if reading.thing_name not in fleet.connections:
                fleet.connect(reading.thing_name, credentials(reading.thing_name), first_seq(reading.thing_name),
                              connect_timeout_s)
                report.things = len(fleet.connections)
            if speed > 0:
                first_ts = first_ts or reading.timestamp
                due = t0 + (reading.timestamp - first_ts).total_seconds() / speed
                while (wait := due - time.monotonic()) > 0 and not stopping():
                    time.sleep(min(wait, 0.05))
                if stopping():
                    break
            if not fleet.publish(reading, stop_requested):
                break
            if progress is not None and time.monotonic() >= next_progress:
                report.elapsed_s = time.monotonic() - t0
                progress(report)
                next_progress = time.monotonic() + progress_every_s
        if stopping():
            report.stopped = True
            log(f"device: stopping: no more readings; waiting up to {STOP_DRAIN_S:.0f} s for "
                f"{fleet.in_flight()} acknowledgement(s) (Ctrl-C again to quit at once)")
            fleet.drain(min(ack_timeout_s, STOP_DRAIN_S))
        else:
            fleet.drain(ack_timeout_s)
    finally:
        fleet.close()
        report.elapsed_s = time.monotonic() - t0
    if progress is not None:
        progress(report)
    return report


@contextlib.contextmanager
def ctrl_c_requests_stop() -> Iterator[Callable[[], bool]]:
    """Within: the first Ctrl-C asks the publisher to stop (what it returns turns true), a second one
    interrupts at once (``KeyboardInterrupt``).

    A ``KeyboardInterrupt`` raised wherever the main thread happens to be can land inside a lock the
    MQTT client's callback thread also takes (``with lock:`` is not atomic against it), leaving that
    thread blocked for good and the process hanging at exit. The handler only sets a flag, with no
    lock (it runs between any two bytecodes of the main thread), and the publishing loop reads it.
    Outside the main thread (no signal handlers there) it never turns true.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    requested = [False]
    previous = signal.getsignal(signal.SIGINT)
    restore = previous if previous is not None else signal.default_int_handler

    def handler(signum: int, frame: Any) -> None:
        requested[0] = True
        signal.signal(signal.SIGINT, restore)  # a second Ctrl-C interrupts at once

    signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: requested[0]
    finally:
        signal.signal(signal.SIGINT, restore)


# ---- per-device sequence state (seq keeps counting across runs) -------------------
def seq_state_dir(settings: Settings) -> Path:
    """Where the device keeps each thing's ``seq`` counter."""
    return settings.data_dir / "device"


class SeqStore:
    """Per-device ``seq`` counters in ``<dir>/<thing>.seq`` that no run ever reuses.

    A file holds the highest seq that may have gone out. Before a seq beyond that
    goes out, :meth:`claim` saves a reservation ``SEQ_RESERVE`` further (durably, so
    a ``kill -9`` or a power cut leaves the next run above every seq it used, skipping
    fewer than ``SEQ_RESERVE`` numbers); :meth:`close` saves the exact last seq, so a
    normal end, Ctrl-C or an error leaves no gap. Use it as a context manager.
    """

    def __init__(self, directory: Path, reserve: int = SEQ_RESERVE) -> None:
        self.directory = Path(directory)
        self.reserve = max(1, reserve)
        self.reserved: dict[str, int] = {}
        self.used: dict[str, int] = {}

    def path(self, thing_name: str) -> Path:
        return self.directory / f"{thing_name}.seq"

    def next_seq(self, thing_name: str) -> int:
        """The first seq this run may use for ``thing_name``."""
        try:
            last = int(self.path(thing_name).read_text().strip())
        except (OSError, ValueError):
            last = 0
        self.reserved[thing_name] = last
        return last + 1

    def claim(self, thing_name: str, seq: int) -> None:
        """Record that ``seq`` is about to be used; save a new reservation first when needed."""
        self.used[thing_name] = max(seq, self.used.get(thing_name, 0))
        if seq > self.reserved.get(thing_name, 0):
            self._save(thing_name, seq + self.reserve - 1)
            self.reserved[thing_name] = seq + self.reserve - 1

    def close(self) -> None:
        """Save the last seq each thing used (giving back the unused rest of its reservation)."""
        for thing, seq in self.used.items():
            if seq != self.reserved.get(thing):
                self._save(thing, seq)
                self.reserved[thing] = seq

    def _save(self, thing_name: str, seq: int) -> None:
        path = self.path(thing_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as fh:
            fh.write(str(seq))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def __enter__(self) -> SeqStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- command line ------------------------------------------------------------------
MAX_SIMULATED_THINGS = 1000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``iot-device`` and ``aircast device``."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--replay", metavar="FILE", type=Path,
                        help="replay the Beijing PM2.5 hourly CSV (data/beijing_pm25_hourly.csv)")
    source.add_argument("--simulate", metavar="N", type=number_in_range(int, 1, MAX_SIMULATED_THINGS), help="simulate N sensors (things sim-sensor-001...)")
    parser.add_argument("--thing", help=f"thing name for --replay (default {DEFAULT_REPLAY_THING}) or --simulate 1")
    parser.add_argument("--prefix", default="sim-sensor", help="thing name prefix for --simulate")
    parser.add_argument("--start", type=parse_time,
                        help="first reading's time, ISO (simulate: default --hours before now; replay: skip earlier rows)")
    parser.add_argument("--hours", type=number_in_range(int, 1),
                        help="hours of readings (simulate: default 168 = a week of backfill; replay: default all)")
    parser.add_argument("--shift-to", type=parse_time,
                        help="replay: move timestamps so the first replayed reading is at this time")
    parser.add_argument("--speed", type=number_in_range(float, 0), default=0.0,
                        help="data seconds per wall second, e.g. 3600 = an hour per second (default 0: as fast as possible)")
    parser.add_argument("--seed", type=int, default=0, help="random seed of --simulate")
    parser.add_argument("--endpoint", help="MQTT host: AWS IoT ATS endpoint, or the local broker (default from settings)")
    parser.add_argument("--port", type=number_in_range(int, 1, 65535), help="MQTT port (default from settings, 8883)")
    parser.add_argument("--cert", type=Path, help="client certificate (single thing); default: <certs-dir>/<thing>/cert.pem")
    parser.add_argument("--key", type=Path, help="private key (single thing); default: <certs-dir>/<thing>/key.pem")
    parser.add_argument("--ca", type=Path, help="CA certificate (AWS: AmazonRootCA1.pem; default: the local CA)")
    parser.add_argument("--certs-dir", type=Path, help="folder with <thing>/cert.pem and key.pem (default: local PKI)")
    parser.add_argument("--max-in-flight", type=number_in_range(int, 1), default=DEFAULT_MAX_IN_FLIGHT,
                        help=f"cap on unacknowledged publishes (default {DEFAULT_MAX_IN_FLIGHT})")
    parser.add_argument("--ack-timeout", type=number_in_range(float, 0, low_open=True), default=60.0,
                        help="seconds to wait for the last acknowledgements before counting them failed")
    parser.add_argument("--json", action="store_true", help="print the final report as JSON")


def plan(args: argparse.Namespace) -> tuple[list[str], Iterable[Reading]]:
    """Thing names and readings the arguments ask for."""
    if args.replay is not None:
        if not Path(args.replay).is_file():
            raise DeviceError(f"replay file {args.replay} not found (the project ships data/beijing_pm25_hourly.csv)")
        thing = args.thing or DEFAULT_REPLAY_THING
        return [thing], replay_beijing(Path(args.replay), thing, start=args.start, hours=args.hours,
                                       shift_to=args.shift_to)
    if (args.cert or args.thing) and args.simulate != 1:
        raise DeviceError("--cert/--key and --thing name one thing: use them with --simulate 1, or --certs-dir")
    if args.cert and not args.thing:
        # the topic must carry the certificate's thing name, or the broker/IoT policy drops the messages
        raise DeviceError("with --cert give --thing, the thing name the certificate belongs to")
    hours = args.hours if args.hours is not None else 168
    start = args.start or (dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
                           - dt.timedelta(hours=hours - 1))
    readings = simulate(args.simulate, start, hours, args.prefix, args.seed)
    if args.thing:
        return [args.thing], (Reading(args.thing, r.timestamp, r.measurements) for r in readings)
    return simulated_thing_names(args.simulate, args.prefix), readings


def credentials_for(args: argparse.Namespace, settings: Settings) -> Callable[[str], DeviceCredentials]:
    certs_dir = args.certs_dir or settings.pki_dir / "things"
    ca = args.ca or settings.pki_dir / "ca.pem"

    def lookup(thing: str) -> DeviceCredentials:
        if args.cert or args.key:
            if not (args.cert and args.key):
                raise DeviceError("give both --cert and --key")
            return DeviceCredentials(args.cert, args.key, ca)
        return DeviceCredentials(certs_dir / thing / "cert.pem", certs_dir / thing / "key.pem", ca)

    return lookup


def run(args: argparse.Namespace, settings: Settings,
        prepare_things: Callable[[list[str]], None] | None = None) -> PublishReport:
    """Run the device as the arguments say; ``prepare_things`` may register local certificates first."""
    things, readings = plan(args)
    if settings.backend == "aws" and not (args.ca and (args.cert or args.certs_dir)):
        raise DeviceError("on AWS IoT Core give --ca (AmazonRootCA1.pem) and the thing's --cert/--key "
                          "(or --certs-dir with <thing>/cert.pem and key.pem)")
    if prepare_things is not None and not (args.cert or args.certs_dir):
        prepare_things(things)
    host = args.endpoint or settings.iot_endpoint or settings.mqtt_host
    port = args.port or settings.mqtt_port

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def progress(report: PublishReport) -> None:
        log(f"device: published {report.published} acknowledged {report.acknowledged} failed {report.failed}")

    log(f"device: {len(things)} thing(s) → {host}:{port} (QoS 1, max {args.max_in_flight} in flight, "
        f"speed {args.speed or 'max'})")
    # seqs are saved as they go, and on any exit
    with SeqStore(seq_state_dir(settings)) as seqs, ctrl_c_requests_stop() as stop_requested:
        return publish_fleet(readings, credentials_for(args, settings), host, port,
                             max_in_flight=args.max_in_flight, speed=args.speed, first_seq=seqs.next_seq,
                             claim_seq=seqs.claim, ack_timeout_s=args.ack_timeout, progress=progress, log=log,
                             stop_requested=stop_requested)


def print_report(report: PublishReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.summary())
        for err in report.errors:
            print(f"  error: {err}")


def main(argv: list[str] | None = None) -> int:
    """``iot-device``: publish replayed or simulated readings; exit 1 if any publish failed."""
    parser = argparse.ArgumentParser(prog="iot-device", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="aircast data dir (local PKI and seq state; env AIRCAST_DATA_DIR)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        settings = load_settings(data_dir=args.data_dir)
        report = run(args, settings)
    except (DeviceError, ValueError) as exc:
        print(f"iot-device: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("iot-device: interrupted", file=sys.stderr)
        return 130
    print_report(report, args.json)
    if report.stopped:
        print("iot-device: interrupted", file=sys.stderr)
        return 130
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())

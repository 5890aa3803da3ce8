"""Ingestion benchmark: device → broker → delivery stream → lake, against the raw broker path.

``python -m bench.ingest --messages N`` starts a private local IoT Core (mosquitto,
mutual TLS) on a free port in a temp data dir, then on that same broker:

1. raw path (the baseline): the awsiotsdk device (QoS 1, capped in-flight) → broker →
   a plain paho subscriber (QoS 1) in its own process (:mod:`bench.raw_subscriber`),
   N messages, timed until the subscriber has received the last one;
2. lake path: the same device code → broker → IoT rule + Firehose delivery stream
   (its own process, paho as well) → durable objects in the raw lake, N messages,
   timed until the stream has flushed everything (so the last object is on disk).

Both paths publish with the same device code and consume in a separate process with
the same MQTT library, so the ratio measures what delivery adds (the rule, buffering,
fsynced object writes, acknowledging after the write) and falls below 1 when delivery
is the bottleneck. The last line printed is one JSON object with ``delivered``,
``lost``, ``lake_msgs_per_s``, ``broker_msgs_per_s`` and ``ratio`` (lake / broker;
rates are medians of ``--runs`` runs per path, each run's rate listed too), plus
``broker_received`` and the ``baseline`` in words. Goal: ``lost`` 0 and
``ratio`` >= 0.8, i.e. delivery costs at most a fifth of the raw path's throughput.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from aircast import local_wiring
from aircast.lake_paths import local_raw_telemetry_dir
from aircast.local_wiring import flush
from aircast.settings import Settings, load_settings, settings_env
from bench import pyplot
from device.publisher import DeviceCredentials, publish_fleet, seq_keys
from device.readings import Reading, simulate
from infra.local import stack
from infra.local.iot_core import pki

SERVICES = ("iot_core", "firehose")


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


BASELINE = "device -> broker -> paho subscriber (QoS 1) in its own process"


def _device_credentials(settings: Settings, readings: list[Reading]) -> Callable[[str], DeviceCredentials]:
    """Register the readings' things (setup, not part of the timing); return the device's lookup."""
    def creds(thing: str) -> DeviceCredentials:
        c = pki.register_thing(settings.pki_dir, thing)
        return DeviceCredentials(c.cert_path, c.key_path, c.ca_path)

    for thing in {r.thing_name for r in readings}:
        creds(thing)
    return creds


def raw_broker_path(settings: Settings, readings: list[Reading], max_in_flight: int, timeout: float) -> dict:
    """device → mosquitto → a paho subscriber process, QoS 1 both ways; messages/s end to end."""
    creds = _device_credentials(settings, readings)
    sub = subprocess.Popen([sys.executable, "-m", "bench.raw_subscriber", "--data-dir", str(settings.data_dir),
                            "--messages", str(len(readings)), "--timeout", str(timeout)],
                           env={**os.environ, **settings_env(settings)}, stdout=subprocess.PIPE, text=True)
    try:
        assert sub.stdout is not None
        if sub.stdout.readline().strip() != "ready":
            raise RuntimeError("the raw subscriber could not subscribe")
        t0 = time.monotonic()
        report = publish_fleet(readings, creds, settings.mqtt_host, settings.mqtt_port, max_in_flight=max_in_flight,
                               ack_timeout_s=timeout)
        published_s = time.monotonic() - t0
        out, _ = sub.communicate(timeout=timeout)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    result = json.loads(out.strip().splitlines()[-1])
    elapsed = (result["last_at"] - t0) if result["received"] else float("inf")
    return {"report": report, "received": result["received"], "published_s": published_s, "elapsed_s": elapsed,
            "msgs_per_s": result["received"] / elapsed if result["received"] else 0.0}


def lake_path(settings: Settings, readings: list[Reading], max_in_flight: int, timeout: float) -> dict:
    """awsiotsdk device → mosquitto → delivery stream → lake; timed until everything is written."""
    creds = _device_credentials(settings, readings)
    t0 = time.monotonic()
    report = publish_fleet(readings, creds, settings.mqtt_host, settings.mqtt_port, max_in_flight=max_in_flight,
                           ack_timeout_s=timeout)
    published_s = time.monotonic() - t0
    flush(settings, timeout)
    elapsed = time.monotonic() - t0
    return {"report": report, "published_s": published_s, "elapsed_s": elapsed,
            "msgs_per_s": len(readings) / elapsed if elapsed > 0 else 0.0}


def lake_keys(settings: Settings) -> tuple[collections.Counter[tuple[str, int]], int]:
    """How often each (thing_name, seq) is in the raw lake, and how many objects hold them."""
    keys: collections.Counter[tuple[str, int]] = collections.Counter()
    root = local_raw_telemetry_dir(settings)
    objects = [p for p in root.rglob("*") if p.is_file()] if root.is_dir() else []
    for path in objects:
        for line in path.read_bytes().splitlines():
            rec = json.loads(line)
            keys[(rec["thing_name"], rec["seq"])] += 1
    return keys, len(objects)


def _plot(out_dir: Path, result: dict) -> Path:
    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(["raw broker\n(device → subscriber)", "lake\n(device → stream → lake)"],
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
    parser.add_argument("--things", type=int, default=1, help="devices on each path (default 1)")
    parser.add_argument("--max-in-flight", type=int, default=1000, help="unacknowledged publishes per path")
    parser.add_argument("--runs", type=int, default=3,
                        help="runs of each path; the rates are their medians (default 3)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds each path may take")
    parser.add_argument("--out", type=Path, default=Path("bench/out"), help="folder for the plot")
    args = parser.parse_args(argv)
    if args.messages < 1:
        parser.error("--messages must be at least 1")

    if args.runs < 1:
        parser.error("--runs must be at least 1")

    raws: list[dict] = []
    lakes: list[dict] = []
    all_readings: list[Reading] = []
    with tempfile.TemporaryDirectory(prefix="aircast-bench-") as tmp:
        settings = load_settings(data_dir=Path(tmp), mqtt_port=_free_port(), endpoint_port=_free_port(),
                                 eventbus_port=0)
        config = settings.local_config()
        iot_core, firehose = local_wiring.stack_services(settings, SERVICES)
        _log(f"bench: broker on 127.0.0.1:{settings.mqtt_port}, {args.messages} messages per path and run, "
             f"{args.runs} run(s) each")
        stack.start_service(iot_core, config)
        try:
            # Interleaved, so drift in the machine's load hits both paths alike. The raw subscriber
            # takes the delivery stream's identity with a clean session, which also discards the
            # stopped stream's session: no raw message is queued for the stream.
            for i in range(args.runs):
                raw = raw_broker_path(settings, bench_readings(args.messages, args.things, f"bench-raw{i}"),
                                      args.max_in_flight, args.timeout)
                raws.append(raw)
                _log(f"bench: raw broker path {i + 1}: device {raw['report'].summary()}; {raw['received']} received "
                     f"by the subscriber in {raw['elapsed_s']:.2f} s = {raw['msgs_per_s']:.0f} msg/s")
                stack.start_service(firehose, config)
                readings = bench_readings(args.messages, args.things, f"bench-device{i}")
                all_readings += readings
                lake = lake_path(settings, readings, args.max_in_flight, args.timeout)
                lakes.append(lake)
                stack.stop_service(firehose, config)
                _log(f"bench: lake path {i + 1}: device {lake['report'].summary()}; delivered in "
                     f"{lake['elapsed_s']:.2f} s = {lake['msgs_per_s']:.0f} msg/s "
                     f"(publishing took {lake['published_s']:.2f} s)")
            keys, objects = lake_keys(settings)
        finally:
            stack.down(config, [iot_core, firehose])
    expected = seq_keys(all_readings)
    delivered = len(expected & set(keys))
    raw_median = statistics.median(r["msgs_per_s"] for r in raws)
    lake_median = statistics.median(r["msgs_per_s"] for r in lakes)
    result = {
        "messages": args.messages,
        "runs": args.runs,
        "delivered": delivered,
        "lost": len(expected) - delivered,
        "duplicates": sum(c - 1 for c in keys.values()),
        "device_acknowledged": sum(r["report"].acknowledged for r in lakes),
        "device_failed": sum(r["report"].failed for r in lakes),
        "objects": objects,
        "lake_elapsed_s": round(statistics.median(r["elapsed_s"] for r in lakes), 3),
        "broker_elapsed_s": round(statistics.median(r["elapsed_s"] for r in raws), 3),
        "lake_msgs_per_s": round(lake_median, 1),
        "broker_msgs_per_s": round(raw_median, 1),
        "ratio": round(lake_median / raw_median, 3) if raw_median else 0.0,
        "broker_received": sum(r["received"] for r in raws),
        "broker_device_acknowledged": sum(r["report"].acknowledged for r in raws),
        "lake_runs_msgs_per_s": [round(r["msgs_per_s"], 1) for r in lakes],
        "broker_runs_msgs_per_s": [round(r["msgs_per_s"], 1) for r in raws],
        "baseline": BASELINE,
    }
    plot = _plot(args.out, result)
    if plot:
        _log(f"bench: plot {plot}")
    print(json.dumps(result))
    return 0 if result["lost"] == 0 and result["broker_received"] == args.messages * args.runs else 1


if __name__ == "__main__":
    sys.exit(main())

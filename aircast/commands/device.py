"""`aircast device ...`: run the sensor client (same options as the `iot-device` script)."""

from __future__ import annotations

import argparse

from aircast.output import CommandError, UsageError
from aircast.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add `aircast device (--replay FILE | --simulate N) [...]`."""
    from device.publisher import add_arguments

    p = sub.add_parser("device", help="publish replayed or simulated sensor readings over MQTT (mutual TLS)",
                       description="Publish readings as one or more things with the AWS IoT Device SDK v2. "
                                   "On the local backend, things get certificates from the local CA on first use.")
    add_arguments(p)
    p.set_defaults(func=cmd_device)


def cmd_device(args: argparse.Namespace, settings: Settings) -> int:
    from device.publisher import DeviceError, print_report, run

    prepare = None
    if settings.backend == "local":
        from infra.local.iot_core import pki

        def prepare(things: list[str]) -> None:
            for thing in things:
                try:
                    pki.register_thing(settings.pki_dir, thing)
                except pki.PKIError as exc:
                    raise CommandError(str(exc)) from exc
    elif not (args.endpoint or settings.iot_endpoint):
        raise UsageError("on the aws backend give --endpoint (your AWS IoT ATS endpoint) or AIRCAST_IOT_ENDPOINT")
    try:
        report = run(args, settings, prepare_things=prepare)
    except DeviceError as exc:
        raise CommandError(str(exc)) from exc
    print_report(report, args.json)
    if report.stopped:
        return 130  # Ctrl-C: the rest of the readings were not sent
    return 1 if report.failed else 0

"""`aircast local ...`: the embedded local stack (broker, delivery stream, ...) and thing identities."""

from __future__ import annotations

import argparse

from aircast.cli import add_group
from aircast.output import CommandError, UsageError, print_json, print_kv, print_table
from aircast.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `local` command group: up, down, status, register-thing."""
    group = add_group(sub, "local", "run the local stand-ins of the AWS services on this machine")
    for name, func, text in (("up", cmd_up, "start the local stack (IoT Core broker, delivery stream, ...)"),
                             ("down", cmd_down, "stop the local stack"),
                             ("status", cmd_status, "PIDs, ports and state of the local stack")):
        p = group.add_parser(name, help=text, description=text)
        p.add_argument("services", nargs="*", metavar="SERVICE",
                       help="only these services (e.g. iot_core firehose); default: the whole stack")
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)
    p = group.add_parser("register-thing", help="make a thing's certificate and key; print how to connect as it")
    p.add_argument("name", help="thing name ([A-Za-z0-9_-]{1,64})")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_register_thing)


def _print_rows(rows: list[dict], as_json: bool, columns: list[str]) -> None:
    if as_json:
        print_json(rows)
    else:
        print_table(rows, columns)


def _require_local(settings: Settings) -> None:
    if settings.backend != "local":
        raise UsageError(f"aircast local works on the local backend (this one is {settings.backend!r}); "
                           "use --backend local or AIRCAST_BACKEND=local")


def _services(names: list[str]) -> tuple[str, ...]:
    """The named services, refused in one line when the stack has no such service."""
    from aircast.local_wiring import LOCAL_SERVICES

    unknown = [n for n in names if n not in LOCAL_SERVICES]
    if unknown:
        raise UsageError(f"unknown service(s) {', '.join(unknown)}; the stack has {', '.join(LOCAL_SERVICES)}")
    return tuple(names)


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from aircast import local_wiring
    from infra.local.stack import StackError

    _require_local(settings)
    services = _services(args.services)
    try:
        rows = local_wiring.up(settings, services)
    except StackError as exc:
        raise CommandError(str(exc)) from exc
    if any(row["service"] == "eventbridge" for row in rows):
        # what the CloudFormation stack creates on AWS: the approval, drift and schedule rules
        # (through the bus just started)
        local_wiring.install_rules(settings)
    _print_rows(rows, args.json, ["service", "state", "pid", "port"])
    if not args.json and any(r["service"] == "console" for r in rows):
        from aircast.console.service import login_url

        print(f"\nconsole: {login_url(settings)}")
    return 0


def cmd_down(args: argparse.Namespace, settings: Settings) -> int:
    from aircast import local_wiring

    _require_local(settings)
    rows = local_wiring.down(settings, _services(args.services))
    _print_rows(rows, args.json, ["service", "state", "pid"])
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from aircast import local_wiring

    _require_local(settings)
    rows = local_wiring.status(settings, _services(args.services))
    _print_rows(rows, args.json, ["service", "state", "pid", "port", "listening", "detail", "log"])
    return 0


def cmd_register_thing(args: argparse.Namespace, settings: Settings) -> int:
    from infra.local.iot_core import pki

    _require_local(settings)
    try:
        creds = pki.register_thing(settings.pki_dir, args.name)
    except pki.PKIError as exc:  # an invalid or reserved thing name
        raise UsageError(str(exc)) from exc
    # the broker refuses any client id but the thing name (as AWS IoT's thing policy does)
    info = {**creds.as_dict(), "host": settings.mqtt_host, "port": settings.mqtt_port,
            "client_id": creds.thing_name, "topic": f"sensors/{creds.thing_name}/telemetry"}
    if args.json:
        print_json(info)
    else:
        print_kv(info)
        print(f"\ntry: mosquitto_pub -h {info['host']} -p {info['port']} --cafile {info['ca']} "
              f"--cert {info['cert']} --key {info['key']} -i {info['client_id']} -q 1 -t {info['topic']} "
              f"-m '{{\"pm2_5\": 12.5}}'")
    return 0

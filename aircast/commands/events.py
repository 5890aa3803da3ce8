"""`aircast events ...`: EventBridge rules, their targets, and (local bus) the delivery history."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from aircast.cli import add_group, bounded_int
from aircast.clients import get_client
from aircast.output import CommandError, UsageError, parse_assignments, print_json, print_kv, print_table
from aircast.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `events` command group."""
    group = add_group(sub, "events", "EventBridge rules (schedules, approval → deploy, drift → retrain) and history")

    p = group.add_parser("rules", help="list rules with their targets and next scheduled firing")
    p.add_argument("--prefix", help="only rules whose name starts with this")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_rules)

    p = group.add_parser("put-rule", help="create or update a rule (schedule or event pattern) and its targets")
    p.add_argument("name")
    p.add_argument("--schedule", help="rate(5 minutes) or cron(0 3 ? * SUN *)")
    p.add_argument("--pattern", help="event pattern JSON, or @file.json")
    p.add_argument("--target", action="append", default=[], metavar="ARN",
                   help="target ARN: a Lambda function or a SageMaker pipeline (repeatable)")
    p.add_argument("--pipeline-param", action="append", default=[], metavar="NAME=VALUE",
                   help="SageMakerPipelineParameters for pipeline targets (repeatable)")
    p.add_argument("--description")
    p.add_argument("--disabled", action="store_true", help="create the rule DISABLED")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_put_rule)

    p = group.add_parser("delete-rule", help="remove a rule's targets and delete it")
    p.add_argument("name")
    p.set_defaults(func=cmd_delete_rule)

    p = group.add_parser("put-event", help="put one event on the bus (matching rules fire)")
    p.add_argument("--source", required=True)
    p.add_argument("--detail-type", required=True)
    p.add_argument("--detail", default="{}", help="detail JSON, or @file.json")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_put_event)

    p = group.add_parser("history", help="recent events, the rules they matched and each target's outcome (local)")
    p.add_argument("--rule", help="only events that matched this rule")
    p.add_argument("--source", help="only events from this source")
    p.add_argument("--limit", type=bounded_int(1, 10_000), default=20, help="most recent events to show (default 20)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_history)

    p = group.add_parser("defaults", help="install aircast's rules (approval → deploy, drift → retrain, schedules)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_defaults)


def _client_error(exc: ClientError) -> CommandError:
    err = exc.response.get("Error", {})
    return CommandError(f"{err.get('Code', 'Error')}: {err.get('Message', exc)}")


def _text_or_file(value: str, what: str) -> str:
    if value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise UsageError(f"{what} file {path} does not exist")
        return path.read_text()
    return value


def rules_with_targets(settings: Settings, prefix: str | None = None) -> list[dict[str, Any]]:
    """Every rule with its targets (and, on the local bus, its next scheduled firing)."""
    events = get_client("events", settings)
    rules, token = [], None
    while True:
        kwargs: dict[str, Any] = {"NamePrefix": prefix} if prefix else {}
        if token:
            kwargs["NextToken"] = token
        page = events.list_rules(**kwargs)
        rules.extend(page["Rules"])
        token = page.get("NextToken")
        if not token:
            break
    next_fire: dict[str, Any] = {}
    if settings.backend == "local":  # the local scheduler knows its next fire times; AWS does not say
        from infra.local.eventbridge.client import LocalEventsClient

        next_fire = LocalEventsClient(settings.local_config()).next_fire_times()
    for rule in rules:
        rule["Targets"] = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
        when = next_fire.get(rule["Name"])
        rule["NextFire"] = when.strftime("%Y-%m-%dT%H:%M:%SZ") if when else None
    return rules


def cmd_rules(args: argparse.Namespace, settings: Settings) -> int:
    try:
        rules = rules_with_targets(settings, args.prefix)
    except ClientError as exc:
        raise _client_error(exc) from exc
    if args.json:
        print_json(rules)
        return 0
    print_table([{
        "name": r["Name"], "state": r["State"],
        "trigger": r.get("ScheduleExpression") or _short_pattern(r.get("EventPattern", "")),
        "targets": ", ".join(t["Arn"].rsplit(":", 1)[-1] for t in r["Targets"]) or "-",
        "next_fire": r["NextFire"],
    } for r in rules], empty="(no rules; `aircast events defaults` installs aircast's)")
    return 0


def _short_pattern(text: str) -> str:
    try:
        pattern = json.loads(text)
    except json.JSONDecodeError:
        return text
    parts = [f"{k}={','.join(map(str, v))}" for k, v in pattern.items() if isinstance(v, list)]
    if isinstance(pattern.get("detail"), dict):
        parts.append("detail{" + ",".join(pattern["detail"]) + "}")
    return " ".join(parts)


def cmd_put_rule(args: argparse.Namespace, settings: Settings) -> int:
    if not args.schedule and not args.pattern:
        raise UsageError("give --schedule 'rate(1 hour)' / 'cron(...)' or --pattern '{\"source\": [...]}'")
    params = [{"Name": name, "Value": value} for name, value in
              parse_assignments(args.pipeline_param, "--pipeline-param", "Epochs=5").items()]
    events = get_client("events", settings)
    kwargs: dict[str, Any] = {"Name": args.name, "State": "DISABLED" if args.disabled else "ENABLED"}
    if args.schedule:
        kwargs["ScheduleExpression"] = args.schedule
    if args.pattern:
        kwargs["EventPattern"] = _text_or_file(args.pattern, "--pattern")
    if args.description:
        kwargs["Description"] = args.description
    targets = []
    for i, arn in enumerate(args.target):
        target: dict[str, Any] = {"Id": f"target-{i + 1}", "Arn": arn}
        if ":pipeline/" in arn:
            target["RoleArn"] = settings.role_arn
            if params:
                target["SageMakerPipelineParameters"] = {"PipelineParameterList": params}
        targets.append(target)
    try:
        arn = events.put_rule(**kwargs)["RuleArn"]
        failed = events.put_targets(Rule=args.name, Targets=targets)["FailedEntries"] if targets else []
    except ClientError as exc:
        raise _client_error(exc) from exc
    if failed:
        raise CommandError("rule saved, but targets were rejected: " +
                           "; ".join(f"{f['TargetId']}: {f['ErrorMessage']}" for f in failed))
    result = {"RuleArn": arn, "Targets": [t["Arn"] for t in targets]}
    print_json(result) if args.json else print_kv(result)
    return 0


def cmd_delete_rule(args: argparse.Namespace, settings: Settings) -> int:
    events = get_client("events", settings)
    try:
        ids = [t["Id"] for t in events.list_targets_by_rule(Rule=args.name)["Targets"]]
        if ids:
            events.remove_targets(Rule=args.name, Ids=ids)
        events.delete_rule(Name=args.name)
    except ClientError as exc:
        raise _client_error(exc) from exc
    print(f"deleted rule {args.name}")
    return 0


def cmd_put_event(args: argparse.Namespace, settings: Settings) -> int:
    detail = _text_or_file(args.detail, "--detail")
    try:
        json.loads(detail)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--detail is not valid JSON: {exc}") from exc
    try:
        resp = get_client("events", settings).put_events(
            Entries=[{"Source": args.source, "DetailType": args.detail_type, "Detail": detail}])
    except ClientError as exc:
        raise _client_error(exc) from exc
    entry = resp["Entries"][0]
    if resp.get("FailedEntryCount"):
        raise CommandError(f"event rejected: {entry.get('ErrorCode')}: {entry.get('ErrorMessage')}")
    print_json(entry) if args.json else print(f"event {entry['EventId']} put")
    return 0


def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    if settings.backend != "local":
        raise UsageError("the delivery history is kept by the local bus; on AWS see the rule's CloudWatch metrics "
                           "(Invocations, FailedInvocations) or run with --backend local")
    from infra.local.eventbridge.client import LocalEventsClient

    rows = LocalEventsClient(settings.local_config()).history(limit=args.limit, rule=args.rule, source=args.source)
    if args.json:
        print_json(rows)
        return 0
    table = []
    for h in rows:
        invs = h["invocations"]
        table.append({
            "time": h["time"], "source": h["source"], "detail_type": h["detail_type"],
            "rules": ",".join(h["matched_rules"]) or "-",
            "outcome": "; ".join(f"{i['target_id']}:{i['status']}" + (f" ({i['error'][:60]})" if i["error"] else "")
                                 for i in invs) or "-",
        })
    print_table(table, empty="(no events yet)")
    return 0


def cmd_defaults(args: argparse.Namespace, settings: Settings) -> int:
    from aircast.event_rules import ensure_default_rules

    try:
        names = ensure_default_rules(settings, get_client("events", settings))
    except ClientError as exc:
        raise _client_error(exc) from exc
    print_json({"rules": names}) if args.json else print("installed rules: " + ", ".join(names))
    return 0

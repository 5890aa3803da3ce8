"""The local EventBridge (default event bus): the API and its validation.

The bus is four parts: this API (what EventBridge accepts and refuses, in its words), the store
(:mod:`.store`: rules, targets and the delivery history in SQLite, shared by every process of the data
dir), the targets (:mod:`.targets`: one sender per target service, and the delivery of an event to the
rules it matches) and the scheduler (:mod:`.scheduler`: scheduled rules firing when due).

:class:`LocalEventsClient` is the service backend: callers reach it through a real boto3 client
(in-process with :func:`infra.local.core.local_client`, or :func:`infra.local.core.jsonserver.remote_client`
against the bus process), so every request is validated against botocore's model first. It enforces what
EventBridge documents and answers in EventBridge's words:

- ``PutEvents``: 1-10 entries whose total size (EventBridge's entry-size calculation) stays under
  256 KB (else ``ValidationException`` "Total size of the entries in the request is over the
  limit."); per entry, ``Source``, ``DetailType`` and ``Detail`` are required (``InvalidArgument``
  "Parameter Source is not valid. Reason: Source is a required argument."), ``Detail`` is a JSON
  object (``MalformedDetail`` "Detail is malformed."), and sources starting with ``aws.`` belong to
  AWS services: a caller of ``PutEvents`` gets ``NotAuthorizedForSourceException`` "Not authorized
  for the source." The local stand-ins that play AWS services (the model registry's
  ``aws.sagemaker`` state changes, the scheduler's ``aws.events`` ticks) emit through
  :meth:`LocalEventsClient.put_service_events`, an in-process call no ``PutEvents`` caller reaches.
- ``PutRule``: event patterns validated as EventBridge validates them (``InvalidEventPatternException``,
  :mod:`~infra.local.eventbridge.patterns`), schedule expressions as ``rate()`` / ``cron()``
  (``ValidationException`` "Parameter ScheduleExpression is not valid.",
  :mod:`~infra.local.eventbridge.schedule`); "Parameter(s) EventPattern or ScheduleExpression must be
  specified."; only the ``default`` bus exists.
- ``PutTargets``: up to 5 targets per rule (``LimitExceededException``); a SageMaker pipeline target
  needs a ``RoleArn`` ("RoleArn is required for target ARN."); ``Input`` must be JSON. The local bus
  delivers to Lambda functions and SageMaker pipelines; other target types come back in
  ``FailedEntries`` (locally undeliverable), as does ``InputTransformer`` (aircast uses none).
  ``DeleteRule`` refuses while targets remain ("Rule can't be deleted since it has targets.").

Delivery is EventBridge's: each matching enabled rule's targets get the event as EventBridge
delivers it (the envelope ``version, id, detail-type, source, account, time, region, resources,
detail``, or the target's ``Input`` / ``InputPath``). A Lambda target is invoked asynchronously
(``InvocationType=Event``) through the local Lambda (:mod:`infra.local.awslambda`); a pipeline target
calls ``StartPipelineExecution`` with the target's ``SageMakerPipelineParameters`` on the local
SageMaker (:mod:`.targets`). A failing target never reaches the producer; the
history records every delivery and (locally only) the function's outcome (:meth:`LocalEventsClient.history`,
a local-only call). In-process
deliveries run before ``put_events`` returns (a CLI may exit right after); the bus process passes
``submit`` and delivers on its worker threads, as EventBridge delivers asynchronously.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from infra.local.core.arns import events_rule_arn
from infra.local.core.clock import iso_seconds_z, to_epoch
from infra.local.core.config import LocalConfig
from infra.local.core.errors import ServiceError
from infra.local.eventbridge import scheduler
from infra.local.eventbridge.patterns import InvalidEventPattern, parse_event_pattern
from infra.local.eventbridge.schedule import InvalidScheduleExpression, parse_schedule_expression
from infra.local.eventbridge.store import DEFAULT_BUS, EventStore
from infra.local.eventbridge.targets import Delivery, needs_role, target_problem

__all__ = ["DEFAULT_BUS", "LocalEventsClient", "entry_size", "rule_arn"]

MAX_ENTRIES_PER_PUT = 10
MAX_PUT_EVENTS_BYTES = 256 * 1024  # the total entry size of one PutEvents request must be less than this
MAX_TARGETS_PER_PUT = 10
MAX_TARGETS_PER_RULE = 5
AWS_SOURCE_PREFIX = "aws."
ENABLED_STATES = ("ENABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")
_NAME = re.compile(r"^[.\-_A-Za-z0-9]{1,64}$")


def rule_arn(config: LocalConfig, name: str) -> str:
    """``arn:aws:events:<region>:<account>:rule/<name>`` (default bus)."""
    return events_rule_arn(config.region, config.account_id, name)


def entry_size(entry: dict[str, Any]) -> int:
    """A ``PutEventsRequestEntry``'s size as EventBridge calculates it: ``Time`` counts 14 bytes,
    ``Source``, ``DetailType``, ``Detail`` and each of ``Resources`` their UTF-8 bytes."""
    size = 14 if entry.get("Time") is not None else 0
    for key in ("Source", "DetailType", "Detail"):
        if isinstance(entry.get(key), str):
            size += len(entry[key].encode())
    for resource in entry.get("Resources") or []:
        if isinstance(resource, str):
            size += len(resource.encode())
    return size


def _is_default_bus(bus: str | None) -> bool:
    return bus in (None, DEFAULT_BUS, "") or str(bus).endswith(f":event-bus/{DEFAULT_BUS}")


def _check_bus(bus: str | None, operation: str) -> None:
    if not _is_default_bus(bus):
        raise ServiceError.not_found("ResourceNotFoundException", f"Event bus {bus} does not exist.", operation)


def _page(items: list[Any], next_token: str | None, limit: int | None, operation: str) -> tuple[list[Any], str | None]:
    """One page of ``items`` from ``NextToken`` (an offset), and the next page's token."""
    if next_token and not next_token.isdigit():
        raise ServiceError.validation("The NextToken is not valid.", operation)
    start = int(next_token or 0)
    size = limit or 100
    return items[start:start + size], str(start + size) if start + size < len(items) else None


def _rule_dict(config: LocalConfig, row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"Name": row["name"], "Arn": rule_arn(config, row["name"])}
    if row["event_pattern"]:
        out["EventPattern"] = row["event_pattern"]
    if row["schedule_expression"]:
        out["ScheduleExpression"] = row["schedule_expression"]
    out["State"] = row["state"]
    if row["description"]:
        out["Description"] = row["description"]
    if row["role_arn"]:
        out["RoleArn"] = row["role_arn"]
    out["EventBusName"] = row["event_bus_name"]
    return out


def entry_problem(entry: dict[str, Any], service: bool) -> tuple[str, str] | None:
    """(ErrorCode, ErrorMessage) of a ``PutEvents`` entry EventBridge would refuse, else None;
    ``service``: the entry comes from an AWS service itself, which may use ``aws.*`` sources."""
    if not _is_default_bus(entry.get("EventBusName")):
        return "ResourceNotFoundException", f"Event bus {entry.get('EventBusName')} does not exist."
    for key in ("Source", "DetailType", "Detail"):
        if not entry.get(key):
            return "InvalidArgument", f"Parameter {key} is not valid. Reason: {key} is a required argument."
    if str(entry["Source"]).startswith(AWS_SOURCE_PREFIX) and not service:
        return "NotAuthorizedForSourceException", "Not authorized for the source."
    try:
        detail = json.loads(entry["Detail"])
    except (TypeError, ValueError):
        detail = None
    if not isinstance(detail, dict):
        return "MalformedDetail", "Detail is malformed."
    try:
        to_epoch(entry.get("Time"))
    except (TypeError, ValueError):
        return "InvalidArgument", "Parameter Time is not valid."
    return None


class LocalEventsClient:
    """The local EventBridge backend (default event bus only); see the module docstring.

    ``config``: the emulator's :class:`~infra.local.core.config.LocalConfig` (or any object with its
    four attributes). ``submit``: an executor's ``submit`` to deliver asynchronously (the bus process);
    without it deliveries run before ``put_events`` returns.
    """

    def __init__(self, config: Any, *, submit: Callable[..., Any] | None = None) -> None:
        self.config = LocalConfig.of(config)
        self.store = EventStore(self.config.data_dir)
        self.db_path: Path = self.store.path
        self.delivery = Delivery(self.config, self.store, submit=submit)

    # ---- rules ---------------------------------------------------------------
    def put_rule(self, *, Name: str, ScheduleExpression: str | None = None, EventPattern: str | None = None,
                 State: str = "ENABLED", Description: str | None = None, RoleArn: str | None = None,
                 Tags: list[dict[str, str]] | None = None, EventBusName: str | None = None) -> dict[str, Any]:
        """Create or update a rule; validates the pattern and schedule as EventBridge does."""
        op = "PutRule"
        _check_bus(EventBusName, op)
        if not isinstance(Name, str) or not _NAME.match(Name):
            raise ServiceError.validation(f"1 validation error detected: Value '{Name}' at 'name' failed to satisfy "
                                          r"constraint: Member must satisfy regular expression pattern: [\.\-_A-Za-z0-9]+",
                                          op)
        if not ScheduleExpression and not EventPattern:
            raise ServiceError.validation("Parameter(s) EventPattern or ScheduleExpression must be specified.", op)
        if State not in (*ENABLED_STATES, "DISABLED"):
            raise ServiceError.validation(f"1 validation error detected: Value '{State}' at 'state' failed to satisfy "
                                          f"constraint: Member must satisfy enum value set: "
                                          f"[{', '.join(ENABLED_STATES)}, DISABLED]", op)
        pattern_text = None
        if EventPattern:
            try:
                pattern_text = json.dumps(parse_event_pattern(EventPattern), separators=(",", ":"))
            except InvalidEventPattern as exc:
                raise ServiceError("InvalidEventPatternException", f"Event pattern is not valid. Reason: {exc}",
                                   400, op) from exc
        if ScheduleExpression:
            try:
                parse_schedule_expression(ScheduleExpression)
            except InvalidScheduleExpression as exc:
                raise ServiceError.validation(f"Parameter ScheduleExpression is not valid. Reason: {exc}", op) from exc
        self.store.save_rule(Name, event_pattern=pattern_text, schedule_expression=ScheduleExpression or None,
                             state=State, description=Description, role_arn=RoleArn)
        return {"RuleArn": rule_arn(self.config, Name)}

    def describe_rule(self, *, Name: str, EventBusName: str | None = None) -> dict[str, Any]:
        """The rule's definition, as ``DescribeRule`` returns it."""
        _check_bus(EventBusName, "DescribeRule")
        row = self.store.rule(Name, "DescribeRule")
        return {**_rule_dict(self.config, row), "CreatedBy": self.config.account_id}

    def list_rules(self, *, NamePrefix: str | None = None, EventBusName: str | None = None,
                   NextToken: str | None = None, Limit: int | None = None) -> dict[str, Any]:
        """Rules sorted by name, optionally filtered by prefix, paginated with NextToken."""
        _check_bus(EventBusName, "ListRules")
        page, token = _page(self.store.rules(NamePrefix or ""), NextToken, Limit, "ListRules")
        out: dict[str, Any] = {"Rules": [_rule_dict(self.config, r) for r in page]}
        if token:
            out["NextToken"] = token
        return out

    def enable_rule(self, *, Name: str, EventBusName: str | None = None) -> dict[str, Any]:
        """Set the rule's state to ENABLED."""
        _check_bus(EventBusName, "EnableRule")
        self.store.set_state(Name, "ENABLED", "EnableRule")
        return {}

    def disable_rule(self, *, Name: str, EventBusName: str | None = None) -> dict[str, Any]:
        """Set the rule's state to DISABLED (its targets are kept but not invoked)."""
        _check_bus(EventBusName, "DisableRule")
        self.store.set_state(Name, "DISABLED", "DisableRule")
        return {}

    def delete_rule(self, *, Name: str, EventBusName: str | None = None, Force: bool = False) -> dict[str, Any]:
        """Delete a rule; like AWS, refuses while the rule still has targets."""
        _check_bus(EventBusName, "DeleteRule")
        self.store.delete_rule(Name, "DeleteRule")
        return {}

    # ---- targets -------------------------------------------------------------
    def put_targets(self, *, Rule: str, Targets: list[dict[str, Any]],
                    EventBusName: str | None = None) -> dict[str, Any]:
        """Add or replace targets of a rule; unusable targets come back in ``FailedEntries``."""
        op = "PutTargets"
        _check_bus(EventBusName, op)
        if not Targets or len(Targets) > MAX_TARGETS_PER_PUT:
            raise ServiceError.validation(f"1 validation error detected: Value at 'targets' failed to satisfy "
                                          f"constraint: Member must have length between 1 and {MAX_TARGETS_PER_PUT}",
                                          op)
        for target in Targets:
            if needs_role(target) and not target.get("RoleArn"):
                raise ServiceError.validation(f"RoleArn is required for target {target['Arn']}.", op)
        failed: list[dict[str, Any]] = []
        usable = []
        for target in Targets:
            problem = target_problem(target)
            if problem:
                failed.append({"TargetId": target.get("Id"), "ErrorCode": "ValidationException",
                               "ErrorMessage": problem})
            else:
                usable.append(target)
        self.store.put_targets(Rule, usable, MAX_TARGETS_PER_RULE, op)
        return {"FailedEntryCount": len(failed), "FailedEntries": failed}

    def list_targets_by_rule(self, *, Rule: str, EventBusName: str | None = None,
                             NextToken: str | None = None, Limit: int | None = None) -> dict[str, Any]:
        """The rule's targets as ``ListTargetsByRule`` returns them."""
        op = "ListTargetsByRule"
        _check_bus(EventBusName, op)
        page, token = _page(self.store.targets(Rule, op), NextToken, Limit, op)
        out: dict[str, Any] = {"Targets": page}
        if token:
            out["NextToken"] = token
        return out

    def remove_targets(self, *, Rule: str, Ids: list[str], EventBusName: str | None = None,
                       Force: bool = False) -> dict[str, Any]:
        """Remove targets by id; unknown ids come back in ``FailedEntries``."""
        op = "RemoveTargets"
        _check_bus(EventBusName, op)
        failed = [{"TargetId": tid, "ErrorCode": "ResourceNotFoundException",
                   "ErrorMessage": f"Target {tid} does not exist on Rule {Rule}."}
                  for tid in self.store.remove_targets(Rule, Ids, op)]
        return {"FailedEntryCount": len(failed), "FailedEntries": failed}

    # ---- events --------------------------------------------------------------
    def put_events(self, *, Entries: list[dict[str, Any]], EndpointId: str | None = None) -> dict[str, Any]:
        """``PutEvents``: record each valid entry and deliver it to the targets of every enabled rule it matches."""
        return self._put(Entries, service=False)

    def put_service_events(self, entries: list[dict[str, Any]]) -> dict[str, Any]:
        """Events an AWS service itself emits (``aws.*`` sources), in ``PutEvents``' shapes.

        Local-only and in-process: the stand-ins that play AWS services call it; no HTTP caller can.
        """
        return self._put(entries, service=True)

    def _put(self, entries: list[dict[str, Any]], service: bool) -> dict[str, Any]:
        op = "PutEvents"
        if not entries or len(entries) > MAX_ENTRIES_PER_PUT:
            raise ServiceError.validation(f"1 validation error detected: Value at 'entries' failed to satisfy "
                                          f"constraint: Member must have length between 1 and {MAX_ENTRIES_PER_PUT}",
                                          op)
        if sum(entry_size(e) for e in entries) >= MAX_PUT_EVENTS_BYTES:
            raise ServiceError.validation("Total size of the entries in the request is over the limit.", op)
        results: list[dict[str, Any]] = []
        failed = 0
        for entry in entries:
            problem = entry_problem(entry, service)
            if problem is not None:
                failed += 1
                results.append({"ErrorCode": problem[0], "ErrorMessage": problem[1]})
                continue
            event = self._envelope(entry)
            self.delivery.dispatch(event)
            results.append({"EventId": event["id"]})
        return {"FailedEntryCount": failed, "Entries": results}

    def _envelope(self, entry: dict[str, Any]) -> dict[str, Any]:
        """The event as EventBridge delivers it."""
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": entry["DetailType"],
            "source": entry["Source"],
            "account": self.config.account_id,
            "time": iso_seconds_z(to_epoch(entry.get("Time"))),
            "region": self.config.region,
            "resources": list(entry.get("Resources") or []),
            "detail": json.loads(entry["Detail"]),
        }

    # ---- schedules (driven by the scheduler process) --------------------------
    def next_fire_times(self) -> dict[str, datetime | None]:
        """When each enabled scheduled rule fires next (UTC)."""
        return scheduler.next_fire_times(self.store, self.config.clock_scale)

    def fire_due_schedules(self, now: datetime | None = None,
                           submit: Callable[..., Any] | None = None) -> list[dict[str, Any]]:
        """Fire every enabled scheduled rule whose time has come (once, even if several periods were missed).

        Sends AWS's ``Scheduled Event`` (source ``aws.events``) to that rule's targets only.
        Returns one ``{"rule", "event_id", "scheduled_for", "invocations"}`` per rule fired.
        With ``submit`` (e.g. ``executor.submit``) the deliveries run there and ``invocations``
        is empty: a long pipeline start must not hold up the other schedules.
        """
        fired = []
        for rule, event in scheduler.claim_due(self.config, self.store, now):
            if submit is not None:
                submit(self.delivery.dispatch, event, rule)
                outcomes: list[dict[str, Any]] = []
            else:
                outcomes = self.delivery.dispatch(event, only_rule=rule)
            fired.append({"rule": rule, "event_id": event["id"], "scheduled_for": event["time"],
                          "invocations": outcomes})
        return fired

    # ---- history (local extra, for `aircast events history`) ------------------
    def history(self, *, limit: int = 50, rule: str | None = None, source: str | None = None,
                detail_type: str | None = None) -> list[dict[str, Any]]:
        """Most recent events first, each with the rules it matched and every target invocation's outcome."""
        return self.store.history(limit=limit, rule=rule, source=source, detail_type=detail_type)

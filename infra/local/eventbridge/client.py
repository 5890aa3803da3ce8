"""The local EventBridge (default event bus): rules, targets, ``PutEvents``, the scheduler's firing,
and a delivery history, in SQLite (``<data_dir>/eventbridge/events.sqlite``), so the CLI, the bus
process and the code that emits events share one bus.

:class:`LocalEventsClient` is the service backend: ``aircast.clients.get_client("events", ...)``
wraps it in a real boto3 client (in-process, or through the bus process's JSON protocol when the
stack runs), so every request is validated against botocore's model first. It enforces what
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
calls ``StartPipelineExecution`` on the local SageMaker with the target's
``SageMakerPipelineParameters``. A failing target never reaches the producer; the history records
every delivery and (locally only) the function's outcome, for ``aircast events history``. In-process
deliveries run before ``put_events`` returns (a CLI may exit right after); the bus process passes
``submit`` and delivers on its worker threads, as EventBridge delivers asynchronously.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from infra.local.core.errors import ServiceError
from infra.local.eventbridge.patterns import InvalidEventPattern, matches, parse_event_pattern
from infra.local.eventbridge.schedule import (
    InvalidScheduleExpression,
    RateSchedule,
    Schedule,
    next_fire_time,
    parse_schedule_expression,
)

log = logging.getLogger("aircast.eventbridge")

DEFAULT_BUS = "default"
MAX_ENTRIES_PER_PUT = 10
MAX_PUT_EVENTS_BYTES = 256 * 1024  # the total entry size of one PutEvents request must be less than this
MAX_TARGETS_PER_PUT = 10
MAX_TARGETS_PER_RULE = 5
HISTORY_LIMIT = 10_000  # events kept in the history (with their invocations)
MAX_CHAIN_DEPTH = 8  # a target that emits events matching its own rule must not recurse forever
AWS_SOURCE_PREFIX = "aws."
ENABLED_STATES = ("ENABLED", "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS")
_NAME = re.compile(r"^[.\-_A-Za-z0-9]{1,64}$")
_LAMBDA_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]*:\d*:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]+)?$")
_PIPELINE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]*:\d*:pipeline/([A-Za-z0-9-]{1,256})$")
_INPUT_PATH = re.compile(r"^\$(\.[A-Za-z0-9_-]+)*$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rules (
    name TEXT PRIMARY KEY,
    event_bus_name TEXT NOT NULL,
    event_pattern TEXT,
    schedule_expression TEXT,
    state TEXT NOT NULL,
    description TEXT,
    role_arn TEXT,
    created_at REAL NOT NULL,
    schedule_anchor REAL NOT NULL,
    last_fired_at REAL
);
CREATE TABLE IF NOT EXISTS targets (
    rule TEXT NOT NULL,
    id TEXT NOT NULL,
    arn TEXT NOT NULL,
    spec TEXT NOT NULL,
    PRIMARY KEY (rule, id)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    time TEXT NOT NULL,
    source TEXT NOT NULL,
    detail_type TEXT NOT NULL,
    event TEXT NOT NULL,
    matched_rules TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS invocations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    target_id TEXT NOT NULL,
    target_arn TEXT NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    error TEXT,
    started_at REAL NOT NULL,
    duration_ms REAL NOT NULL
);
"""

_depth = threading.local()


class BusConfig(Protocol):
    """What the bus needs to know of its deployment (aircast's ``Settings`` has these)."""

    data_dir: Path
    region: str
    account_id: str
    clock_scale: float


#: ``start(pipeline_name, parameters, event_id)`` → ``StartPipelineExecution``'s response
PipelineStarter = Callable[[str, list[dict[str, str]], str], dict[str, Any]]


def _error(code: str, message: str, operation: str) -> ServiceError:
    return ServiceError(code, message, 400, operation)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _to_epoch(value: Any) -> float:
    if value is None:
        return time.time()
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def rule_arn(config: BusConfig, name: str) -> str:
    """``arn:aws:events:<region>:<account>:rule/<name>`` (default bus)."""
    return f"arn:aws:events:{config.region}:{config.account_id}:rule/{name}"


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


def _json_path(event: dict[str, Any], path: str) -> Any:
    """The subset of JSONPath EventBridge's ``InputPath`` uses: ``$`` and ``$.a.b``."""
    if path == "$":
        return event
    value: Any = event
    for part in path[2:].split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _start_on_local_sagemaker(config: BusConfig) -> PipelineStarter:
    """Pipeline targets start executions through the local SageMaker's validated client."""

    def start(pipeline: str, parameters: list[dict[str, str]], event_id: str) -> dict[str, Any]:
        from infra.local.core import local_client
        from infra.local.sagemaker.client import LocalSageMakerClient

        client = local_client("sagemaker", LocalSageMakerClient(config), region=config.region)  # type: ignore[arg-type]
        response = client.start_pipeline_execution(PipelineName=pipeline, PipelineParameters=parameters,
                                                   ClientRequestToken=event_id[:128])
        return {"PipelineExecutionArn": response["PipelineExecutionArn"]}

    return start


class LocalEventsClient:
    """The local EventBridge backend (default event bus only); see the module docstring."""

    def __init__(self, config: BusConfig, *, submit: Callable[..., Any] | None = None,
                 start_pipeline: PipelineStarter | None = None) -> None:
        self.config = config
        self.db_path: Path = Path(config.data_dir) / "eventbridge" / "events.sqlite"
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self._submit = submit
        self._start_pipeline = start_pipeline or _start_on_local_sagemaker(config)
        with self._db() as db:
            db.executescript(_SCHEMA)

    # ---- storage -------------------------------------------------------------
    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        # one short-lived connection per call: the scheduler thread, the HTTP threads and
        # CLI processes all write to the same file
        conn = sqlite3.connect(self.db_path, timeout=30.0)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            with conn:
                yield conn
        finally:
            conn.close()

    def _rule_row(self, db: sqlite3.Connection, name: str, operation: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM rules WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise _error("ResourceNotFoundException", f"Rule {name} does not exist on EventBus {DEFAULT_BUS}.",
                         operation)
        return row

    @staticmethod
    def _check_bus(bus: str | None, operation: str) -> None:
        if bus not in (None, DEFAULT_BUS, "") and not str(bus).endswith(f":event-bus/{DEFAULT_BUS}"):
            raise _error("ResourceNotFoundException", f"Event bus {bus} does not exist.", operation)

    def _rule_dict(self, row: sqlite3.Row) -> dict[str, Any]:
        out: dict[str, Any] = {"Name": row["name"], "Arn": rule_arn(self.config, row["name"])}
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

    # ---- rules ---------------------------------------------------------------
    def put_rule(self, *, Name: str, ScheduleExpression: str | None = None, EventPattern: str | None = None,
                 State: str = "ENABLED", Description: str | None = None, RoleArn: str | None = None,
                 Tags: list[dict[str, str]] | None = None, EventBusName: str | None = None) -> dict[str, Any]:
        """Create or update a rule; validates the pattern and schedule as EventBridge does."""
        op = "PutRule"
        self._check_bus(EventBusName, op)
        if not isinstance(Name, str) or not _NAME.match(Name):
            raise _error("ValidationException", f"1 validation error detected: Value '{Name}' at 'name' failed to "
                         r"satisfy constraint: Member must satisfy regular expression pattern: [\.\-_A-Za-z0-9]+", op)
        if not ScheduleExpression and not EventPattern:
            raise _error("ValidationException", "Parameter(s) EventPattern or ScheduleExpression must be specified.",
                         op)
        if State not in (*ENABLED_STATES, "DISABLED"):
            raise _error("ValidationException", f"1 validation error detected: Value '{State}' at 'state' failed to "
                         f"satisfy constraint: Member must satisfy enum value set: [{', '.join(ENABLED_STATES)}, "
                         "DISABLED]", op)
        pattern_text = None
        if EventPattern:
            try:
                pattern_text = json.dumps(parse_event_pattern(EventPattern), separators=(",", ":"))
            except InvalidEventPattern as exc:
                raise _error("InvalidEventPatternException", f"Event pattern is not valid. Reason: {exc}",
                             op) from exc
        if ScheduleExpression:
            try:
                parse_schedule_expression(ScheduleExpression)
            except InvalidScheduleExpression as exc:
                raise _error("ValidationException",
                             f"Parameter ScheduleExpression is not valid. Reason: {exc}", op) from exc
        now = time.time()
        with self._db() as db:
            old = db.execute("SELECT * FROM rules WHERE name = ?", (Name,)).fetchone()
            created = old["created_at"] if old else now
            # a changed schedule restarts its rate periods from now, as a new rule would
            same_schedule = old is not None and old["schedule_expression"] == ScheduleExpression
            anchor = old["schedule_anchor"] if same_schedule else now
            last = old["last_fired_at"] if same_schedule else None
            db.execute(
                "INSERT OR REPLACE INTO rules (name, event_bus_name, event_pattern, schedule_expression, state,"
                " description, role_arn, created_at, schedule_anchor, last_fired_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (Name, DEFAULT_BUS, pattern_text, ScheduleExpression or None, State, Description, RoleArn,
                 created, anchor, last))
        return {"RuleArn": rule_arn(self.config, Name)}

    def describe_rule(self, *, Name: str, EventBusName: str | None = None) -> dict[str, Any]:
        """The rule's definition, as ``DescribeRule`` returns it."""
        self._check_bus(EventBusName, "DescribeRule")
        with self._db() as db:
            row = self._rule_row(db, Name, "DescribeRule")
        return {**self._rule_dict(row), "CreatedBy": self.config.account_id}

    def list_rules(self, *, NamePrefix: str | None = None, EventBusName: str | None = None,
                   NextToken: str | None = None, Limit: int | None = None) -> dict[str, Any]:
        """Rules sorted by name, optionally filtered by prefix, paginated with NextToken."""
        self._check_bus(EventBusName, "ListRules")
        with self._db() as db:
            rows = db.execute("SELECT * FROM rules WHERE name LIKE ? ESCAPE '\\' ORDER BY name",
                              ((NamePrefix or "").replace("_", "\\_").replace("%", "\\%") + "%",)).fetchall()
        start = _token(NextToken, "ListRules")
        limit = Limit or 100
        page = rows[start:start + limit]
        out: dict[str, Any] = {"Rules": [self._rule_dict(r) for r in page]}
        if start + limit < len(rows):
            out["NextToken"] = str(start + limit)
        return out

    def enable_rule(self, *, Name: str, EventBusName: str | None = None) -> dict[str, Any]:
        """Set the rule's state to ENABLED."""
        return self._set_state(Name, "ENABLED", "EnableRule", EventBusName)

    def disable_rule(self, *, Name: str, EventBusName: str | None = None) -> dict[str, Any]:
        """Set the rule's state to DISABLED (its targets are kept but not invoked)."""
        return self._set_state(Name, "DISABLED", "DisableRule", EventBusName)

    def _set_state(self, name: str, state: str, op: str, bus: str | None) -> dict[str, Any]:
        self._check_bus(bus, op)
        with self._db() as db:
            self._rule_row(db, name, op)
            db.execute("UPDATE rules SET state = ? WHERE name = ?", (state, name))
        return {}

    def delete_rule(self, *, Name: str, EventBusName: str | None = None, Force: bool = False) -> dict[str, Any]:
        """Delete a rule; like AWS, refuses while the rule still has targets."""
        op = "DeleteRule"
        self._check_bus(EventBusName, op)
        with self._db() as db:
            if db.execute("SELECT 1 FROM rules WHERE name = ?", (Name,)).fetchone() is None:
                return {}  # AWS: deleting a missing rule is not an error
            if db.execute("SELECT 1 FROM targets WHERE rule = ?", (Name,)).fetchone() is not None:
                raise _error("ValidationException", "Rule can't be deleted since it has targets.", op)
            db.execute("DELETE FROM rules WHERE name = ?", (Name,))
        return {}

    # ---- targets -------------------------------------------------------------
    def put_targets(self, *, Rule: str, Targets: list[dict[str, Any]],
                    EventBusName: str | None = None) -> dict[str, Any]:
        """Add or replace targets of a rule; unusable targets come back in ``FailedEntries``."""
        op = "PutTargets"
        self._check_bus(EventBusName, op)
        if not Targets or len(Targets) > MAX_TARGETS_PER_PUT:
            raise _error("ValidationException", f"1 validation error detected: Value at 'targets' failed to satisfy "
                         f"constraint: Member must have length between 1 and {MAX_TARGETS_PER_PUT}", op)
        for target in Targets:
            # targets other than Lambda, SNS, SQS, CloudWatch Logs and event buses act with a role
            if _PIPELINE_ARN.match(str(target.get("Arn", ""))) and not target.get("RoleArn"):
                raise _error("ValidationException", f"RoleArn is required for target {target['Arn']}.", op)
        failed: list[dict[str, Any]] = []
        with self._db() as db:
            self._rule_row(db, Rule, op)
            existing = {r["id"] for r in db.execute("SELECT id FROM targets WHERE rule = ?", (Rule,))}
            for target in Targets:
                tid = target.get("Id")
                problem = self._target_problem(target)
                if problem:
                    failed.append({"TargetId": tid, "ErrorCode": "ValidationException", "ErrorMessage": problem})
                    continue
                if tid not in existing and len(existing) >= MAX_TARGETS_PER_RULE:
                    raise _error("LimitExceededException", "The requested resource exceeds the maximum number "
                                 f"allowed: a rule has at most {MAX_TARGETS_PER_RULE} targets.", op)
                existing.add(tid)
                db.execute("INSERT OR REPLACE INTO targets (rule, id, arn, spec) VALUES (?,?,?,?)",
                           (Rule, tid, target["Arn"], json.dumps(target)))
        return {"FailedEntryCount": len(failed), "FailedEntries": failed}

    @staticmethod
    def _target_problem(target: dict[str, Any]) -> str | None:
        tid, arn = target.get("Id"), target.get("Arn")
        if not isinstance(tid, str) or not _NAME.match(tid):
            return f"target Id {tid!r} is not valid: use 1-64 characters from A-Z a-z 0-9 . - _"
        if not isinstance(arn, str) or not arn:
            return f"target {tid}: Arn is required"
        if "InputTransformer" in target:
            return f"target {tid}: the local bus does not deliver with InputTransformer; use Input or InputPath"
        if "Input" in target and "InputPath" in target:
            return f"target {tid}: give only one of Input and InputPath"
        if "Input" in target:
            try:
                json.loads(target["Input"])
            except (TypeError, json.JSONDecodeError):
                return f"target {tid}: Input must be valid JSON text"
        if "InputPath" in target and not _INPUT_PATH.match(str(target["InputPath"])):
            return f"target {tid}: InputPath {target['InputPath']!r} must look like $ or $.detail.field"
        if _LAMBDA_ARN.match(arn) or _PIPELINE_ARN.match(arn):
            return None
        return (f"target {tid}: the local bus delivers to Lambda function ARNs "
                f"(arn:aws:lambda:REGION:ACCOUNT:function:NAME) and SageMaker pipeline ARNs "
                f"(arn:aws:sagemaker:REGION:ACCOUNT:pipeline/NAME); got {arn!r}")

    def list_targets_by_rule(self, *, Rule: str, EventBusName: str | None = None,
                             NextToken: str | None = None, Limit: int | None = None) -> dict[str, Any]:
        """The rule's targets as ``ListTargetsByRule`` returns them."""
        self._check_bus(EventBusName, "ListTargetsByRule")
        with self._db() as db:
            self._rule_row(db, Rule, "ListTargetsByRule")
            rows = db.execute("SELECT spec FROM targets WHERE rule = ? ORDER BY id", (Rule,)).fetchall()
        start = _token(NextToken, "ListTargetsByRule")
        limit = Limit or 100
        out: dict[str, Any] = {"Targets": [json.loads(r["spec"]) for r in rows[start:start + limit]]}
        if start + limit < len(rows):
            out["NextToken"] = str(start + limit)
        return out

    def remove_targets(self, *, Rule: str, Ids: list[str], EventBusName: str | None = None,
                       Force: bool = False) -> dict[str, Any]:
        """Remove targets by id; unknown ids come back in ``FailedEntries``."""
        op = "RemoveTargets"
        self._check_bus(EventBusName, op)
        failed = []
        with self._db() as db:
            self._rule_row(db, Rule, op)
            for tid in Ids:
                cur = db.execute("DELETE FROM targets WHERE rule = ? AND id = ?", (Rule, tid))
                if cur.rowcount == 0:
                    failed.append({"TargetId": tid, "ErrorCode": "ResourceNotFoundException",
                                   "ErrorMessage": f"Target {tid} does not exist on Rule {Rule}."})
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
            raise _error("ValidationException", f"1 validation error detected: Value at 'entries' failed to satisfy "
                         f"constraint: Member must have length between 1 and {MAX_ENTRIES_PER_PUT}", op)
        if sum(entry_size(e) for e in entries) >= MAX_PUT_EVENTS_BYTES:
            raise _error("ValidationException", "Total size of the entries in the request is over the limit.", op)
        results: list[dict[str, Any]] = []
        failed = 0
        for entry in entries:
            problem = self._entry_problem(entry, service)
            if problem is not None:
                failed += 1
                results.append({"ErrorCode": problem[0], "ErrorMessage": problem[1]})
                continue
            event = self._envelope(entry)
            self._dispatch(event)
            results.append({"EventId": event["id"]})
        return {"FailedEntryCount": failed, "Entries": results}

    @staticmethod
    def _entry_problem(entry: dict[str, Any], service: bool) -> tuple[str, str] | None:
        """(ErrorCode, ErrorMessage) of an entry EventBridge would refuse, else None."""
        bus = entry.get("EventBusName")
        if bus not in (None, DEFAULT_BUS, "") and not str(bus).endswith(f":event-bus/{DEFAULT_BUS}"):
            return "ResourceNotFoundException", f"Event bus {bus} does not exist."
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
            _to_epoch(entry.get("Time"))
        except (TypeError, ValueError):
            return "InvalidArgument", "Parameter Time is not valid."
        return None

    def _envelope(self, entry: dict[str, Any]) -> dict[str, Any]:
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": entry["DetailType"],
            "source": entry["Source"],
            "account": self.config.account_id,
            "time": _iso(_to_epoch(entry.get("Time"))),
            "region": self.config.region,
            "resources": list(entry.get("Resources") or []),
            "detail": json.loads(entry["Detail"]),
        }

    def _dispatch(self, event: dict[str, Any], only_rule: str | None = None) -> list[dict[str, Any]]:
        """Record ``event``, find matching rules (or the one scheduled rule) and deliver to their targets.

        Returns the deliveries' outcomes when they ran here (no ``submit``), else an empty list."""
        with self._db() as db:
            if only_rule is not None:
                rules = db.execute("SELECT * FROM rules WHERE name = ?", (only_rule,)).fetchall()
            else:
                rules = [r for r in db.execute("SELECT * FROM rules WHERE state != 'DISABLED' AND event_pattern "
                                               "IS NOT NULL ORDER BY name")
                         if matches(json.loads(r["event_pattern"]), event)]
            names = [r["name"] for r in rules]
            db.execute("INSERT INTO events (event_id, time, source, detail_type, event, matched_rules, received_at)"
                       " VALUES (?,?,?,?,?,?,?)",
                       (event["id"], event["time"], event["source"], event["detail-type"], json.dumps(event),
                        json.dumps(names), time.time()))
            # keep the history bounded: the oldest events (and their invocations) go first
            db.execute("DELETE FROM invocations WHERE event_id IN (SELECT event_id FROM events WHERE seq <= "
                       "(SELECT MAX(seq) FROM events) - ?)", (HISTORY_LIMIT,))
            db.execute("DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?", (HISTORY_LIMIT,))
            targets = {n: [json.loads(t["spec"]) for t in
                           db.execute("SELECT spec FROM targets WHERE rule = ? ORDER BY id", (n,))] for n in names}
        # the transaction is closed before any target runs: targets may put events themselves
        outcomes = []
        for name in names:
            for target in targets[name]:
                if self._submit is not None:
                    self._submit(self._invoke, name, target, event)
                else:
                    outcomes.append(self._invoke(name, target, event))
        return outcomes

    def _invoke(self, rule: str, target: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        started = time.time()
        depth = getattr(_depth, "value", 0)
        status, result, error = "succeeded", None, None
        try:
            if depth >= MAX_CHAIN_DEPTH:
                raise RuntimeError(f"event chain deeper than {MAX_CHAIN_DEPTH} (a target keeps emitting events "
                                   "that trigger rules); not delivered")
            _depth.value = depth + 1
            try:
                result, error = self._deliver(rule, target, event)
            finally:
                _depth.value = depth
            status = "failed" if error else "succeeded"
        except Exception as exc:  # noqa: BLE001 - a failing target must never crash the producer
            status = "failed"
            error = f"{type(exc).__name__}: {exc}"
            log.warning("eventbridge: target %s of rule %s failed: %s\n%s", target.get("Id"), rule, error,
                        traceback.format_exc(limit=5))
        duration_ms = (time.time() - started) * 1000
        result_text = json.dumps(result, default=str) if result is not None else None
        with self._db() as db:
            db.execute("INSERT INTO invocations (event_id, rule, target_id, target_arn, status, result, error,"
                       " started_at, duration_ms) VALUES (?,?,?,?,?,?,?,?,?)",
                       (event["id"], rule, target["Id"], target["Arn"], status, result_text, error, started,
                        duration_ms))
        return {"rule": rule, "target_id": target["Id"], "status": status, "result": result, "error": error}

    def _deliver(self, rule: str, target: dict[str, Any], event: dict[str, Any]) -> tuple[Any, str | None]:
        """Deliver ``event`` to one target; (the target's result, its error or None)."""
        arn = target["Arn"]
        if "Input" in target:
            payload: Any = json.loads(target["Input"])
        elif "InputPath" in target:
            payload = _json_path(event, target["InputPath"])
        else:
            payload = event
        if _LAMBDA_ARN.match(arn):
            from infra.local.awslambda import LocalLambdaBackend

            functions = LocalLambdaBackend(self.config.data_dir, self.config.region, self.config.account_id)
            record = functions.run(arn, json.dumps(payload).encode(), invocation_type="Event")
            return record.result(), record.error()
        m = _PIPELINE_ARN.match(arn)
        if m:
            params = target.get("SageMakerPipelineParameters", {}).get("PipelineParameterList", [])
            return self._start_pipeline(m.group(1), list(params), event["id"]), None
        raise ValueError(f"no local delivery for target ARN {arn!r}")

    # ---- schedules (driven by the scheduler process) --------------------------
    def _schedule_of(self, row: sqlite3.Row) -> Schedule:
        schedule = parse_schedule_expression(row["schedule_expression"])
        if isinstance(schedule, RateSchedule) and self.config.clock_scale != 1.0:
            # the local clock scale shrinks rate periods so demos/tests need not wait hours
            schedule = RateSchedule(schedule.expression, max(1, round(schedule.seconds * self.config.clock_scale)))
        return schedule

    def next_fire_times(self) -> dict[str, datetime | None]:
        """When each enabled scheduled rule fires next (UTC)."""
        out: dict[str, datetime | None] = {}
        with self._db() as db:
            rows = db.execute("SELECT * FROM rules WHERE state != 'DISABLED' AND schedule_expression IS NOT NULL"
                              " ORDER BY name").fetchall()
        for row in rows:
            out[row["name"]] = self._next_fire(row)
        return out

    def _next_fire(self, row: sqlite3.Row) -> datetime | None:
        anchor = datetime.fromtimestamp(row["schedule_anchor"], UTC)
        after = datetime.fromtimestamp(row["last_fired_at"], UTC) if row["last_fired_at"] else anchor
        return next_fire_time(self._schedule_of(row), after, anchor)

    def fire_due_schedules(self, now: datetime | None = None,
                           submit: Callable[..., Any] | None = None) -> list[dict[str, Any]]:
        """Fire every enabled scheduled rule whose time has come (once, even if several periods were missed).

        Sends AWS's ``Scheduled Event`` (source ``aws.events``) to that rule's targets only.
        Returns one ``{"rule", "event_id", "scheduled_for", "invocations"}`` per rule fired.
        With ``submit`` (e.g. ``executor.submit``) the deliveries run there and ``invocations``
        is empty: a long pipeline start must not hold up the other schedules.
        """
        moment = now or datetime.now(UTC)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        fired = []
        with self._db() as db:
            rows = db.execute("SELECT * FROM rules WHERE state != 'DISABLED' AND schedule_expression IS NOT NULL"
                              " ORDER BY name").fetchall()
        for row in rows:
            due = self._next_fire(row)
            if due is None or due > moment:
                continue
            with self._db() as db:
                # claim the firing first so two schedulers never fire the same period twice
                cur = db.execute("UPDATE rules SET last_fired_at = ? WHERE name = ? AND last_fired_at IS ?",
                                 (moment.timestamp(), row["name"], row["last_fired_at"]))
                if cur.rowcount == 0:
                    continue
            event = {
                "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
                "account": self.config.account_id, "time": due.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": self.config.region, "resources": [rule_arn(self.config, row["name"])], "detail": {},
            }
            if submit is not None:
                submit(self._dispatch, event, row["name"])
                outcomes: list[dict[str, Any]] = []
            else:
                outcomes = self._dispatch(event, only_rule=row["name"])
            fired.append({"rule": row["name"], "event_id": event["id"], "scheduled_for": event["time"],
                          "invocations": outcomes})
        return fired

    # ---- history (local extra, for `aircast events history`) ------------------
    def history(self, *, limit: int = 50, rule: str | None = None, source: str | None = None,
                detail_type: str | None = None) -> list[dict[str, Any]]:
        """Most recent events first, each with the rules it matched and every target invocation's outcome."""
        clauses, args = [], []
        if source:
            clauses.append("source = ?")
            args.append(source)
        if detail_type:
            clauses.append("detail_type = ?")
            args.append(detail_type)
        if rule:
            clauses.append("EXISTS (SELECT 1 FROM json_each(events.matched_rules) WHERE value = ?)")
            args.append(rule)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._db() as db:
            rows = db.execute(f"SELECT * FROM events {where} ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()
            out = []
            for r in rows:
                invs = db.execute("SELECT * FROM invocations WHERE event_id = ? ORDER BY seq", (r["event_id"],))
                out.append({
                    "event_id": r["event_id"], "time": r["time"], "source": r["source"],
                    "detail_type": r["detail_type"], "received_at": _iso(r["received_at"]),
                    "event": json.loads(r["event"]), "matched_rules": json.loads(r["matched_rules"]),
                    "invocations": [{
                        "rule": i["rule"], "target_id": i["target_id"], "target_arn": i["target_arn"],
                        "status": i["status"], "result": json.loads(i["result"]) if i["result"] else None,
                        "error": i["error"], "started_at": _iso(i["started_at"]),
                        "duration_ms": round(i["duration_ms"], 1),
                    } for i in invs],
                })
        return out


def _token(next_token: str | None, operation: str) -> int:
    if not next_token:
        return 0
    if not next_token.isdigit():
        raise _error("ValidationException", "The NextToken is not valid.", operation)
    return int(next_token)

"""The local EventBridge: a boto3-shaped ``events`` client over SQLite.

Rules (event patterns and/or schedule expressions), their targets and a history of
every event and every target invocation live in ``<data_dir>/eventbridge/events.sqlite``,
so the CLI, the scheduler process and the code that emits events share one bus.

``put_events`` matches each event against the enabled rules and invokes their targets
in-process, as EventBridge would deliver them:

- a Lambda ARN (``arn:aws:lambda:<region>:<account>:function:<name>``) →
  :func:`infra.local.awslambda.invoke` with the event (or the target's ``Input`` /
  ``InputPath``);
- a SageMaker pipeline ARN (``arn:aws:sagemaker:<region>:<account>:pipeline/<name>``) →
  the local SageMaker client's ``start_pipeline_execution`` with the target's
  ``SageMakerPipelineParameters``.

A target that fails is recorded in the history with its error; it never raises into the
caller of ``put_events`` (EventBridge delivers asynchronously, the producer never sees it).
Validation errors in requests raise :class:`botocore.exceptions.ClientError` with AWS's
error codes, so code written against boto3 handles them the same way.
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
from typing import Any

from botocore.exceptions import ClientError

from aircast.settings import Settings
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
MAX_TARGETS_PER_RULE = 5
HISTORY_LIMIT = 10_000  # events kept in the history (with their invocations)
MAX_CHAIN_DEPTH = 8  # a target that emits events matching its own rule must not recurse forever
_NAME = re.compile(r"^[.\-_A-Za-z0-9]{1,64}$")
_LAMBDA_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]*:\d*:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]+)?$")
_PIPELINE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]*:\d*:pipeline/([A-Za-z0-9-]{1,256})$")

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


def _client_error(code: str, message: str, operation: str) -> ServiceError:
    return ServiceError(code, message, 400, operation)


class _Exceptions:
    """``client.exceptions.X`` as boto3 offers it (all are ClientError)."""

    ClientError = ClientError
    ResourceNotFoundException = ClientError
    ValidationException = ClientError
    InvalidEventPatternException = ClientError
    LimitExceededException = ClientError


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


def rule_arn(settings: Settings, name: str) -> str:
    """``arn:aws:events:<region>:<account>:rule/<name>`` (default bus)."""
    return f"arn:aws:events:{settings.region}:{settings.account_id}:rule/{name}"


def lambda_arn(settings: Settings, function_name: str) -> str:
    """The ARN a Lambda function of the project has in this region/account."""
    return f"arn:aws:lambda:{settings.region}:{settings.account_id}:function:{function_name}"


def pipeline_arn(settings: Settings, pipeline_name: str) -> str:
    """The ARN of a SageMaker pipeline (SageMaker lower-cases pipeline names in ARNs)."""
    return f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:pipeline/{pipeline_name.lower()}"


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


class LocalEventsClient:
    """``boto3.client("events")`` for the local backend (default event bus only)."""

    exceptions = _Exceptions

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db_path: Path = settings.data_dir / "eventbridge" / "events.sqlite"
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.executescript(_SCHEMA)

    # ---- storage -------------------------------------------------------------
    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        # one short-lived connection per call: the scheduler thread, the HTTP thread and
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
            raise _client_error("ResourceNotFoundException",
                                f"Rule {name} does not exist on EventBus {DEFAULT_BUS}.", operation)
        return row

    @staticmethod
    def _check_bus(bus: str | None, operation: str) -> None:
        if bus not in (None, DEFAULT_BUS, "") and not str(bus).endswith(f":event-bus/{DEFAULT_BUS}"):
            raise _client_error("ResourceNotFoundException",
                                f"Event bus {bus} does not exist (the local bus has only '{DEFAULT_BUS}').", operation)

    def _rule_dict(self, row: sqlite3.Row) -> dict[str, Any]:
        out: dict[str, Any] = {"Name": row["name"], "Arn": rule_arn(self.settings, row["name"])}
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
            raise _client_error("ValidationException",
                                f"Rule name {Name!r} is not valid: use 1-64 characters from A-Z a-z 0-9 . - _", op)
        if not ScheduleExpression and not EventPattern:
            raise _client_error("ValidationException",
                                "Parameter(s) EventPattern or ScheduleExpression must be specified.", op)
        if State not in ("ENABLED", "DISABLED"):
            raise _client_error("ValidationException", f"State must be ENABLED or DISABLED, got {State!r}", op)
        pattern_text = None
        if EventPattern:
            try:
                pattern_text = json.dumps(parse_event_pattern(EventPattern), separators=(",", ":"))
            except InvalidEventPattern as exc:
                raise _client_error("InvalidEventPatternException", f"Event pattern is not valid. Reason: {exc}",
                                    op) from exc
        if ScheduleExpression:
            try:
                parse_schedule_expression(ScheduleExpression)
            except InvalidScheduleExpression as exc:
                raise _client_error("ValidationException",
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
        return {"RuleArn": rule_arn(self.settings, Name)}

    def describe_rule(self, *, Name: str, EventBusName: str | None = None) -> dict[str, Any]:
        """The rule's definition, as ``DescribeRule`` returns it."""
        self._check_bus(EventBusName, "DescribeRule")
        with self._db() as db:
            row = self._rule_row(db, Name, "DescribeRule")
        return {**self._rule_dict(row), "CreatedBy": self.settings.account_id}

    def list_rules(self, *, NamePrefix: str | None = None, EventBusName: str | None = None,
                   NextToken: str | None = None, Limit: int | None = None) -> dict[str, Any]:
        """Rules sorted by name, optionally filtered by prefix, paginated with NextToken."""
        self._check_bus(EventBusName, "ListRules")
        with self._db() as db:
            rows = db.execute("SELECT * FROM rules WHERE name LIKE ? ESCAPE '\\' ORDER BY name",
                              ((NamePrefix or "").replace("_", "\\_").replace("%", "\\%") + "%",)).fetchall()
        start = int(NextToken) if NextToken else 0
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
                raise _client_error("ValidationException",
                                    "Rule can't be deleted since it has targets. Remove them with remove_targets first.",
                                    op)
            db.execute("DELETE FROM rules WHERE name = ?", (Name,))
        return {}

    # ---- targets -------------------------------------------------------------
    def put_targets(self, *, Rule: str, Targets: list[dict[str, Any]],
                    EventBusName: str | None = None) -> dict[str, Any]:
        """Add or replace targets of a rule; unusable targets come back in ``FailedEntries``."""
        op = "PutTargets"
        self._check_bus(EventBusName, op)
        if not Targets or len(Targets) > 10:
            raise _client_error("ValidationException", "Targets must hold 1 to 10 targets per request.", op)
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
                    raise _client_error("LimitExceededException",
                                        f"The requested resource exceeds the maximum number allowed: "
                                        f"a rule has at most {MAX_TARGETS_PER_RULE} targets.", op)
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
            return f"target {tid}: InputTransformer is not supported by the local bus; use Input or InputPath"
        if "Input" in target and "InputPath" in target:
            return f"target {tid}: give only one of Input and InputPath"
        if "Input" in target:
            try:
                json.loads(target["Input"])
            except (TypeError, json.JSONDecodeError):
                return f"target {tid}: Input must be valid JSON text"
        if "InputPath" in target and not re.match(r"^\$(\.[A-Za-z0-9_-]+)*$", str(target["InputPath"])):
            return f"target {tid}: InputPath {target['InputPath']!r} must look like $ or $.detail.field"
        if _LAMBDA_ARN.match(arn):
            return None
        if _PIPELINE_ARN.match(arn):
            params = target.get("SageMakerPipelineParameters", {}).get("PipelineParameterList", [])
            for p in params:
                if not isinstance(p, dict) or not isinstance(p.get("Name"), str) or not isinstance(p.get("Value"), str):
                    return f"target {tid}: each PipelineParameterList item needs string Name and Value, got {p!r}"
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
        return {"Targets": [json.loads(r["spec"]) for r in rows]}

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
                                   "ErrorMessage": f"Target {tid} does not exist on rule {Rule}."})
        return {"FailedEntryCount": len(failed), "FailedEntries": failed}

    # ---- events --------------------------------------------------------------
    def put_events(self, *, Entries: list[dict[str, Any]], EndpointId: str | None = None) -> dict[str, Any]:
        """Record events and deliver each to the targets of every enabled rule it matches."""
        op = "PutEvents"
        if not Entries or len(Entries) > MAX_ENTRIES_PER_PUT:
            raise _client_error("ValidationException",
                                f"Entries must hold 1 to {MAX_ENTRIES_PER_PUT} events per request, got {len(Entries or [])}.",
                                op)
        results: list[dict[str, Any]] = []
        failed = 0
        for entry in Entries:
            try:
                self._check_bus(entry.get("EventBusName"), op)
                event = self._envelope(entry)
            except ValueError as exc:
                failed += 1
                results.append({"ErrorCode": "InvalidArgument", "ErrorMessage": str(exc)})
                continue
            except ClientError as exc:
                failed += 1
                results.append({"ErrorCode": exc.response["Error"]["Code"],
                                "ErrorMessage": exc.response["Error"]["Message"]})
                continue
            self._dispatch(event)
            results.append({"EventId": event["id"]})
        return {"FailedEntryCount": failed, "Entries": results}

    def _envelope(self, entry: dict[str, Any]) -> dict[str, Any]:
        source, detail_type, detail_text = entry.get("Source"), entry.get("DetailType"), entry.get("Detail")
        if not source or not detail_type or detail_text is None:
            raise ValueError("Parameter(s) Source, DetailType, or Detail must be specified.")
        try:
            detail = json.loads(detail_text)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"Parameter Detail is not valid JSON: {exc}") from exc
        if not isinstance(detail, dict):
            raise ValueError("Parameter Detail must be a JSON object.")
        try:
            when = _to_epoch(entry.get("Time"))
        except ValueError as exc:
            raise ValueError(f"Parameter Time is not a valid timestamp: {entry.get('Time')!r}") from exc
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": source,
            "account": self.settings.account_id,
            "time": _iso(when),
            "region": self.settings.region,
            "resources": list(entry.get("Resources") or []),
            "detail": detail,
        }

    def _dispatch(self, event: dict[str, Any], only_rule: str | None = None) -> list[dict[str, Any]]:
        """Record ``event``, find matching rules (or the one scheduled rule) and invoke their targets."""
        with self._db() as db:
            if only_rule is not None:
                rules = db.execute("SELECT * FROM rules WHERE name = ?", (only_rule,)).fetchall()
            else:
                rules = [r for r in db.execute("SELECT * FROM rules WHERE state = 'ENABLED' AND event_pattern IS NOT"
                                               " NULL ORDER BY name")
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
                result = self._deliver(target, event)
            finally:
                _depth.value = depth
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

    def _deliver(self, target: dict[str, Any], event: dict[str, Any]) -> Any:
        arn = target["Arn"]
        if "Input" in target:
            payload: Any = json.loads(target["Input"])
        elif "InputPath" in target:
            payload = _json_path(event, target["InputPath"])
        else:
            payload = event
        if _LAMBDA_ARN.match(arn):
            from infra.local import awslambda

            return awslambda.invoke(arn, payload)
        m = _PIPELINE_ARN.match(arn)
        if m:
            from aircast.clients import get_client

            params = target.get("SageMakerPipelineParameters", {}).get("PipelineParameterList", [])
            sagemaker = get_client("sagemaker", self.settings.replace(backend="local"))
            return sagemaker.start_pipeline_execution(PipelineName=m.group(1), PipelineParameters=list(params))
        raise ValueError(f"no local delivery for target ARN {arn!r}")

    # ---- schedules (driven by the scheduler process) --------------------------
    def _schedule_of(self, row: sqlite3.Row) -> Schedule:
        schedule = parse_schedule_expression(row["schedule_expression"])
        if isinstance(schedule, RateSchedule) and self.settings.clock_scale != 1.0:
            # the local clock scale shrinks rate periods so demos/tests need not wait hours
            schedule = RateSchedule(schedule.expression, max(1, round(schedule.seconds * self.settings.clock_scale)))
        return schedule

    def next_fire_times(self) -> dict[str, datetime | None]:
        """When each enabled scheduled rule fires next (UTC)."""
        out: dict[str, datetime | None] = {}
        with self._db() as db:
            rows = db.execute("SELECT * FROM rules WHERE state = 'ENABLED' AND schedule_expression IS NOT NULL"
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
            rows = db.execute("SELECT * FROM rules WHERE state = 'ENABLED' AND schedule_expression IS NOT NULL"
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
                "account": self.settings.account_id, "time": due.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": self.settings.region, "resources": [rule_arn(self.settings, row["name"])], "detail": {},
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

"""The event bus's state in SQLite (``<data_dir>/eventbridge/events.sqlite``): rules, their targets,
and the delivery history (events with the rules they matched, and each target invocation).

One file, opened per call through :func:`infra.local.sqlite.open_store`, so the CLI, the bus process's
HTTP and scheduler threads and the code that emits events all share one bus. State conflicts are
refused here with EventBridge's codes and wording (a missing rule, a rule that still has targets, a
rule over its target limit); request validation is :mod:`.client`'s.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from infra.local.core.clock import iso_seconds_z
from infra.local.core.errors import ServiceError
from infra.local.eventbridge.patterns import matches
from infra.local.sqlite import open_store

DEFAULT_BUS = "default"
HISTORY_LIMIT = 10_000  # events kept in the history (with their invocations)
#: the store, relative to the data dir
STORE_PATH = Path("eventbridge") / "events.sqlite"

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


def rule_not_found(name: str, operation: str) -> ServiceError:
    return ServiceError.not_found("ResourceNotFoundException", f"Rule {name} does not exist on EventBus "
                                  f"{DEFAULT_BUS}.", operation)


class EventStore:
    """Rules, targets and the delivery history of one data dir's default event bus."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / STORE_PATH
        with open_store(self.path, _SCHEMA):
            pass

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with open_store(self.path) as db:
            yield db

    # ---- rules -----------------------------------------------------------------------
    def rule(self, name: str, operation: str) -> sqlite3.Row:
        """The rule's row; ``ResourceNotFoundException`` when there is none."""
        with self._db() as db:
            return self._rule(db, name, operation)

    @staticmethod
    def _rule(db: sqlite3.Connection, name: str, operation: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM rules WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise rule_not_found(name, operation)
        return row

    def rules(self, prefix: str = "") -> list[sqlite3.Row]:
        """Rules whose name starts with ``prefix``, by name."""
        with self._db() as db:
            return db.execute("SELECT * FROM rules WHERE name LIKE ? ESCAPE '\\' ORDER BY name",
                              (prefix.replace("_", "\\_").replace("%", "\\%") + "%",)).fetchall()

    def save_rule(self, name: str, *, event_pattern: str | None, schedule_expression: str | None, state: str,
                  description: str | None, role_arn: str | None) -> None:
        """Create or replace a rule; an unchanged schedule keeps its periods, a changed one restarts them now."""
        now = time.time()
        with self._db() as db:
            old = db.execute("SELECT * FROM rules WHERE name = ?", (name,)).fetchone()
            created = old["created_at"] if old else now
            # a changed schedule restarts its rate periods from now, as a new rule would
            same_schedule = old is not None and old["schedule_expression"] == schedule_expression
            anchor = old["schedule_anchor"] if same_schedule else now
            last = old["last_fired_at"] if same_schedule else None
            db.execute(
                "INSERT OR REPLACE INTO rules (name, event_bus_name, event_pattern, schedule_expression, state,"
                " description, role_arn, created_at, schedule_anchor, last_fired_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (name, DEFAULT_BUS, event_pattern, schedule_expression, state, description, role_arn, created, anchor,
                 last))

    def set_state(self, name: str, state: str, operation: str) -> None:
        with self._db() as db:
            self._rule(db, name, operation)
            db.execute("UPDATE rules SET state = ? WHERE name = ?", (state, name))

    def delete_rule(self, name: str, operation: str) -> None:
        """Delete a rule; a missing rule is no error (as on AWS), one with targets is."""
        with self._db() as db:
            if db.execute("SELECT 1 FROM rules WHERE name = ?", (name,)).fetchone() is None:
                return
            if db.execute("SELECT 1 FROM targets WHERE rule = ?", (name,)).fetchone() is not None:
                raise ServiceError.validation("Rule can't be deleted since it has targets.", operation)
            db.execute("DELETE FROM rules WHERE name = ?", (name,))

    def scheduled_rules(self) -> list[sqlite3.Row]:
        """Enabled rules with a schedule expression, by name."""
        with self._db() as db:
            return db.execute("SELECT * FROM rules WHERE state != 'DISABLED' AND schedule_expression IS NOT NULL"
                              " ORDER BY name").fetchall()

    def claim_firing(self, name: str, last_fired_at: float | None, at: float) -> bool:
        """Record that ``name`` fires at ``at`` unless another scheduler claimed this period first."""
        with self._db() as db:
            cur = db.execute("UPDATE rules SET last_fired_at = ? WHERE name = ? AND last_fired_at IS ?",
                             (at, name, last_fired_at))
            return cur.rowcount > 0

    # ---- targets ---------------------------------------------------------------------
    def put_targets(self, rule: str, targets: list[dict[str, Any]], max_per_rule: int, operation: str) -> None:
        """Add or replace targets of ``rule``, all or none: ``LimitExceededException`` past ``max_per_rule``."""
        with self._db() as db:
            self._rule(db, rule, operation)
            existing = {r["id"] for r in db.execute("SELECT id FROM targets WHERE rule = ?", (rule,))}
            for target in targets:
                tid = target["Id"]
                if tid not in existing and len(existing) >= max_per_rule:
                    raise ServiceError("LimitExceededException", "The requested resource exceeds the maximum "
                                       f"number allowed: a rule has at most {max_per_rule} targets.", 400, operation)
                existing.add(tid)
                db.execute("INSERT OR REPLACE INTO targets (rule, id, arn, spec) VALUES (?,?,?,?)",
                           (rule, tid, target["Arn"], json.dumps(target)))

    def targets(self, rule: str, operation: str) -> list[dict[str, Any]]:
        """The rule's targets, by id."""
        with self._db() as db:
            self._rule(db, rule, operation)
            return [json.loads(r["spec"]) for r in
                    db.execute("SELECT spec FROM targets WHERE rule = ? ORDER BY id", (rule,))]

    def remove_targets(self, rule: str, ids: list[str], operation: str) -> list[str]:
        """Remove targets by id; returns the ids the rule did not have."""
        missing = []
        with self._db() as db:
            self._rule(db, rule, operation)
            for tid in ids:
                if db.execute("DELETE FROM targets WHERE rule = ? AND id = ?", (rule, tid)).rowcount == 0:
                    missing.append(tid)
        return missing

    # ---- the delivery history --------------------------------------------------------
    def record_event(self, event: dict[str, Any], only_rule: str | None = None) -> dict[str, list[dict[str, Any]]]:
        """Record ``event`` with the enabled rules whose pattern it matches (or just ``only_rule``, a
        scheduled rule firing); returns those rules' targets by rule name, in name order."""
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
            return {n: [json.loads(t["spec"]) for t in
                        db.execute("SELECT spec FROM targets WHERE rule = ? ORDER BY id", (n,))] for n in names}

    def record_invocation(self, event_id: str, rule: str, target: dict[str, Any], status: str, result: Any,
                          error: str | None, started_at: float, duration_ms: float) -> None:
        """One target invocation's outcome."""
        result_text = json.dumps(result, default=str) if result is not None else None
        with self._db() as db:
            db.execute("INSERT INTO invocations (event_id, rule, target_id, target_arn, status, result, error,"
                       " started_at, duration_ms) VALUES (?,?,?,?,?,?,?,?,?)",
                       (event_id, rule, target["Id"], target["Arn"], status, result_text, error, started_at,
                        duration_ms))

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
            return [{
                "event_id": r["event_id"], "time": r["time"], "source": r["source"],
                "detail_type": r["detail_type"], "received_at": iso_seconds_z(r["received_at"]),
                "event": json.loads(r["event"]), "matched_rules": json.loads(r["matched_rules"]),
                "invocations": [_invocation(i) for i in
                                db.execute("SELECT * FROM invocations WHERE event_id = ? ORDER BY seq",
                                           (r["event_id"],))],
            } for r in rows]


def _invocation(row: sqlite3.Row) -> dict[str, Any]:
    return {"rule": row["rule"], "target_id": row["target_id"], "target_arn": row["target_arn"],
            "status": row["status"], "result": json.loads(row["result"]) if row["result"] else None,
            "error": row["error"], "started_at": iso_seconds_z(row["started_at"]),
            "duration_ms": round(row["duration_ms"], 1)}

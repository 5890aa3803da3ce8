"""The bus's scheduler: when each scheduled rule fires next, firing the rules that are due (once per
period, even with several schedulers on one data dir), and the timer thread of the bus process.

A due rule's targets get AWS's ``Scheduled Event`` (source ``aws.events``, the rule's ARN in
``resources``, the scheduled time in ``time``). The local clock scale shrinks ``rate()`` periods
(``rate(1 hour)`` at scale 0.001 fires every 4 s) so demos and tests need not wait hours.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Protocol

from infra.local.core.arns import events_rule_arn
from infra.local.core.clock import aware, from_epoch, iso_seconds_z, utc_now
from infra.local.core.config import LocalConfig
from infra.local.core.ticker import Ticker
from infra.local.eventbridge.schedule import RateSchedule, Schedule, next_fire_time, parse_schedule_expression
from infra.local.eventbridge.store import EventStore

log = logging.getLogger("aircast.eventbridge.service")


def scaled_schedule(expression: str, clock_scale: float) -> Schedule:
    """The parsed schedule, its ``rate()`` period scaled by the local clock scale (at least 1 s)."""
    schedule = parse_schedule_expression(expression)
    if isinstance(schedule, RateSchedule) and clock_scale != 1.0:
        schedule = RateSchedule(schedule.expression, max(1, round(schedule.seconds * clock_scale)))
    return schedule


def next_fire(row: sqlite3.Row, clock_scale: float) -> datetime | None:
    """When the stored scheduled rule ``row`` fires next (UTC)."""
    anchor = from_epoch(row["schedule_anchor"])
    after = from_epoch(row["last_fired_at"]) if row["last_fired_at"] else anchor
    return next_fire_time(scaled_schedule(row["schedule_expression"], clock_scale), after, anchor)


def next_fire_times(store: EventStore, clock_scale: float) -> dict[str, datetime | None]:
    """When each enabled scheduled rule fires next (UTC)."""
    return {row["name"]: next_fire(row, clock_scale) for row in store.scheduled_rules()}


def scheduled_event(config: LocalConfig, rule: str, due: datetime) -> dict[str, Any]:
    """The event EventBridge sends a scheduled rule's targets."""
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
            "account": config.account_id, "time": iso_seconds_z(due), "region": config.region,
            "resources": [events_rule_arn(config.region, config.account_id, rule)], "detail": {}}


def claim_due(config: LocalConfig, store: EventStore,
              now: datetime | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(rule, Scheduled Event)`` of each enabled scheduled rule whose time has come, one by one, each period
    claimed in the store first so two schedulers never fire it twice (several missed periods fire once)."""
    moment = aware(now or utc_now())
    for row in store.scheduled_rules():
        due = next_fire(row, config.clock_scale)
        if due is None or due > moment:
            continue
        if store.claim_firing(row["name"], row["last_fired_at"], moment.timestamp()):
            yield row["name"], scheduled_event(config, row["name"], due)


class FiresSchedules(Protocol):
    def fire_due_schedules(self, now: datetime | None = None,
                           submit: Callable[..., Any] | None = None) -> list[dict[str, Any]]: ...


def scheduler(events: FiresSchedules, submit: Any, tick_s: float = 1.0) -> Ticker:
    """The bus process's timer thread: fires the due scheduled rules every ``tick_s`` (start it, stop it)."""

    def tick() -> None:
        for fired in events.fire_due_schedules(submit=submit):
            log.info("fired scheduled rule %s (event %s, scheduled for %s)", fired["rule"], fired["event_id"],
                     fired["scheduled_for"])

    return Ticker("eventbridge-scheduler", tick, tick_s, log)

"""Glue triggers: SCHEDULED ones fire on their cron schedule, CONDITIONAL ones when a watched
job run ends in the state their predicate names.

A scheduled trigger fires once per scheduled minute while the Glue service runs (the
service's timer calls :meth:`Triggers.fire_due`; the cron syntax and its next-time rules
are EventBridge's, which Glue shares: :mod:`infra.local.eventbridge.schedule`). It never
catches up on times that passed while the service was down. A conditional trigger's
actions run when :meth:`Triggers.on_job_run_finished` sees a matching run: a crawler that
is already running is left to its crawl, a job at its concurrency limit gets a FAILED run
("The job exceeded its maximum allowed concurrent runs", as Glue records it).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from infra.local.core.errors import ServiceError
from infra.local.eventbridge.schedule import CronSchedule, parse_schedule_expression
from infra.local.glue.config import GlueConfig, TriggerDefinition
from infra.local.glue.store import GlueStore

log = logging.getLogger("aircast.glue.triggers")


def cron_of(trigger: TriggerDefinition) -> CronSchedule:
    """The trigger's schedule; Glue accepts ``cron(...)`` only."""
    schedule = parse_schedule_expression(trigger.schedule)
    if not isinstance(schedule, CronSchedule):
        raise ServiceError("InvalidInputException", f"Trigger {trigger.name}: schedule must be a cron expression, "
                           f"got {trigger.schedule!r}", 400, "CreateTrigger")
    return schedule


class Triggers:
    """The configured triggers, and what they start."""

    def __init__(self, config: GlueConfig, store: GlueStore, start_job: Callable[..., str],
                 start_crawler: Callable[[str], Any], record_refused_run: Callable[..., None]) -> None:
        self.config, self.store = config, store
        self.start_job, self.start_crawler, self.record_refused_run = start_job, start_crawler, record_refused_run
        self.schedules = {t.name: cron_of(t) for t in config.triggers if t.type == "SCHEDULED"}
        self.activated_at = dt.datetime.now(dt.UTC)

    def describe(self, trigger: TriggerDefinition) -> dict[str, Any]:
        """``GetTrigger``'s ``Trigger``."""
        out: dict[str, Any] = {"Name": trigger.name, "Type": trigger.type,
                               "State": "ACTIVATED" if trigger.start_on_creation else "DEACTIVATED",
                               "Actions": [dict(a) for a in trigger.actions]}
        if trigger.description:
            out["Description"] = trigger.description
        if trigger.schedule:
            out["Schedule"] = trigger.schedule
        if trigger.conditions:
            out["Predicate"] = {"Logical": trigger.logical, "Conditions": [dict(c) for c in trigger.conditions]}
        return out

    def next_fire_times(self) -> dict[str, dt.datetime | None]:
        """Each scheduled trigger's next firing."""
        with self.store.read() as db:
            return {name: self._next(db, name) for name in self.schedules}

    def _next(self, db: Any, name: str) -> dt.datetime | None:
        last = self.store.last_fired(db, name)
        after = self.activated_at if last is None else max(self.activated_at,
                                                            dt.datetime.fromtimestamp(last, dt.UTC))
        return self.schedules[name].next_after(after)

    def fire_due(self, now: dt.datetime | None = None) -> list[str]:
        """Fire every activated scheduled trigger whose time has come (once); returns their names."""
        moment = now or dt.datetime.now(dt.UTC)
        fired = []
        for trigger in self.config.triggers:
            if trigger.type != "SCHEDULED" or not trigger.start_on_creation:
                continue
            with self.store.transaction() as db:
                due = self._next(db, trigger.name)
                if due is None or due > moment:
                    continue
                self.store.set_fired(db, trigger.name, moment.timestamp())  # claim first: fire once per time
            log.info("trigger %s fired (scheduled for %s)", trigger.name, due.isoformat())
            self._act(trigger)
            fired.append(trigger.name)
        return fired

    def on_job_run_finished(self, run: dict[str, Any]) -> list[str]:
        """Run the actions of every activated conditional trigger the finished ``run`` satisfies."""
        fired = []
        for trigger in self.config.triggers:
            if trigger.type != "CONDITIONAL" or not trigger.start_on_creation:
                continue
            hits = [c.get("JobName") == run["JobName"] and c.get("State") == run["JobRunState"]
                    and c.get("LogicalOperator", "EQUALS") == "EQUALS" for c in trigger.conditions]
            # one finished run satisfies at most the conditions that watch it; ANY needs one, AND all
            if (trigger.logical == "ANY" and any(hits)) or (trigger.logical != "ANY" and hits and all(hits)):
                log.info("trigger %s fired (job run %s %s)", trigger.name, run["Id"], run["JobRunState"])
                self._act(trigger)
                fired.append(trigger.name)
        return fired

    def _act(self, trigger: TriggerDefinition) -> None:
        for action in trigger.actions:
            try:
                if "JobName" in action:
                    self.start_job(action["JobName"], arguments=action.get("Arguments"), trigger_name=trigger.name)
                elif "CrawlerName" in action:
                    self.start_crawler(action["CrawlerName"])
            except ServiceError as exc:
                if exc.code == "ConcurrentRunsExceededException" and "JobName" in action:
                    self.record_refused_run(action["JobName"], trigger.name, action.get("Arguments"))
                log.warning("trigger %s: %s: %s", trigger.name, exc.code, exc.message)

"""Schedule expressions: AWS's validation rules with clear errors, and next firing times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from infra.local.eventbridge.schedule import (
    CronSchedule,
    InvalidScheduleExpression,
    RateSchedule,
    next_fire_time,
    parse_schedule_expression,
)

T0 = datetime(2026, 11, 28, 2, 36, 10, tzinfo=UTC)  # a Saturday


@pytest.mark.parametrize("expr, seconds", [
    ("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(1 hour)", 3600), ("rate(12 hours)", 43200),
    ("rate(1 day)", 86400), ("rate(7 days)", 604800),
])
def test_valid_rates(expr: str, seconds: int) -> None:
    schedule = parse_schedule_expression(expr)
    assert isinstance(schedule, RateSchedule) and schedule.seconds == seconds


@pytest.mark.parametrize("expr", [
    "cron(0 12 * * ? *)", "cron(0/15 * * * ? *)", "cron(0 3 ? * SUN *)", "cron(0 8 1 * ? *)",
    "cron(0 18 ? * MON-FRI *)", "cron(0 10 L * ? *)", "cron(0 9 15W * ? *)", "cron(0 9 ? * 6L *)",
    "cron(0 9 ? * 3#2 *)", "cron(5,35 14 * JAN-MAR ? 2026-2030)", "cron(0 0 ? * 2,4,6 *)",
])
def test_valid_crons(expr: str) -> None:
    assert isinstance(parse_schedule_expression(expr), CronSchedule)


@pytest.mark.parametrize("expr, fragment", [
    ("", "empty"),
    ("every 5 minutes", "must start with rate( or cron("),
    ("rate(5)", "rate(<value> <unit>)"),
    ("rate(0 minutes)", "positive whole number"),
    ("rate(-1 minutes)", "positive whole number"),
    ("rate(1.5 hours)", "positive whole number"),
    ("rate(1 minutes)", "singular: rate(1 minute)"),
    ("rate(5 minute)", "plural: rate(5 minutes)"),
    ("rate(2 weeks)", "unknown rate unit 'weeks'"),
    ("cron(0 12 * * *)", "six fields"),
    ("cron(0 12 * * * *)", "exactly one of day-of-month (*) and day-of-week (*) must be '?'"),
    ("cron(0 12 ? * ? *)", "exactly one of day-of-month"),
    ("cron(60 12 * * ? *)", "minutes value 60 is out of range 0-59"),
    ("cron(0 24 * * ? *)", "hours value 24 is out of range 0-23"),
    ("cron(0 12 32 * ? *)", "day-of-month value 32 is out of range 1-31"),
    ("cron(0 12 * 13 ? *)", "month value 13 is out of range 1-12"),
    ("cron(0 12 * FOO ? *)", "month value 'FOO' is not a number"),
    ("cron(0 12 ? * 8 *)", "day-of-week value 8 is out of range 1-7"),
    ("cron(0 12 ? * MON#6 *)", "must be 1-5"),
    ("cron(0 12 * * ? 1969)", "year value 1969 is out of range 1970-2199"),
    ("cron(0/0 12 * * ? *)", "increment '0' must be a positive number"),
    ("cron(30-10 12 * * ? *)", "runs backwards"),
    ("cron(? 12 * * ? *)", "'?' is allowed only in day-of-month or day-of-week"),
])
def test_invalid_schedules_say_what_is_wrong(expr: str, fragment: str) -> None:
    with pytest.raises(InvalidScheduleExpression) as err:
        parse_schedule_expression(expr)
    assert fragment in str(err.value)


@pytest.mark.parametrize("expr, expected", [
    ("cron(0 12 * * ? *)", datetime(2026, 11, 28, 12, 0, tzinfo=UTC)),
    ("cron(0/15 * * * ? *)", datetime(2026, 11, 28, 2, 45, tzinfo=UTC)),
    ("cron(0 3 ? * SUN *)", datetime(2026, 11, 29, 3, 0, tzinfo=UTC)),  # SUN = 1
    ("cron(0 3 ? * 2 *)", datetime(2026, 11, 30, 3, 0, tzinfo=UTC)),  # 2 = Monday
    ("cron(0 8 1 * ? *)", datetime(2026, 12, 1, 8, 0, tzinfo=UTC)),
    ("cron(0 10 L * ? *)", datetime(2026, 11, 30, 10, 0, tzinfo=UTC)),
    ("cron(0 9 ? * 6L *)", datetime(2026, 12, 25, 9, 0, tzinfo=UTC)),  # last Friday of December
    ("cron(0 9 ? * 3#2 *)", datetime(2026, 12, 8, 9, 0, tzinfo=UTC)),  # second Tuesday of December
    ("cron(0 9 5W * ? *)", datetime(2026, 12, 4, 9, 0, tzinfo=UTC)),  # Dec 5 is a Saturday → Friday 4th
    ("cron(0 0 1 1 ? 2028)", datetime(2028, 1, 1, 0, 0, tzinfo=UTC)),
])
def test_next_cron_firing(expr: str, expected: datetime) -> None:
    assert next_fire_time(parse_schedule_expression(expr), T0, T0) == expected


def test_cron_in_the_past_never_fires() -> None:
    assert next_fire_time(parse_schedule_expression("cron(0 0 1 1 ? 2020)"), T0, T0) is None


def test_rate_counts_periods_from_the_anchor() -> None:
    schedule = parse_schedule_expression("rate(5 minutes)")
    anchor = datetime(2026, 11, 28, 2, 0, 0, tzinfo=UTC)
    assert next_fire_time(schedule, anchor, anchor) == datetime(2026, 11, 28, 2, 5, tzinfo=UTC)
    assert next_fire_time(schedule, T0, anchor) == datetime(2026, 11, 28, 2, 40, tzinfo=UTC)

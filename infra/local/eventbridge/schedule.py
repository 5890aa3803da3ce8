"""EventBridge schedule expressions: ``rate(...)`` and ``cron(...)``, validated as AWS does,
and the next time a schedule fires.

- ``rate(N unit)``: N a positive integer; unit ``minute``/``hour``/``day`` when N is 1,
  ``minutes``/``hours``/``days`` otherwise (AWS rejects ``rate(1 minutes)`` and ``rate(5 minute)``),
  lower case, one space between value and unit and none elsewhere (AWS rejects ``rate(10 MINUTES)``,
  ``rate( 10 minutes )`` and `` rate(10 minutes)``).
  A rate schedule fires every N units counted from when the rule was created.
- ``cron(minutes hours day-of-month month day-of-week year)``: six fields, UTC.
  minutes 0-59, hours 0-23, day-of-month 1-31 (``L``, ``W``, ``?``), month 1-12 or JAN-DEC,
  day-of-week 1-7 (1 = Sunday) or SUN-SAT (``L``, ``#``, ``?``), year 1970-2199.
  Wildcards ``,`` ``-`` ``*`` ``/``. Exactly one of day-of-month and day-of-week must be ``?``.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}
# EventBridge numbers days of week 1 (Sunday) .. 7 (Saturday)
WEEKDAYS = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)}
_RATE = re.compile(r"^rate\(([^\s()]+) ([^\s()]+)\)$")
_CRON = re.compile(r"^cron\((\S.*\S)\)$")
_UNITS = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
_FIELDS = ("minutes", "hours", "day-of-month", "month", "day-of-week", "year")
_RANGES = {"minutes": (0, 59), "hours": (0, 23), "day-of-month": (1, 31), "month": (1, 12),
           "day-of-week": (1, 7), "year": (1970, 2199)}


class InvalidScheduleExpression(ValueError):
    """The schedule expression is not valid; the message says which part and why."""


@dataclass(frozen=True)
class RateSchedule:
    """``rate(N unit)``: fires every ``seconds`` from the rule's creation."""

    expression: str
    seconds: int

    def next_after(self, after: datetime, anchor: datetime) -> datetime:
        """First firing strictly after ``after``, counting periods from ``anchor``."""
        if after < anchor:
            return anchor + timedelta(seconds=self.seconds)
        periods = int((after - anchor).total_seconds() // self.seconds) + 1
        return anchor + timedelta(seconds=periods * self.seconds)


@dataclass(frozen=True)
class CronSchedule:
    """``cron(...)``: the sets of allowed values per field plus the special day rules."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    years: frozenset[int]
    dom: str  # raw day-of-month field ("?" when unused)
    dow: str  # raw day-of-week field ("?" when unused)

    def next_after(self, after: datetime, anchor: datetime | None = None) -> datetime | None:
        """First minute strictly after ``after`` (UTC) that the expression selects; None if never."""
        start = _as_utc(after).replace(second=0, microsecond=0) + timedelta(minutes=1)
        day = start.date()
        last_year = max(self.years)
        while day.year <= last_year:
            if day.year not in self.years:
                day = date(day.year + 1, 1, 1)
                continue
            if day.month not in self.months:
                day = (date(day.year + 1, 1, 1) if day.month == 12 else date(day.year, day.month + 1, 1))
                continue
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        candidate = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
                        if candidate >= start:
                            return candidate
            day += timedelta(days=1)
        return None

    def _day_matches(self, day: date) -> bool:
        if self.dom != "?":
            return _dom_matches(self.dom, day)
        return _dow_matches(self.dow, day)


Schedule = RateSchedule | CronSchedule


def parse_schedule_expression(expression: str) -> Schedule:
    """Validate a ``rate(...)``/``cron(...)`` expression; raise :class:`InvalidScheduleExpression` if bad."""
    if not isinstance(expression, str) or not expression.strip():
        raise InvalidScheduleExpression("schedule expression is empty; use rate(5 minutes) or cron(0 12 * * ? *)")
    expr = expression
    if expr != expr.strip():
        raise InvalidScheduleExpression(f"{expression!r}: no spaces before or after the expression")
    if expr.startswith("rate("):
        return _parse_rate(expr)
    if expr.startswith("cron("):
        return _parse_cron(expr)
    raise InvalidScheduleExpression(f"schedule expression {expression!r} must start with rate( or cron(, "
                                    "e.g. rate(1 hour) or cron(0 3 ? * SUN *)")


def _parse_rate(expr: str) -> RateSchedule:
    m = _RATE.match(expr)
    if not m:
        raise InvalidScheduleExpression(f"{expr!r}: a rate expression is rate(<value> <unit>), e.g. rate(5 minutes)")
    value_text, unit = m.groups()
    if not value_text.isdigit() or int(value_text) <= 0:
        raise InvalidScheduleExpression(f"{expr!r}: the rate value must be a positive whole number, got {value_text!r}")
    value = int(value_text)
    if unit not in _UNITS:
        raise InvalidScheduleExpression(f"{expr!r}: unknown rate unit {unit!r}; use minute(s), hour(s) or day(s)")
    if value == 1 and unit.endswith("s"):
        raise InvalidScheduleExpression(f"{expr!r}: with a value of 1 the unit is singular: rate(1 {unit[:-1]})")
    if value != 1 and not unit.endswith("s"):
        raise InvalidScheduleExpression(f"{expr!r}: with a value above 1 the unit is plural: rate({value} {unit}s)")
    return RateSchedule(expr, value * _UNITS[unit])


def _parse_cron(expr: str) -> CronSchedule:
    m = _CRON.match(expr)
    fields = m.group(1).split() if m else []
    if len(fields) != 6:
        raise InvalidScheduleExpression(
            f"{expr!r}: a cron expression has six fields: cron(minutes hours day-of-month month day-of-week year), "
            f"e.g. cron(0 12 * * ? *); got {len(fields)}")
    minute, hour, dom, month, dow, year = fields
    if (dom == "?") == (dow == "?"):
        raise InvalidScheduleExpression(
            f"{expr!r}: exactly one of day-of-month ({dom}) and day-of-week ({dow}) must be '?': "
            "specify one and put ? in the other, e.g. cron(0 12 * * ? *) or cron(0 12 ? * MON *)")
    schedule = CronSchedule(
        expression=expr,
        minutes=_expand("minutes", minute, expr),
        hours=_expand("hours", hour, expr),
        months=_expand("month", month, expr, names=MONTHS),
        years=_expand("year", year, expr),
        dom=dom,
        dow=dow,
    )
    if dom != "?":
        _validate_dom(dom, expr)
    else:
        _validate_dow(dow, expr)
    return schedule


def _value(field: str, text: str, expr: str, names: dict[str, int] | None = None) -> int:
    if names and text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        allowed = f" or one of {', '.join(names)}" if names else ""
        raise InvalidScheduleExpression(f"{expr!r}: {field} value {text!r} is not a number{allowed}")
    lo, hi = _RANGES[field]
    value = int(text)
    if not lo <= value <= hi:
        raise InvalidScheduleExpression(f"{expr!r}: {field} value {value} is out of range {lo}-{hi}")
    return value


def _expand(field: str, text: str, expr: str, names: dict[str, int] | None = None) -> frozenset[int]:
    """Expand ``*``, ``a-b``, ``a/b``, ``*/b``, ``a-b/c`` and comma lists into the set of values."""
    lo, hi = _RANGES[field]
    if text == "?":
        raise InvalidScheduleExpression(f"{expr!r}: '?' is allowed only in day-of-month or day-of-week, not {field}")
    out: set[int] = set()
    for part in text.split(","):
        if not part:
            raise InvalidScheduleExpression(f"{expr!r}: empty list item in {field} field {text!r}")
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise InvalidScheduleExpression(f"{expr!r}: {field} increment {step_text!r} must be a positive number")
            step = int(step_text)
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _value(field, a, expr, names), _value(field, b, expr, names)
            if start > end:
                raise InvalidScheduleExpression(f"{expr!r}: {field} range {base} runs backwards")
        else:
            start = _value(field, base, expr, names)
            end = hi if step_text else start
        out.update(range(start, end + 1, step))
    return frozenset(out)


def _validate_dom(dom: str, expr: str) -> None:
    if dom in ("L", "LW"):
        return
    if dom.endswith("W"):
        _value("day-of-month", dom[:-1], expr)
        return
    _expand("day-of-month", dom, expr)


def _validate_dow(dow: str, expr: str) -> None:
    if dow == "L":
        return
    if dow.endswith("L"):
        _value("day-of-week", dow[:-1], expr, names=WEEKDAYS)
        return
    if "#" in dow:
        day, _, nth = dow.partition("#")
        _value("day-of-week", day, expr, names=WEEKDAYS)
        if not nth.isdigit() or not 1 <= int(nth) <= 5:
            raise InvalidScheduleExpression(f"{expr!r}: in day-of-week {dow!r} the number after # must be 1-5")
        return
    _expand("day-of-week", dow, expr, names=WEEKDAYS)


def _aws_weekday(day: date) -> int:
    return (day.weekday() + 1) % 7 + 1  # Python Monday=0 → AWS Monday=2, Sunday=1


def _dom_matches(dom: str, day: date) -> bool:
    last = calendar.monthrange(day.year, day.month)[1]
    if dom == "L":
        return day.day == last
    if dom.endswith("W"):
        target = last if dom == "LW" else min(int(dom[:-1]), last)
        return day == _nearest_weekday(date(day.year, day.month, target))
    return day.day in _expand("day-of-month", dom, dom)


def _nearest_weekday(d: date) -> date:
    """AWS ``W``: the weekday nearest to ``d`` without leaving its month."""
    if d.weekday() < 5:
        return d
    last = calendar.monthrange(d.year, d.month)[1]
    if d.weekday() == 5:  # Saturday → Friday, unless that leaves the month
        return d - timedelta(days=1) if d.day > 1 else d + timedelta(days=2)
    return d + timedelta(days=1) if d.day < last else d - timedelta(days=2)


def _dow_matches(dow: str, day: date) -> bool:
    weekday = _aws_weekday(day)
    last = calendar.monthrange(day.year, day.month)[1]
    if dow == "L":
        return weekday == 7  # last day of the week: Saturday
    if dow.endswith("L"):
        wanted = WEEKDAYS.get(dow[:-1].upper()) or int(dow[:-1])
        return weekday == wanted and day.day + 7 > last
    if "#" in dow:
        name, _, nth = dow.partition("#")
        wanted = WEEKDAYS.get(name.upper()) or int(name)
        return weekday == wanted and (day.day - 1) // 7 + 1 == int(nth)
    return weekday in _expand("day-of-week", dow, dow, names=WEEKDAYS)


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def next_fire_time(schedule: Schedule, after: datetime, anchor: datetime) -> datetime | None:
    """When ``schedule`` fires next, strictly after ``after`` (rate periods count from ``anchor``)."""
    if isinstance(schedule, RateSchedule):
        return schedule.next_after(_as_utc(after), _as_utc(anchor))
    return schedule.next_after(after)

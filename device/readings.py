"""Where a device's readings come from: a replay of real hourly data, or simulated sensors.

A :class:`Reading` carries its own timestamp, so a replay or a backfill of weeks
of history can be published in seconds (the publisher paces by ``speed``).
Both sources yield readings in time order.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Beijing PM2.5 data: CSV column → payload field (weather fields keep their meaning)
BEIJING_FIELDS: dict[str, str] = {
    "pm2.5": "pm2_5",
    "DEWP": "dew_point",
    "TEMP": "temperature",
    "PRES": "pressure",
    "cbwd": "wind_direction",
    "Iws": "wind_speed",
    "Is": "snow_hours",
    "Ir": "rain_hours",
}
#: the data's clock: China Standard Time (UTC+8)
BEIJING_TZ = dt.timezone(dt.timedelta(hours=8))
BEIJING_LOCATION = (39.954, 116.468)  # US Embassy, Beijing (lat, lon)


@dataclass(frozen=True)
class Reading:
    """One sensor reading: who measured what, when (UTC)."""

    thing_name: str
    timestamp: dt.datetime
    measurements: dict[str, Any] = field(default_factory=dict)


def iso_timestamp(t: dt.datetime) -> str:
    """UTC timestamp as JavaScript's ``new Date().toJSON()`` writes it: ``2021-02-05T13:00:00.000Z``."""
    t = t.astimezone(dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_time(text: str) -> dt.datetime:
    """Parse an ISO date/time; a time without a zone is UTC."""
    t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _number(text: str) -> float | int | str | None:
    text = text.strip()
    if text in ("", "NA", "NaN", "nan"):
        return None
    try:
        value = float(text)
    except ValueError:
        return text  # categorical, e.g. wind direction "NW"
    return int(value) if value.is_integer() and "." not in text else value


def replay_beijing(path: Path, thing_name: str, start: dt.datetime | None = None, hours: int | None = None,
                   shift_to: dt.datetime | None = None) -> Iterator[Reading]:
    """Readings from the Beijing PM2.5 CSV (local time UTC+8 → UTC); ``NA`` fields are omitted.

    ``start`` skips rows before it, ``hours`` limits the span replayed, and ``shift_to``
    moves timestamps so the first replayed row is at that time (keeping the spacing).
    """
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("year", "month", "day", "hour", "pm2.5") if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} is not the Beijing PM2.5 CSV: missing column(s) {', '.join(missing)}")
        first: dt.datetime | None = None
        for row in reader:
            t = dt.datetime(int(row["year"]), int(row["month"]), int(row["day"]), int(row["hour"]),
                            tzinfo=BEIJING_TZ).astimezone(dt.UTC)
            if start is not None and t < start:
                continue
            if first is None:
                first = t
            if hours is not None and t >= first + dt.timedelta(hours=hours):
                break
            measurements: dict[str, Any] = {}
            for column, name in BEIJING_FIELDS.items():
                value = _number(row.get(column, ""))
                if value is not None:
                    measurements[name] = value
            measurements["latitude"], measurements["longitude"] = BEIJING_LOCATION
            when = t if shift_to is None else shift_to + (t - first)
            yield Reading(thing_name, when, measurements)


@dataclass
class _SensorState:
    """Per-sensor parameters and the slow-moving state of its simulation."""

    name: str
    rng: random.Random
    level: float
    latitude: float
    longitude: float
    noise: float = 0.0
    spike_hours: int = 0
    spike_factor: float = 1.0
    outage_hours: int = 0
    pressure: float = 1013.0


def _daily_pm(hour: int) -> float:
    # morning and evening traffic peaks, an afternoon dip when the mixing layer is deep
    return (0.85 + 0.25 * math.exp(-((hour - 8) ** 2) / 8.0) + 0.35 * math.exp(-((hour - 20) ** 2) / 10.0)
            - 0.12 * math.exp(-((hour - 15) ** 2) / 6.0))


def _weekly(weekday: int) -> float:
    return {5: 0.88, 6: 0.8}.get(weekday, 1.0)


def simulated_reading(state: _SensorState, t: dt.datetime) -> dict[str, Any] | None:
    """The next hourly reading of one simulated sensor, or None for a missing hour.

    Daily and weekly cycles, AR(1) noise in log space, occasional multi-hour spikes,
    random missing hours and multi-hour outages, a per-sensor level.
    """
    rng = state.rng
    state.noise = 0.8 * state.noise + rng.gauss(0.0, 0.15)
    if state.spike_hours > 0:
        state.spike_hours -= 1
    elif rng.random() < 0.01:
        state.spike_hours, state.spike_factor = rng.randint(1, 3), rng.uniform(2.5, 5.0)
    state.pressure += rng.gauss(0.0, 0.4) + (1013.0 - state.pressure) * 0.02
    if state.outage_hours > 0:
        state.outage_hours -= 1
        return None
    if rng.random() < 0.002:
        state.outage_hours = rng.randint(3, 12)
        return None
    if rng.random() < 0.03:
        return None
    hour, weekday = t.hour, t.weekday()
    spike = state.spike_factor if state.spike_hours > 0 else 1.0
    pm2_5 = state.level * _daily_pm(hour) * _weekly(weekday) * math.exp(state.noise) * spike
    doy = t.timetuple().tm_yday
    temperature = (12 + 10 * math.sin(2 * math.pi * (doy - 110) / 365) + 5 * math.sin(2 * math.pi * (hour - 9) / 24)
                   + rng.gauss(0, 0.8))
    traffic = 1 + 0.5 * math.exp(-((hour - 8) ** 2) / 6.0) + 0.6 * math.exp(-((hour - 19) ** 2) / 8.0)
    no2 = 25 * traffic * _weekly(weekday) * math.exp(0.5 * state.noise + rng.gauss(0, 0.1))
    ozone = max(2.0, 45 * (0.6 + 0.6 * math.exp(-((hour - 15) ** 2) / 12.0)) - 0.3 * no2 + rng.gauss(0, 4))
    return {
        "pm2_5": round(pm2_5, 1),
        "pm10": round(pm2_5 * rng.uniform(1.4, 1.9), 1),
        "nitrogen_dioxide": round(no2, 1),
        "ozone": round(ozone, 1),
        "carbon_monoxide": round(0.3 + pm2_5 / 80 + rng.gauss(0, 0.05), 2),
        "temperature": round(temperature, 1),
        "humidity": round(min(100.0, max(10.0, 65 - 1.5 * (temperature - 12) + rng.gauss(0, 5))), 1),
        "pressure": round(state.pressure, 1),
        "latitude": state.latitude,
        "longitude": state.longitude,
    }


def simulated_thing_names(n: int, prefix: str = "sim-sensor") -> list[str]:
    return [f"{prefix}-{i:03d}" for i in range(1, n + 1)]


def simulate(n: int, start: dt.datetime, hours: int, prefix: str = "sim-sensor", seed: int = 0) -> Iterator[Reading]:
    """Hourly readings of ``n`` simulated sensors from ``start`` for ``hours`` hours, time-major."""
    if n < 1:
        raise ValueError("--simulate needs at least 1 sensor")
    start = start.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    sensors = []
    for i, name in enumerate(simulated_thing_names(n, prefix)):
        rng = random.Random(seed * 100_003 + i)
        sensors.append(_SensorState(name, rng, level=math.exp(rng.gauss(3.6, 0.35)),
                                    latitude=round(56.15 + rng.uniform(-0.1, 0.1), 5),
                                    longitude=round(10.2 + rng.uniform(-0.15, 0.15), 5)))
    for h in range(hours):
        t = start + dt.timedelta(hours=h)
        for state in sensors:
            values = simulated_reading(state, t)
            if values is not None:
                yield Reading(state.name, t, values)

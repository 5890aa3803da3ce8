"""Raw lake objects for the lake tests, written exactly as the Firehose stand-in lays them out:
``raw/telemetry/YYYY/MM/DD/HH/<stream>-1-YYYY-MM-DD-HH-MM-SS-<uuid>``, JSON lines, each record =
device payload + ``thing_name`` + ``received_at`` (epoch ms)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aircast.settings import Settings
from infra.local.s3 import atomic_write_bytes

UTC = dt.UTC
T0 = dt.datetime(2021, 2, 5, 13, 0, tzinfo=UTC)  # 1612530000


def ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def write_object(settings: Settings, lines: Sequence[str | dict[str, Any]], delivered: dt.datetime,
                 stream: str = "aircast-telemetry") -> Path:
    """Write one Firehose object (records as dicts, or raw lines as str) delivered at ``delivered``."""
    key = (f"raw/telemetry/{delivered:%Y/%m/%d/%H}/{stream}-1-{delivered:%Y-%m-%d-%H-%M-%S}-{uuid.uuid4()}")
    body = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    path = settings.s3_root / settings.lake_bucket / key
    atomic_write_bytes(path, body.encode(), fsync=False)
    return path


def seed(t: dt.datetime, ozone: float, pm: float, co: float, so2: float, no2: float,
         thing: str = "seed-device") -> dict[str, Any]:
    """The seed article's payload (its spellings, JS ``new Date()`` ISO timestamp) after the IoT rule."""
    return {
        "ozone": ozone, "particullate_matter": pm, "carbon_monoxide": co, "sulfure_dioxide": so2,
        "nitrogen_dioxide": no2, "longitude": 10.250786139881143, "latitude": 56.20251117218925,
        "timestamp": t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z",
        "thing_name": thing, "received_at": ms(t) + 250,
    }


def aircast(seq: int, timestamp: Any, pm2_5: float, pm10: float, received: dt.datetime,
            thing: str = "aircast-001", **extra: Any) -> dict[str, Any]:
    """aircast's own device payload after the IoT rule."""
    return {
        "device_id": thing, "seq": seq, "timestamp": timestamp, "pm2_5": pm2_5, "pm10": pm10,
        "temperature": 3.5, "humidity": 61.0, "pressure": 1016.2, **extra,
        "thing_name": thing, "received_at": ms(received),
    }


def _ok(**overrides: Any) -> dict[str, Any]:
    base = {"device_id": "bad-001", "seq": 7, "timestamp": "2021-02-05T13:30:00Z", "pm2_5": 10.0,
            "thing_name": "bad-001", "received_at": ms(T0) + 1000}
    for key, value in overrides.items():
        if value is ...:
            base.pop(key)
        else:
            base[key] = value
    return base


def _line(**overrides: Any) -> str:
    return json.dumps(_ok(**overrides))


#: (raw line, expected reason, expected field) — one or more per reason code.
BAD_RECORDS: list[tuple[str, str, str | None]] = [
    (_line(pad="x" * (130 * 1024)), "oversized_record", None),
    ("this is not json", "unparsable_json", None),
    ('{"thing_name": "bad-001", "pm2_5": 3', "unparsable_json", None),  # cut short
    ("[1, 2, 3]", "not_an_object", None),
    ("{}", "empty_record", None),
    (_line(thing_name=...), "missing_thing_name", None),
    (_line(thing_name="bad name!"), "bad_thing_name", None),
    (_line(device_id="has spaces in it"), "bad_device_id", None),
    (_line(received_at=...), "missing_received_at", None),
    (_line(received_at="yesterday"), "bad_received_at", None),
    (_line(timestamp=...), "missing_timestamp", None),
    (_line(timestamp="not-a-date"), "bad_timestamp", None),
    (_line(timestamp="1999-12-31T23:59:59Z"), "timestamp_before_2000", None),
    (_line(timestamp="2031-01-01T00:00:00Z"), "timestamp_in_future", None),
    (_line(seq=-5), "bad_seq", None),
    (_line(pm2_5={"value": 3}), "nested_value", "pm2_5"),
    (_line(pm2_5=float("nan")), "non_finite_value", "pm2_5"),  # json.dumps writes a bare NaN
    (_line(pm10="high"), "non_numeric_value", "pm10"),
    (_line(ozone=-1.0), "negative_concentration", "ozone"),
    (_line(pm2_5=5000.0), "concentration_out_of_range", "pm2_5"),
    (_line(temperature=80.0), "temperature_out_of_range", "temperature"),
    (_line(humidity=140.0), "humidity_out_of_range", "humidity"),
    (_line(pressure=5.0), "pressure_out_of_range", "pressure"),
    (_line(latitude=95.0), "latitude_out_of_range", "latitude"),
    (_line(longitude=-200.0), "longitude_out_of_range", "longitude"),
    (_line(pm2_5=...), "no_measurements", None),
]

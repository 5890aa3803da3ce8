"""The IoT rule and Firehose key layout, as pure functions."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re

import pytest

from infra.local.firehose import rule

SEED_PAYLOAD = ('{"ozone":42,"particullate_matter":17,"carbon_monoxide":88,"sulfure_dioxide":5,'
                '"nitrogen_dioxide":61,"longitude":10.250786139881143,"latitude":56.20251117218925,'
                '"timestamp":"2021-02-05T13:00:00.000Z"}')


def test_rule_adds_thing_name_and_received_at_and_keeps_the_payload() -> None:
    result = rule.apply_rule("sensors/seed-device/telemetry", SEED_PAYLOAD.encode(), 1612530000123)
    assert result.reason is None and result.line is not None and result.line.endswith(b"\n")
    assert result.line.count(b"\n") == 1
    record = json.loads(result.line)
    assert record == {**json.loads(SEED_PAYLOAD), "thing_name": "seed-device", "received_at": 1612530000123}


def test_rule_output_is_one_line_even_for_a_pretty_printed_payload() -> None:
    payload = json.dumps({"a": 1, "b": [1, 2]}, indent=2).encode()
    result = rule.apply_rule("sensors/t/telemetry", payload, 1)
    assert result.line is not None and result.line.count(b"\n") == 1


@pytest.mark.parametrize("payload, code", [
    (b"not json", "invalid_json"),
    (b'{"a": 1', "invalid_json"),
    (b'{"a": NaN}', "invalid_json"),
    (b"\xff\xfe", "invalid_json"),
    (b"[1, 2]", "not_an_object"),
    (b'"text"', "not_an_object"),
    (b"42", "not_an_object"),
    (b'{"x": "' + b"a" * (128 * 1024) + b'"}', "payload_too_large"),
])
def test_rule_rejects_bad_payloads_with_a_reason(payload: bytes, code: str) -> None:
    result = rule.apply_rule("sensors/t/telemetry", payload, 1)
    assert result.line is None and result.reason is not None and result.reason.startswith(code)
    err = json.loads(rule.error_line("sensors/t/telemetry", payload, result.reason, 5))
    assert err["reason"] == code and err["thing_name"] == "t" and err["received_at"] == 5
    assert base64.b64decode(err["raw_base64"]) == payload


def test_payload_at_the_limit_is_accepted() -> None:
    body = b'{"x":"' + b"a" * (rule.MAX_PAYLOAD_BYTES - 8) + b'"}'
    assert len(body) == rule.MAX_PAYLOAD_BYTES
    assert rule.apply_rule("sensors/t/telemetry", body, 1).line is not None


@pytest.mark.parametrize("topic, thing", [
    ("sensors/abc-1/telemetry", "abc-1"), ("sensors//telemetry", None), ("sensors/a/b/telemetry", None),
    ("other/a/telemetry", None), ("sensors/a/status", None),
])
def test_thing_from_topic(topic: str, thing: str | None) -> None:
    assert rule.thing_from_topic(topic) == thing


def test_object_key_has_firehose_layout_in_utc() -> None:
    t = dt.datetime(2024, 3, 9, 7, 5, 3, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    key = rule.object_key(rule.TELEMETRY_PREFIX, "aircast-telemetry", t, "0f0f")
    assert key == "raw/telemetry/2024/03/09/05/aircast-telemetry-1-2024-03-09-05-05-03-0f0f"
    generated = rule.object_key(rule.TELEMETRY_PREFIX, "s", t)
    assert re.fullmatch(r"raw/telemetry/2024/03/09/05/s-1-2024-03-09-05-05-03-[0-9a-f-]{36}", generated)

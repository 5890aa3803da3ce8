"""SageMaker DeepAR inference wire format: strict request parsing and response encoding.

The built-in DeepAR container answers ``application/json`` requests of the form::

    {"instances": [{"start": "2021-01-01 00:00:00", "target": [1.0, "NaN", 3.0],
                    "cat": [0, 1], "dynamic_feat": [[...], ...]}],
     "configuration": {"num_samples": 100, "output_types": ["mean", "quantiles", "samples"],
                       "quantiles": ["0.1", "0.5", "0.9"]}}

with ``{"predictions": [{"mean": [...], "quantiles": {"0.1": [...]}, "samples": [[...]]}]}``.
Batch transform sends one instance per JSON line and reads one prediction object per line;
its configuration comes from the ``DEEPAR_INFERENCE_CONFIG`` environment variable.

Everything here is pure: bytes/dicts in, validated dicts or bytes out. Every rejection is an
:class:`InvalidRequest` whose message names the offending field (``instances[0].target[3]: ...``)
so a caller can fix the request without reading this code.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "DEFAULT_CONFIGURATION",
    "DEFAULT_MAX_BYTES",
    "INFERENCE_CONFIG_ENV",
    "MAX_NUM_SAMPLES",
    "OUTPUT_TYPES",
    "InvalidRequest",
    "format_batch_line",
    "format_response",
    "inference_config_from_env",
    "parse_batch_line",
    "parse_request",
    "validate_configuration",
    "validate_instance",
]

#: SageMaker real-time endpoints reject payloads over 6 MB.
DEFAULT_MAX_BYTES = 6 * 1024 * 1024
#: Environment variable through which batch transform passes the inference configuration.
INFERENCE_CONFIG_ENV = "DEEPAR_INFERENCE_CONFIG"
OUTPUT_TYPES = ("mean", "quantiles", "samples")
MAX_NUM_SAMPLES = 1000
#: What DeepAR uses when a request carries no (or a partial) configuration.
DEFAULT_CONFIGURATION: dict[str, Any] = {
    "num_samples": 100,
    "output_types": ["mean", "quantiles"],
    "quantiles": ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"],
}

_INSTANCE_KEYS = ("start", "target", "cat", "dynamic_feat")
# DeepAR accepts "YYYY-MM-DD" and "YYYY-MM-DD HH:MM:SS" (a "T" separator is tolerated here too).
_START_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?$")


class InvalidRequest(ValueError):
    """A request the DeepAR container would reject (HTTP 400); the message says what is wrong."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _reject_constant(name: str) -> float:
    # json.loads accepts the non-standard literals NaN/Infinity; only NaN means "missing".
    if name == "NaN":
        return math.nan
    raise InvalidRequest(f"body: {name} is not allowed (use a finite number, \"NaN\" or null)")


def _loads(text: str, where: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def _number(value: Any, where: str) -> float:
    """One target/feature value: a finite number, or missing ("NaN"/null/NaN) → nan."""
    if value is None or value == "NaN" or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _not_a_number(value, where)
    if not math.isfinite(value):
        raise InvalidRequest(f"{where}: {value!r} is not finite")
    return float(value)


def _not_a_number(value: Any, where: str) -> float:
    raise InvalidRequest(f'{where}: {value!r} is not a number or "NaN"')


def _start(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidRequest(f'{where}: expected a timestamp string like "2021-01-01 00:00:00", got {value!r}')
    match = _START_RE.match(value.strip())
    if match is None:
        raise InvalidRequest(f'{where}: {value!r} is not a timestamp of the form "YYYY-MM-DD HH:MM:SS"')
    year, month, day, hour, minute, second = (int(g) if g is not None else 0 for g in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 59):
        raise InvalidRequest(f"{where}: {value!r} is not a valid date and time")
    try:  # calendar check: rejects Feb 30 etc.
        _dt.datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise InvalidRequest(f"{where}: {value!r} is not a valid date and time ({exc})") from None
    return f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}"


def validate_instance(instance: Any, where: str = "instances[0]", prediction_length: int | None = None) -> dict:
    """Validate one DeepAR time series object and return it normalised.

    Returns a dict with ``start`` ("YYYY-MM-DD HH:MM:SS"), ``target`` (list of floats, nan for
    missing) and, when present, ``cat`` (list of non-negative ints) and ``dynamic_feat``
    (list of float lists). When ``prediction_length`` is given, each dynamic feature must cover
    the target plus the forecast horizon, as DeepAR requires at inference.
    """
    if not isinstance(instance, dict):
        raise InvalidRequest(f"{where}: expected a JSON object, got {type(instance).__name__}")
    unknown = sorted(set(instance) - set(_INSTANCE_KEYS))
    if unknown:
        raise InvalidRequest(f"{where}: unknown field(s) {unknown}; allowed: {list(_INSTANCE_KEYS)}")
    if "start" not in instance:
        raise InvalidRequest(f'{where}.start: missing (e.g. "2021-01-01 00:00:00")')
    out: dict[str, Any] = {"start": _start(instance["start"], f"{where}.start")}

    if "target" not in instance:
        raise InvalidRequest(f"{where}.target: missing")
    target = instance["target"]
    if not isinstance(target, list):
        raise InvalidRequest(f"{where}.target: expected a list of numbers, got {type(target).__name__}")
    if not target:
        raise InvalidRequest(f"{where}.target: empty; give at least one observation")
    out["target"] = [_number(v, f"{where}.target[{i}]") for i, v in enumerate(target)]

    if "cat" in instance:
        cat = instance["cat"]
        if not isinstance(cat, list):
            raise InvalidRequest(f"{where}.cat: expected a list of non-negative integers, got {type(cat).__name__}")
        cats: list[int] = []
        for i, c in enumerate(cat):
            if isinstance(c, bool) or not isinstance(c, int) or c < 0:
                raise InvalidRequest(f"{where}.cat[{i}]: {c!r} is not a non-negative integer")
            cats.append(c)
        out["cat"] = cats

    if "dynamic_feat" in instance:
        feats = instance["dynamic_feat"]
        if not isinstance(feats, list) or not all(isinstance(f, list) for f in feats):
            raise InvalidRequest(f"{where}.dynamic_feat: expected a list of lists of numbers")
        expected = len(target) + prediction_length if prediction_length is not None else None
        rows: list[list[float]] = []
        for j, feat in enumerate(feats):
            fw = f"{where}.dynamic_feat[{j}]"
            if expected is not None and len(feat) != expected:
                raise InvalidRequest(
                    f"{fw}: has {len(feat)} values; expected len(target) + prediction_length = {expected}"
                )
            if expected is None and len(feat) < len(target):
                raise InvalidRequest(
                    f"{fw}: has {len(feat)} values, fewer than the {len(target)} target values; "
                    "dynamic features must cover the target and the forecast horizon"
                )
            if rows and len(feat) != len(rows[0]):
                raise InvalidRequest(f"{fw}: has {len(feat)} values but dynamic_feat[0] has {len(rows[0])}")
            values = [_number(v, f"{fw}[{i}]") for i, v in enumerate(feat)]
            # DeepAR does not accept missing values in dynamic features.
            for i, v in enumerate(values):
                if math.isnan(v):
                    raise InvalidRequest(f"{fw}[{i}]: missing values are not allowed in dynamic features")
            rows.append(values)
        out["dynamic_feat"] = rows
    return out


def _quantile(q: Any, where: str) -> str:
    if not isinstance(q, str):
        raise InvalidRequest(f'{where}: {q!r} must be a string such as "0.5"')
    try:
        value = float(q)
    except ValueError:
        raise InvalidRequest(f"{where}: {q!r} is not a number") from None
    if not 0.0 < value < 1.0:
        raise InvalidRequest(f"{where}: {q!r} is not strictly between 0 and 1")
    return q


def validate_configuration(configuration: Any, where: str = "configuration") -> dict:
    """Validate a DeepAR inference configuration and fill DeepAR's defaults for missing keys."""
    if configuration is None:
        configuration = {}
    if not isinstance(configuration, dict):
        raise InvalidRequest(f"{where}: expected a JSON object, got {type(configuration).__name__}")
    unknown = sorted(set(configuration) - set(DEFAULT_CONFIGURATION))
    if unknown:
        raise InvalidRequest(f"{where}: unknown field(s) {unknown}; allowed: {list(DEFAULT_CONFIGURATION)}")
    out = {
        "num_samples": DEFAULT_CONFIGURATION["num_samples"],
        "output_types": list(DEFAULT_CONFIGURATION["output_types"]),
        "quantiles": list(DEFAULT_CONFIGURATION["quantiles"]),
    }
    if "num_samples" in configuration:
        n = configuration["num_samples"]
        if isinstance(n, bool) or not isinstance(n, int):
            raise InvalidRequest(f"{where}.num_samples: {n!r} is not an integer")
        if not 1 <= n <= MAX_NUM_SAMPLES:
            raise InvalidRequest(f"{where}.num_samples: {n} is out of range 1..{MAX_NUM_SAMPLES}")
        out["num_samples"] = n
    if "output_types" in configuration:
        types = configuration["output_types"]
        if not isinstance(types, list) or not types:
            raise InvalidRequest(f"{where}.output_types: expected a non-empty list from {list(OUTPUT_TYPES)}")
        for i, t in enumerate(types):
            if t not in OUTPUT_TYPES:
                raise InvalidRequest(f"{where}.output_types[{i}]: unknown output type {t!r}; allowed: {list(OUTPUT_TYPES)}")
        if len(set(types)) != len(types):
            raise InvalidRequest(f"{where}.output_types: {types} repeats a type")
        out["output_types"] = list(types)
    if "quantiles" in configuration:
        qs = configuration["quantiles"]
        if not isinstance(qs, list):
            raise InvalidRequest(f'{where}.quantiles: expected a list of strings such as ["0.1", "0.9"]')
        out["quantiles"] = [_quantile(q, f"{where}.quantiles[{i}]") for i, q in enumerate(qs)]
        if len(set(out["quantiles"])) != len(out["quantiles"]):
            raise InvalidRequest(f"{where}.quantiles: {qs} repeats a quantile")
    if "quantiles" in out["output_types"] and not out["quantiles"]:
        raise InvalidRequest(f'{where}.quantiles: empty, but output_types asks for "quantiles"')
    return out


def parse_request(
    body: bytes, max_bytes: int = DEFAULT_MAX_BYTES, prediction_length: int | None = None
) -> tuple[list[dict], dict]:
    """Parse and validate a DeepAR ``application/json`` inference request.

    Returns ``(instances, configuration)``: normalised instances (see :func:`validate_instance`)
    and the configuration with DeepAR's defaults filled in. Raises :class:`InvalidRequest`
    naming the first problem found.
    """
    if not isinstance(body, bytes | bytearray | memoryview):
        raise InvalidRequest(f"body: expected bytes, got {type(body).__name__}")
    body = bytes(body)
    if len(body) > max_bytes:
        raise InvalidRequest(f"body: {len(body)} bytes exceeds the limit of {max_bytes} bytes; send fewer instances")
    if not body.strip():
        raise InvalidRequest('body: empty; expected {"instances": [...], "configuration": {...}}')
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"body: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    payload = _loads(text, "body")
    if not isinstance(payload, dict):
        raise InvalidRequest(f'body: expected a JSON object {{"instances": [...]}}, got {type(payload).__name__}')
    unknown = sorted(set(payload) - {"instances", "configuration"})
    if unknown:
        raise InvalidRequest(f"body: unknown field(s) {unknown}; allowed: ['instances', 'configuration']")
    if "instances" not in payload:
        raise InvalidRequest('body: missing "instances" (a list of time series objects)')
    raw = payload["instances"]
    if not isinstance(raw, list):
        raise InvalidRequest(f"instances: expected a list, got {type(raw).__name__}")
    if not raw:
        raise InvalidRequest("instances: empty; give at least one time series")
    instances = [validate_instance(obj, f"instances[{i}]", prediction_length) for i, obj in enumerate(raw)]
    configuration = validate_configuration(payload.get("configuration"))
    return instances, configuration


def parse_batch_line(line: bytes | str, line_number: int = 1, prediction_length: int | None = None) -> dict:
    """Parse one batch-transform input line (a single DeepAR instance)."""
    text = line.decode("utf-8") if isinstance(line, bytes | bytearray) else line
    where = f"line {line_number}"
    return validate_instance(_loads(text, where), where, prediction_length)


def inference_config_from_env(environ: Mapping[str, str] | None = None) -> dict:
    """The batch-transform inference configuration from ``DEEPAR_INFERENCE_CONFIG`` (defaults if unset)."""
    env = os.environ if environ is None else environ
    raw = env.get(INFERENCE_CONFIG_ENV, "").strip()
    if not raw:
        return validate_configuration({})
    return validate_configuration(_loads(raw, INFERENCE_CONFIG_ENV), INFERENCE_CONFIG_ENV)


def _jsonable(value: Any) -> Any:
    """numpy arrays/scalars → lists/floats; non-finite floats → "NaN" (DeepAR's missing marker)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else "NaN"
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def format_response(predictions: Sequence[Mapping[str, Any]] | Iterable[Mapping[str, Any]]) -> bytes:
    """Encode predictions as DeepAR's real-time response ``{"predictions": [...]}``."""
    return json.dumps({"predictions": [_jsonable(p) for p in predictions]}, allow_nan=False).encode("utf-8")


def format_batch_line(prediction: Mapping[str, Any]) -> bytes:
    """Encode one prediction as a batch-transform output line (newline-terminated)."""
    return json.dumps(_jsonable(prediction), allow_nan=False).encode("utf-8") + b"\n"

"""EventBridge event patterns: validation with clear errors, and matching.

Semantics follow Amazon EventBridge's content filtering:

- a pattern is a JSON object whose keys name event fields (``source``,
  ``detail-type``, ``detail`` ...); nested objects descend into the event;
- every leaf is a non-empty array of match values, OR-ed: a string, number,
  ``null`` or boolean matches equal values; an object is a content filter:
  ``{"prefix": s}``, ``{"suffix": s}``, ``{"equals-ignore-case": s}``,
  ``{"wildcard": s}``, ``{"anything-but": v | [v..] | {"prefix": s} | {"suffix": s}}``,
  ``{"numeric": [op, n (, op, n)]}``, ``{"exists": true|false}``, ``{"cidr": "10.0.0.0/24"}``;
- all keys of a pattern must match (AND); when the event's value is an array,
  the field matches if any element matches;
- ``"$or": [pattern, pattern, ...]`` at any level: the other keys of that level and at least one
  of the alternatives (each an object of the same kind) must match;
- a field absent from the event matches only ``{"exists": false}``.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import math
from typing import Any

NUMERIC_OPS = ("<", "<=", "=", ">", ">=")
OR = "$or"
FILTERS = ("prefix", "suffix", "equals-ignore-case", "wildcard", "anything-but", "numeric", "exists", "cidr")
_NUMERIC_LIMIT = 5.0e9  # EventBridge accepts numeric filter values within ±5.0e9


class InvalidEventPattern(ValueError):
    """The event pattern is not valid; the message says where and why."""


def parse_event_pattern(text: str | dict[str, Any]) -> dict[str, Any]:
    """Parse (if given as JSON text) and validate an event pattern; return it as a dict.

    Raises :class:`InvalidEventPattern` naming the offending field and the rule it breaks.
    """
    if isinstance(text, str):
        try:
            pattern = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidEventPattern(f"event pattern is not valid JSON: {exc.msg} at line {exc.lineno} "
                                      f"column {exc.colno}") from exc
    else:
        pattern = text
    if not isinstance(pattern, dict):
        raise InvalidEventPattern(f"event pattern must be a JSON object, got {type(pattern).__name__}")
    if not pattern:
        raise InvalidEventPattern("event pattern is empty: give at least one field to match, e.g. "
                                  '{"source": ["aircast.monitoring"]}')
    _validate_object(pattern, "")
    return pattern


def _validate_object(obj: dict[str, Any], path: str) -> None:
    for key, value in obj.items():
        here = f"{path}.{key}" if path else key
        if key == OR:
            if not isinstance(value, list) or len(value) < 2 or not all(isinstance(v, dict) and v for v in value):
                raise InvalidEventPattern(f'{here}: "$or" takes an array of at least two pattern objects, '
                                          f"got {json.dumps(value)}")
            for i, alternative in enumerate(value):
                _validate_object(alternative, f"{here}[{i}]")
            continue
        if isinstance(value, dict):
            if not value:
                raise InvalidEventPattern(f"{here}: an empty object matches nothing; give fields to match or remove it")
            _validate_object(value, here)
        elif isinstance(value, list):
            if not value:
                raise InvalidEventPattern(f"{here}: empty arrays are not allowed; list at least one value to match")
            for item in value:
                _validate_match_value(item, here)
        else:
            raise InvalidEventPattern(f"{here}: match values must be in an array, e.g. [{json.dumps(value)}], "
                                      f"got {json.dumps(value)}")


def _validate_match_value(item: Any, path: str) -> None:
    if item is None or isinstance(item, (str, bool)):
        return
    if isinstance(item, (int, float)):
        if isinstance(item, float) and not math.isfinite(item):
            raise InvalidEventPattern(f"{path}: numbers must be finite, got {item}")
        return
    if isinstance(item, list):
        raise InvalidEventPattern(f"{path}: nested arrays are not allowed in match values")
    if not isinstance(item, dict):
        raise InvalidEventPattern(f"{path}: unsupported match value {item!r}")
    if len(item) != 1:
        raise InvalidEventPattern(f"{path}: a content filter object has exactly one key (one of {', '.join(FILTERS)}), "
                                  f"got {sorted(item)}")
    (name, arg), = item.items()
    if name in ("prefix", "suffix"):
        if isinstance(arg, dict) and set(arg) == {"equals-ignore-case"} and isinstance(arg["equals-ignore-case"], str):
            return
        if not isinstance(arg, str):
            raise InvalidEventPattern(f'{path}: "{name}" must be a string, got {json.dumps(arg)}')
    elif name in ("equals-ignore-case", "wildcard"):
        if not isinstance(arg, str):
            raise InvalidEventPattern(f'{path}: "{name}" must be a string, got {json.dumps(arg)}')
        if name == "wildcard" and "**" in arg:
            raise InvalidEventPattern(f'{path}: "wildcard" must not contain consecutive "*" characters')
    elif name == "exists":
        if not isinstance(arg, bool):
            raise InvalidEventPattern(f'{path}: "exists" must be true or false, got {json.dumps(arg)}')
    elif name == "anything-but":
        _validate_anything_but(arg, path)
    elif name == "numeric":
        _validate_numeric(arg, path)
    elif name == "cidr":
        if not isinstance(arg, str):
            raise InvalidEventPattern(f'{path}: "cidr" must be a string like "10.0.0.0/24"')
        try:
            ipaddress.ip_network(arg, strict=False)
        except ValueError as exc:
            raise InvalidEventPattern(f'{path}: "cidr" {arg!r} is not a valid network: {exc}') from exc
    else:
        raise InvalidEventPattern(f"{path}: unknown content filter {name!r}; known: {', '.join(FILTERS)}")


def _validate_anything_but(arg: Any, path: str) -> None:
    if isinstance(arg, (str, int, float)) and not isinstance(arg, bool):
        return
    if isinstance(arg, list):
        if not arg:
            raise InvalidEventPattern(f'{path}: "anything-but" list must not be empty')
        kinds = {isinstance(v, str) for v in arg}
        if any(isinstance(v, bool) or not isinstance(v, (str, int, float)) for v in arg) or len(kinds) > 1:
            raise InvalidEventPattern(f'{path}: "anything-but" list must hold only strings or only numbers, '
                                      f"got {json.dumps(arg)}")
        return
    if isinstance(arg, dict) and len(arg) == 1:
        (name, value), = arg.items()
        if name in ("prefix", "suffix", "equals-ignore-case", "wildcard") and isinstance(value, str):
            return
        raise InvalidEventPattern(f'{path}: "anything-but" object supports only "prefix", "suffix", '
                                  f'"equals-ignore-case" or "wildcard" with a string, got {json.dumps(arg)}')
    raise InvalidEventPattern(f'{path}: "anything-but" takes a string, a number, a list of them, or '
                              f'{{"prefix": ...}}; got {json.dumps(arg)}')


def _validate_numeric(arg: Any, path: str) -> None:
    if not isinstance(arg, list) or len(arg) not in (2, 4):
        raise InvalidEventPattern(f'{path}: "numeric" must be an array of one or two [operator, number] pairs, '
                                  f'e.g. [">", 0, "<=", 5]; got {json.dumps(arg)}')
    ops = arg[0::2]
    nums = arg[1::2]
    for op, num in zip(ops, nums, strict=True):
        if op not in NUMERIC_OPS:
            raise InvalidEventPattern(f'{path}: "numeric" operator {json.dumps(op)} is not one of {", ".join(NUMERIC_OPS)}')
        if isinstance(num, bool) or not isinstance(num, (int, float)):
            raise InvalidEventPattern(f'{path}: "numeric" operand after {op!r} must be a number, got {json.dumps(num)}')
        if not -_NUMERIC_LIMIT <= num <= _NUMERIC_LIMIT:
            raise InvalidEventPattern(f'{path}: "numeric" operand {num} is outside the supported range ±5.0e9')
    if len(ops) == 2:
        if "=" in ops:
            raise InvalidEventPattern(f'{path}: "numeric" with "=" takes a single [operator, number] pair')
        lower = [o for o in ops if o in (">", ">=")]
        upper = [o for o in ops if o in ("<", "<=")]
        if len(lower) != 1 or len(upper) != 1:
            raise InvalidEventPattern(f'{path}: "numeric" range needs one lower bound (> or >=) and one upper bound '
                                      f'(< or <=), got {json.dumps(arg)}')
        lo = nums[ops.index(lower[0])]
        hi = nums[ops.index(upper[0])]
        if lo >= hi:
            raise InvalidEventPattern(f'{path}: "numeric" range is empty: lower bound {lo} is not below upper bound {hi}')


# ---------------------------------------------------------------------------
# matching

_MISSING = object()


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """True when ``event`` (an EventBridge event envelope) matches the validated ``pattern``."""
    return _match_object(pattern, event)


def _match_object(pattern: dict[str, Any], obj: Any) -> bool:
    for key, rule in pattern.items():
        if key == OR:
            if not any(_match_object(alternative, obj) for alternative in rule):
                return False
            continue
        value = obj.get(key, _MISSING) if isinstance(obj, dict) else _MISSING
        if isinstance(rule, dict):
            if isinstance(value, list):
                if not any(isinstance(v, dict) and _match_object(rule, v) for v in value):
                    return False
            elif not isinstance(value, dict) or not _match_object(rule, value):
                # a nested pattern whose subtree is absent can still be satisfied by exists:false leaves
                if not (value is _MISSING and _all_absent_ok(rule)):
                    return False
        elif not _match_leaf(rule, value):
            return False
    return True


def _all_absent_ok(rule: dict[str, Any]) -> bool:
    for key, sub in rule.items():
        if key == OR:
            if not any(_all_absent_ok(alternative) for alternative in sub):
                return False
            continue
        if isinstance(sub, dict):
            if not _all_absent_ok(sub):
                return False
        elif not any(isinstance(m, dict) and m.get("exists") is False for m in sub):
            return False
    return True


def _match_leaf(alternatives: list[Any], value: Any) -> bool:
    if value is _MISSING:
        return any(isinstance(m, dict) and m.get("exists") is False for m in alternatives)
    values = value if isinstance(value, list) else [value]
    for m in alternatives:
        if isinstance(m, dict):
            name, arg = next(iter(m.items()))
            if name == "exists":
                # exists applies to leaves: present and not an object
                if arg is (not isinstance(value, dict)):
                    return True
                continue
            if name == "anything-but":
                # anything-but must hold for every element of an array value
                if values and all(_anything_but(arg, v) for v in values):
                    return True
                continue
            if any(_filter(name, arg, v) for v in values):
                return True
        elif any(_equal(m, v) for v in values):
            return True
    return False


def _equal(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool) or expected is None or actual is None:
        return expected is actual if (expected is None or actual is None) else (
            isinstance(expected, bool) and isinstance(actual, bool) and expected == actual)
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return float(expected) == float(actual)
    return type(expected) is type(actual) and expected == actual


def _string_filter(name: str, arg: Any, v: Any) -> bool:
    if not isinstance(v, str):
        return False
    if isinstance(arg, dict):  # {"prefix": {"equals-ignore-case": "..."}}
        needle = arg["equals-ignore-case"].lower()
        v = v.lower()
    else:
        needle = arg
    if name == "prefix":
        return v.startswith(needle)
    if name == "suffix":
        return v.endswith(needle)
    if name == "equals-ignore-case":
        return v.lower() == needle.lower()
    if name == "wildcard":
        # only "*" is special in EventBridge wildcards; escape fnmatch's other metacharacters
        escaped = needle.replace("[", "[[]").replace("?", "[?]")
        return fnmatch.fnmatchcase(v, escaped)
    raise AssertionError(name)


def _filter(name: str, arg: Any, v: Any) -> bool:
    if name in ("prefix", "suffix", "equals-ignore-case", "wildcard"):
        return _string_filter(name, arg, v)
    if name == "numeric":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return False
        return all(_compare(op, float(v), float(n)) for op, n in zip(arg[0::2], arg[1::2], strict=True))
    if name == "cidr":
        if not isinstance(v, str):
            return False
        try:
            return ipaddress.ip_address(v) in ipaddress.ip_network(arg, strict=False)
        except ValueError:
            return False
    raise AssertionError(name)


def _compare(op: str, a: float, b: float) -> bool:
    return {"<": a < b, "<=": a <= b, "=": a == b, ">": a > b, ">=": a >= b}[op]


def _anything_but(arg: Any, v: Any) -> bool:
    if isinstance(arg, dict):
        name, needle = next(iter(arg.items()))
        return isinstance(v, str) and not _string_filter(name, needle, v)
    excluded = arg if isinstance(arg, list) else [arg]
    return not any(_equal(x, v) for x in excluded)

"""The expressions of a SageMaker pipeline definition and what they read: ``Get`` (parameters, execution
variables, step properties), ``Std:Join``, ``Std:JsonGet`` (property files or S3 objects) and the
conditions of a ``ConditionStep``.

:func:`resolve` evaluates an expression tree against a :class:`Context`; :class:`ExecutionContext` is the
context of one execution (its parameter values, execution variables, the properties and property files of
the steps that ran, and the condition outcomes), filled in by the executor as steps finish.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from infra.local.core.arns import pipeline_arn
from infra.local.core.clock import ISO_SECONDS_Z
from infra.local.sagemaker.pipeline_definition import PipelineDefinitionError

_PATH_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_:]*)|\[(?:'([^']*)'|\"([^\"]*)\"|(\d+))\]")


def parse_property_path(path: str) -> list[str | int]:
    """``ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri`` → tokens."""
    tokens: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if not m:
            raise PipelineDefinitionError(f"cannot parse property path {path!r} at {path[pos:]!r}")
        name, sq, dq, idx = m.groups()
        tokens.append(name if name is not None else sq if sq is not None else dq if dq is not None else int(idx))
        pos = m.end()
    return tokens


#: fields that key a list when a property path indexes it by name (Outputs['train'], ...)
_LIST_KEYS = ("OutputName", "InputName", "ChannelName", "MetricName", "Name", "OutputParameterName")


def walk_path(obj: Any, tokens: list[str | int], where: str) -> Any:
    """Follow property-path tokens through dicts and lists (lists indexed by position or by name)."""
    for tok in tokens:
        if isinstance(obj, Mapping) and isinstance(tok, str) and tok in obj:
            obj = obj[tok]
        elif isinstance(obj, list) and isinstance(tok, int) and -len(obj) <= tok < len(obj):
            obj = obj[tok]
        elif isinstance(obj, list) and isinstance(tok, str):
            match = [item for item in obj if isinstance(item, Mapping) and any(item.get(k) == tok for k in _LIST_KEYS)]
            if not match:
                raise PipelineDefinitionError(f"{where}: no element named {tok!r}")
            obj = match[0]
        else:
            raise PipelineDefinitionError(f"{where}: {tok!r} not found")
    return obj


def json_get(document: Any, path: str, where: str) -> Any:
    """``Std:JsonGet`` path lookup (``a.b[0].c`` / ``a['b']``) in a parsed JSON document."""
    return walk_path(document, parse_property_path(path), f"{where} (JsonGet path {path!r})")


def to_string(value: Any) -> str:
    """How ``Std:Join`` prints a value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return repr(value)
    return str(value)


class Context(Protocol):
    """What expressions read: parameters, execution variables, step properties, property files."""

    def parameter(self, name: str) -> Any: ...
    def execution_variable(self, name: str) -> Any: ...
    def step_properties(self, step: str) -> Mapping[str, Any]: ...
    def property_file(self, step: str, name: str) -> Any: ...
    def read_json_uri(self, uri: str) -> Any: ...


def resolve(expr: Any, ctx: Context) -> Any:
    """Evaluate an expression tree of the definition into plain values."""
    if isinstance(expr, list):
        return [resolve(v, ctx) for v in expr]
    if not isinstance(expr, dict):
        return expr
    if set(expr) == {"Get"}:
        return _get(expr["Get"], ctx)
    if set(expr) == {"Std:Join"}:
        spec = expr["Std:Join"]
        return str(spec.get("On", "")).join(to_string(resolve(v, ctx)) for v in spec.get("Values", []))
    if set(expr) == {"Std:JsonGet"}:
        spec = expr["Std:JsonGet"]
        if "PropertyFile" in spec:
            ref = spec["PropertyFile"]
            ref = ref.get("Get", "") if isinstance(ref, dict) else str(ref)
            m = re.fullmatch(r"Steps\.([^.]+)\.PropertyFiles\.(.+)", ref)
            if not m:
                raise PipelineDefinitionError(f"bad PropertyFile reference {ref!r}")
            doc = ctx.property_file(m.group(1), m.group(2))
            where = f"property file {m.group(2)} of step {m.group(1)}"
        else:
            uri = resolve(spec["S3Uri"], ctx)
            doc, where = ctx.read_json_uri(uri), uri
        return json_get(doc, spec["Path"], where)
    return {k: resolve(v, ctx) for k, v in expr.items()}


def _get(ref: str, ctx: Context) -> Any:
    head, _, rest = ref.partition(".")
    if head == "Parameters":
        return ctx.parameter(rest)
    if head == "Execution":
        return ctx.execution_variable(rest)
    if head == "Steps":
        m = re.match(r"([^.\[]+)(.*)", rest)
        step, path = m.group(1), m.group(2).lstrip(".")
        return walk_path(ctx.step_properties(step), parse_property_path(path), f"property {ref}")
    raise PipelineDefinitionError(f"unsupported Get reference {ref!r}")


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: a == b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanOrEqualTo": lambda a, b: a >= b,
    "LessThan": lambda a, b: a < b,
    "LessThanOrEqualTo": lambda a, b: a <= b,
}


def evaluate_condition(cond: Mapping[str, Any], ctx: Context) -> bool:
    """One condition of a ConditionStep (comparisons, In, Not, Or)."""
    kind = cond["Type"]
    if kind in _COMPARE:
        left, right = resolve(cond["LeftValue"], ctx), resolve(cond["RightValue"], ctx)
        if isinstance(left, (int, float)) != isinstance(right, (int, float)):
            left, right = _coerce_pair(left, right)
        return _COMPARE[kind](left, right)
    if kind == "In":
        return resolve(cond["QueryValue"], ctx) in [resolve(v, ctx) for v in cond["Values"]]
    if kind == "Not":
        return not evaluate_condition(cond["Condition"], ctx)
    if kind == "Or":
        return any(evaluate_condition(c, ctx) for c in cond["Conditions"])
    raise PipelineDefinitionError(f"unsupported condition type {kind!r}")


def _coerce_pair(left: Any, right: Any) -> tuple[Any, Any]:
    try:
        return float(left), float(right)
    except (TypeError, ValueError):
        return str(left), str(right)


class ExecutionContext:
    """What one execution's expressions read; the executor records each step's properties, property files
    and condition outcome here as the step finishes."""

    def __init__(self, parameters: Mapping[str, Any], *, pipeline_name: str, execution_arn: str, region: str,
                 account_id: str, local_path: Callable[[str], Path]) -> None:
        self.params = dict(parameters)
        self.pipeline_name = pipeline_name
        self.execution_arn = execution_arn
        self.execution_id = execution_arn.rsplit("/", 1)[-1]
        self.region, self.account_id = region, account_id
        self.start_time = time.time()
        self._local_path = local_path
        self.properties: dict[str, dict[str, Any]] = {}
        self.property_files: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, bool] = {}

    def parameter(self, name: str) -> Any:
        if name not in self.params:
            raise PipelineDefinitionError(f"unknown parameter {name!r}")
        return self.params[name]

    def execution_variable(self, name: str) -> Any:
        variables = {
            "PipelineExecutionId": self.execution_id,
            "PipelineExecutionArn": self.execution_arn,
            "PipelineName": self.pipeline_name,
            "PipelineArn": pipeline_arn(self.region, self.account_id, self.pipeline_name),
            "StartDateTime": time.strftime(ISO_SECONDS_Z, time.gmtime(self.start_time)),
            "CurrentDateTime": time.strftime(ISO_SECONDS_Z, time.gmtime()),
        }
        if name not in variables:
            raise PipelineDefinitionError(f"unknown execution variable {name!r}")
        return variables[name]

    def step_properties(self, step: str) -> Mapping[str, Any]:
        if step not in self.properties:
            raise PipelineDefinitionError(f"step {step} has not run, so its properties are not available")
        return self.properties[step]

    def property_file(self, step: str, name: str) -> Any:
        try:
            return self.property_files[step][name]
        except KeyError:
            raise PipelineDefinitionError(f"step {step} has no property file {name!r}") from None

    def read_json_uri(self, uri: str) -> Any:
        return json.loads(self._local_path(uri).read_text())

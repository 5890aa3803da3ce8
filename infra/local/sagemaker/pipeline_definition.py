"""A SageMaker pipeline definition (the JSON ``Pipeline.definition()`` returns) as the local executor reads it:
its parameters, resolved against an execution's overrides, and its steps as a dependency graph.

Dependencies are what SageMaker Pipelines derives: every ``Get: Steps.X...`` reference in a step's
arguments or properties, the step's ``DependsOn``, and, for a step inside a condition's ``IfSteps`` /
``ElseSteps``, the condition itself. A graph with a cycle, a reference to an unknown step or a step name
used twice is refused (:class:`PipelineDefinitionError`), as ``CreatePipeline`` refuses it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from typing import Any


class PipelineDefinitionError(ValueError):
    """The definition (or a parameter override) is not something SageMaker would accept."""


# ---- parameters ----------------------------------------------------------------------
_PARAM_TYPES: dict[str, Callable[[Any], Any]] = {
    "String": str,
    "Integer": int,
    "Float": float,
    "Boolean": lambda v: v if isinstance(v, bool) else str(v).lower() == "true",
}


def resolve_parameters(definition: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults overridden by ``overrides`` (values as strings or typed), converted to each parameter's type.

    Unknown names, values of the wrong type, values outside ``EnumValues`` and parameters
    with neither default nor value are errors that name the parameter.
    """
    specs = {p["Name"]: p for p in definition.get("Parameters", [])}
    unknown = sorted(set(overrides or {}) - set(specs))
    if unknown:
        raise PipelineDefinitionError(
            f"unknown pipeline parameter(s): {', '.join(unknown)}; accepted: {', '.join(sorted(specs))}")
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        raw = (overrides or {}).get(name, spec.get("DefaultValue"))
        if raw is None:
            raise PipelineDefinitionError(f"pipeline parameter {name} has no default; give it a value")
        kind = spec.get("Type", "String")
        try:
            value = _PARAM_TYPES[kind](raw)
            if kind == "Integer" and isinstance(raw, str) and not re.fullmatch(r"[+-]?\d+", raw.strip()):
                raise ValueError(raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise PipelineDefinitionError(f"pipeline parameter {name} must be a {kind}, got {raw!r}") from exc
        enum = spec.get("EnumValues")
        if enum and value not in enum:
            raise PipelineDefinitionError(f"pipeline parameter {name} must be one of {', '.join(map(str, enum))}, "
                                          f"got {value!r}")
        values[name] = value
    return values


# ---- the step graph -------------------------------------------------------------------
@dataclass
class StepNode:
    """One step of the definition with where it sits in the condition branches."""

    name: str
    type: str
    spec: dict[str, Any]
    #: (condition step, outcome) pairs that must all hold for this step to run
    guards: tuple[tuple[str, bool], ...] = ()
    depends_on: set[str] = field(default_factory=set)


def _references(obj: Any) -> set[str]:
    """Step names an expression tree reads from (``Get: Steps.X...``)."""
    found: set[str] = set()
    if isinstance(obj, dict):
        get = obj.get("Get")
        if isinstance(get, str) and get.startswith("Steps."):
            found.add(get.split(".", 2)[1].split("[", 1)[0])
        for value in obj.values():
            found |= _references(value)
    elif isinstance(obj, list):
        for value in obj:
            found |= _references(value)
    return found


def step_graph(definition: Mapping[str, Any]) -> dict[str, StepNode]:
    """Flatten the definition's steps (condition branches included, right after their condition) with their
    dependencies, in definition order."""
    nodes: dict[str, StepNode] = {}

    def add(steps: list[dict[str, Any]], guards: tuple[tuple[str, bool], ...]) -> None:
        for spec in steps:
            name = spec["Name"]
            if name in nodes:
                raise PipelineDefinitionError(f"step name {name!r} is used twice")
            args = spec.get("Arguments", {})
            node = StepNode(name, spec["Type"], spec, guards)
            if spec["Type"] == "Condition":
                node.depends_on |= _references(args.get("Conditions", []))
            else:
                node.depends_on |= _references(args)
                node.depends_on |= _references({k: v for k, v in spec.items() if k not in ("Arguments", "Name")})
            node.depends_on |= set(spec.get("DependsOn", []))
            nodes[name] = node
            if spec["Type"] == "Condition":
                add(args.get("IfSteps", []), guards + ((name, True),))
                add(args.get("ElseSteps", []), guards + ((name, False),))

    add(list(definition.get("Steps", [])), ())
    for node in nodes.values():
        node.depends_on.discard(node.name)
        missing = node.depends_on - set(nodes)
        if missing:
            raise PipelineDefinitionError(f"step {node.name} refers to unknown step(s): {', '.join(sorted(missing))}")
        # a branch step also waits for the condition that guards it
        node.depends_on |= {cond for cond, _ in node.guards}
    topological_order(nodes)
    return nodes


def topological_order(nodes: Mapping[str, StepNode]) -> TopologicalSorter[str]:
    """A prepared :class:`graphlib.TopologicalSorter` over the steps' dependencies; a cycle is refused."""
    sorter: TopologicalSorter[str] = TopologicalSorter({name: node.depends_on for name, node in nodes.items()})
    try:
        sorter.prepare()
    except CycleError as exc:
        raise PipelineDefinitionError(f"step dependencies form a cycle: {' → '.join(exc.args[1])}") from None
    return sorter

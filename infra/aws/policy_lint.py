"""Least-privilege checks over the CloudFormation templates' policy documents.

Two rules, applied to every policy document in a template (IAM roles, managed
policies, bucket policies, IoT policies, trust policies):

* an ``Allow`` statement never names a wildcard action (``*``, ``s3:*``, ``s3:Get*``)
  nor uses ``NotAction``; a ``Deny`` may be broad, since denying widely only narrows access;
* ``Resource: "*"`` in an ``Allow`` statement carries a comment, on its own line or the
  lines right above it inside the statement, saying why the service offers nothing narrower.

Comments are not part of the parsed template, so the second rule reads the template
text at the line cfn-lint's decoder recorded for the ``"*"`` node.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cfnlint.decode.decode import decode_str


@dataclass(frozen=True)
class PolicyViolation:
    """One statement that breaks a least-privilege rule."""

    path: str  # where in the template, e.g. Resources/GlueRole/Properties/Policies/0/...
    line: int  # 1-based line of the offending value (0 when unknown)
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.path}: {self.message}"


def _line_of(node: Any) -> int:
    mark = getattr(node, "start_mark", None)
    return mark.line + 1 if mark is not None else 0


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def iter_statements(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(path, statement)`` for every statement of every policy document under ``node``."""
    if isinstance(node, dict):
        statements = node.get("Statement")
        if isinstance(statements, (list, dict)) and "Version" in node:
            for i, stmt in enumerate(_as_list(statements)):
                if isinstance(stmt, dict):
                    yield f"{path}/Statement/{i}", stmt
            return
        for key, value in node.items():
            yield from iter_statements(value, f"{path}/{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from iter_statements(value, f"{path}/{i}")


def _has_comment(lines: list[str], line: int) -> bool:
    """True if template line ``line`` (1-based) has a trailing comment or comment lines right above it."""
    if line <= 0 or line > len(lines):
        return False
    if "#" in lines[line - 1].split("*", 1)[-1]:
        return True
    i = line - 2
    while i >= 0:
        stripped = lines[i].strip()
        if stripped.startswith("#"):
            return True
        # step over sibling keys of the same statement (Action above Resource, ...)
        if stripped.startswith("- ") or stripped == "" or stripped.endswith(":"):
            return False
        i -= 1
    return False


def check_template_text(text: str) -> list[PolicyViolation]:
    """Return the least-privilege violations of a CloudFormation template given as text."""
    template, errors = decode_str(text)
    if errors or template is None:
        raise ValueError(f"template does not parse: {errors}")
    lines = text.splitlines()
    violations: list[PolicyViolation] = []
    for path, stmt in iter_statements(template):
        if stmt.get("Effect") != "Allow":
            continue
        if "NotAction" in stmt:
            violations.append(PolicyViolation(path, _line_of(stmt), "Allow with NotAction grants everything else"))
        for action in _as_list(stmt.get("Action", [])):
            if isinstance(action, str) and "*" in action:
                violations.append(PolicyViolation(path, _line_of(action), f"wildcard action {action!r} in an Allow"))
        if "NotResource" in stmt:
            violations.append(PolicyViolation(path, _line_of(stmt), "Allow with NotResource grants everything else"))
        for resource in _as_list(stmt.get("Resource", [])):
            if isinstance(resource, str) and resource == "*" and not _has_comment(lines, _line_of(resource)):
                violations.append(PolicyViolation(
                    path, _line_of(resource),
                    'Resource "*" without a comment saying why nothing narrower exists'))
    return violations


def check_template(path: Path) -> list[PolicyViolation]:
    """Return the least-privilege violations of the template file at ``path``."""
    return check_template_text(Path(path).read_text())

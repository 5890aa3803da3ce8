"""Holding local job code to its runtime's contract.

* :func:`allowed_modules`: the standard library of the runtime's Python plus the manifest's modules.
* :func:`write_guard`: the folder that, first on ``PYTHONPATH``, makes the job's Python refuse any
  other import with ``ModuleNotFoundError`` (:mod:`infra.local.runtimes.guard`).
* :func:`job_code`: a script and the job's own modules it imports (transitively).
* :func:`python_violations`: what in that code needs a newer Python than the runtime's (vermin), since
  the local interpreter may be newer than the image's.
* :func:`version_mismatches`: modules whose local version is outside the image's range (an import
  cannot tell versions apart; these are said, not enforced).
"""

from __future__ import annotations

import ast
import json
import shutil
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from infra.local.runtimes.manifests import Runtime

#: top-level standard-library modules added after Python 3.9, by the version that added them
STDLIB_ADDED: dict[str, tuple[int, int]] = {"tomllib": (3, 11)}
#: top-level standard-library modules a Python release removed
STDLIB_REMOVED: dict[tuple[int, int], frozenset[str]] = {
    (3, 10): frozenset({"formatter", "parser", "symbol"}),
    (3, 11): frozenset({"binhex"}),
    (3, 12): frozenset({"asynchat", "asyncore", "distutils", "imp", "smtpd"}),
    (3, 13): frozenset({"aifc", "audioop", "cgi", "cgitb", "chunk", "crypt", "imghdr", "lib2to3", "mailcap",
                        "msilib", "nis", "nntplib", "ossaudiodev", "pipes", "sndhdr", "spwd", "sunau", "telnetlib",
                        "uu", "xdrlib"}),
}
GUARD_SOURCE = Path(__file__).with_name("guard.py")


def stdlib_modules(python: tuple[int, int]) -> frozenset[str]:
    """Top-level standard-library module names of ``python`` (as far as this interpreter knows them)."""
    names = set(sys.stdlib_module_names)
    names -= {name for name, since in STDLIB_ADDED.items() if python < since}
    for version, removed in STDLIB_REMOVED.items():
        names = names - removed if python >= version else names | removed
    return frozenset(names)


def allowed_modules(runtime: Runtime) -> frozenset[str]:
    """What job code may import in ``runtime`` besides its own modules."""
    if runtime.python is None:
        raise ValueError(f"{runtime.name} runs no job code (a built-in algorithm)")
    return stdlib_modules(runtime.python) | frozenset(runtime.modules)


def write_guard(folder: Path, runtime: Runtime, job_roots: Sequence[Path]) -> Path:
    """Write the import guard (as ``sitecustomize.py``) and its ``contract.json`` into ``folder``.

    Put the returned absolute folder first on the job's ``PYTHONPATH``. ``job_roots``: the folders
    holding the job's own code and inputs (imports made from files there are checked).
    """
    folder = folder.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(GUARD_SOURCE, folder / "sitecustomize.py")
    contract = {"image": runtime.name, "python": list(runtime.python or ()),
                "allowed": sorted(allowed_modules(runtime)), "job_roots": [str(Path(r).resolve()) for r in job_roots]}
    (folder / "contract.json").write_text(json.dumps(contract, indent=1))
    return folder


def _imported_names(tree: ast.AST, package: str) -> Iterable[str]:
    """Dotted names a module imports (relative imports resolved against ``package``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join([*parts, base] if base else parts)
            if base:
                yield base
                yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def _module_files(name: str, roots: Sequence[Path]) -> list[tuple[Path, str]]:
    """(file, package) for each prefix of ``name`` found as job code under the first root that has it."""
    parts = name.split(".")
    for root in roots:
        found = []
        for i in range(1, len(parts) + 1):
            base = root.joinpath(*parts[:i])
            if (base / "__init__.py").is_file():
                found.append((base / "__init__.py", ".".join(parts[:i])))
            elif base.with_suffix(".py").is_file():
                found.append((base.with_suffix(".py"), ".".join(parts[: i - 1])))
            elif not base.is_dir():  # neither module nor (namespace) package: stop here
                break
        if found:
            return found
    return []


def job_code(script: Path, roots: Sequence[Path]) -> list[Path]:
    """``script`` and every module of the job's own code it imports, transitively.

    A module counts as job code when it is found under the script's folder or one of ``roots``
    (the job's ``PYTHONPATH`` folders), searched in that order as Python would.
    """
    search = [script.parent, *roots]
    seen: dict[Path, None] = {}
    todo: list[tuple[Path, str]] = [(script, "")]
    while todo:
        path, package = todo.pop()
        path = path.resolve()
        if path in seen:
            continue
        seen[path] = None
        try:
            tree = ast.parse(path.read_bytes(), str(path))
        except SyntaxError:
            continue  # python_violations reports it
        for name in _imported_names(tree, package):
            todo.extend(_module_files(name, search))
    return list(seen)


def python_violations(files: Iterable[Path], python: tuple[int, int]) -> list[str]:
    """``path:line: <feature> requires Python X.Y`` for each use of a feature newer than ``python``."""
    import vermin
    from vermin.formats import ParsableFormat

    config = vermin.Config()
    config.set_format(ParsableFormat())
    problems = []
    for path in files:
        source = Path(path).read_text(encoding="utf-8")
        try:
            tree = ast.parse(source, str(path))
        except SyntaxError as exc:
            problems.append(f"{path}:{exc.lineno}: SyntaxError: {exc.msg}")
            continue
        found: list[tuple[int, str]] = []
        if python < (3, 10):
            # vermin's own union-types check also flags annotations that `from __future__ import
            # annotations` keeps as strings; this one looks only where Python evaluates `X | Y`
            found += [(line, f"union types as `X | Y` ({where}) requires Python 3.10")
                      for line, where in union_type_uses(tree)]
        visitor = vermin.visit(source, config, str(path))
        lines = visitor.output_text().splitlines() if isinstance(visitor, vermin.SourceVisitor) else []
        for line in lines:
            # path:line:column:py2:py3:feature (the path may hold ':' on no platform we run)
            fields = line.split(":", 5)
            if len(fields) != 6 or not fields[1].isdigit():
                continue
            _, lineno, _, _, py3, feature = fields
            try:
                need = tuple(int(x) for x in py3.lstrip("!~").split("."))
            except ValueError:
                continue
            if len(need) >= 2 and need[:2] > python:
                found.append((int(lineno), f"{feature} requires Python {need[0]}.{need[1]}"))
        problems += [f"{path}:{line}: {what}" for line, what in sorted(found)]
    return problems


_TYPE_NAMES = frozenset({"None", "int", "float", "complex", "str", "bytes", "bool", "list", "tuple", "dict", "set",
                         "frozenset", "type", "object"})


def _is_union(node: ast.AST) -> bool:
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr)


def _looks_like_type(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and node.value is None:
        return True
    if isinstance(node, ast.Name):
        return node.id in _TYPE_NAMES
    if isinstance(node, ast.Subscript):  # list[int], dict[str, int]
        return _looks_like_type(node.value)
    return _is_union(node) and (_looks_like_type(node.left) or _looks_like_type(node.right))


def union_type_uses(tree: ast.Module) -> list[tuple[int, str]]:
    """Where a module evaluates ``X | Y`` between types at run time (a TypeError before Python 3.10).

    That is: the class argument of ``isinstance``/``issubclass``; a ``|`` between builtin types or
    ``None`` anywhere (``Alias = int | None``); annotations Python evaluates (function signatures and
    module/class variables, unless ``from __future__ import annotations`` keeps them as strings).
    """
    postponed = any(isinstance(n, ast.ImportFrom) and n.module == "__future__"
                    and any(a.name == "annotations" for a in n.names) for n in tree.body)
    annotations: set[int] = set()
    found: dict[int, str] = {}

    def note_annotation(ann: ast.AST | None, evaluated: bool) -> None:
        if ann is None:
            return
        for sub in ast.walk(ann):
            annotations.add(id(sub))
            if evaluated and _is_union(sub):
                found.setdefault(sub.lineno, "an evaluated annotation")

    def scan(body: list[ast.stmt], top: bool) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = stmt.args
                for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
                    if arg is not None:
                        note_annotation(arg.annotation, not postponed)
                note_annotation(stmt.returns, not postponed)
                for inner in ast.walk(stmt):
                    if isinstance(inner, ast.AnnAssign) and inner is not stmt:
                        note_annotation(inner.annotation, False)  # local annotations are never evaluated
                scan(stmt.body, False)
            elif isinstance(stmt, ast.ClassDef):
                scan(stmt.body, True)
            elif isinstance(stmt, ast.AnnAssign):
                note_annotation(stmt.annotation, top and not postponed)

    scan(tree.body, True)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("isinstance", "issubclass") \
                and len(node.args) == 2 and any(_is_union(n) for n in ast.walk(node.args[1])):
            found.setdefault(node.lineno, f"in {node.func.id}()")
        elif _is_union(node) and id(node) not in annotations and _looks_like_type(node):
            found.setdefault(node.lineno, "between types")
    return sorted(found.items())


def version_mismatches(runtime: Runtime) -> list[str]:
    """One line per module whose version here is outside the range the image's sources allow."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    lines = []
    for spec in sorted(runtime.modules.values(), key=lambda m: m.distribution):
        if not spec.version:
            continue
        try:
            here = version(spec.distribution)
            allowed = SpecifierSet(spec.version)
        except (PackageNotFoundError, InvalidSpecifier):
            continue
        if not allowed.contains(here, prereleases=True):
            lines.append(f"{spec.distribution} {here} here, {spec.version} in {runtime.name}")
    return lines


def imported_modules(files: Iterable[Path]) -> dict[str, list[str]]:
    """Top-level module → ``path:line`` of every absolute import in ``files`` (module level or inside functions)."""
    found: dict[str, list[str]] = {}
    for path in files:
        tree = ast.parse(Path(path).read_bytes(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.partition(".")[0], []).append(f"{path}:{node.lineno}")
    return found


def missing_modules(runtime: Runtime, script: Path, roots: Sequence[Path]) -> dict[str, list[str]]:
    """Modules the job's code imports that ``runtime`` does not have (its own modules excluded)."""
    files = job_code(script, roots)
    allowed = allowed_modules(runtime)
    search = [script.parent, *roots]
    return {name: where for name, where in imported_modules(files).items()
            if name not in allowed and not _module_files(name, search)}

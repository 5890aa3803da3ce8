"""The manifests of the AWS images and runtimes job code runs in (``*.json`` beside this module).

One file per SageMaker image, Glue version or Lambda runtime: its Python, the top-level modules
importable there with the versions its sources allow, any install step, and the sources (Dockerfile,
requirements, AWS documentation) the facts were taken from. A SageMaker image is found by the
repository and tag of its URI, so the same manifest covers every region's registry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST_DIR = Path(__file__).resolve().parent
KINDS = ("script", "builtin-algorithm")
#: ``<account>.dkr.ecr.<region>.amazonaws.com[.cn]/<repository>[:<tag>][@sha256:<digest>]``
_IMAGE_URI = re.compile(
    r"(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
    r"(?P<repository>[a-z0-9][a-z0-9._/-]*)(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?"
    r"(?:@sha256:[0-9a-f]{64})?")


class UnknownImage(LookupError):
    """No manifest describes this image, so local mode does not know what it contains."""


@dataclass(frozen=True)
class ModuleSpec:
    """One importable top-level module of a runtime."""

    distribution: str
    #: PEP 440 specifier the sources allow ("" = the sources do not pin it)
    version: str
    why: str


@dataclass(frozen=True)
class Runtime:
    """What one image or runtime gives job code."""

    name: str
    service: str
    #: "script" (runs our code) or "builtin-algorithm" (runs AWS's own program; no project code)
    kind: str
    #: major, minor (None for a built-in algorithm)
    python: tuple[int, int] | None
    modules: Mapping[str, ModuleSpec]
    repository: str | None = None
    tags: tuple[str, ...] = ()
    #: keyword arguments of ``sagemaker.core.image_uris.retrieve`` that give this image's URI
    sdk_retrieve: Mapping[str, str] = field(default_factory=dict)
    algorithm: str | None = None
    entrypoint: tuple[str, ...] = ()
    install: Mapping[str, Any] | None = None
    sources: tuple[Mapping[str, str], ...] = ()
    path: Path | None = None

    def retrieve_kwargs(self, region: str) -> dict[str, str]:
        """Arguments for ``image_uris.retrieve(**kwargs)`` in ``region``."""
        return {**self.sdk_retrieve, "region": region}


def _python(value: Any, where: str) -> tuple[int, int] | None:
    if value is None:
        return None
    m = re.fullmatch(r"(\d+)\.(\d+)(?:\.\d+)?", str(value))
    if not m:
        raise ValueError(f"{where}: python must be like '3.11' or '3.11.9', got {value!r}")
    return int(m.group(1)), int(m.group(2))


def parse_manifest(data: Mapping[str, Any], path: Path | None = None) -> Runtime:
    """A :class:`Runtime` from a manifest's JSON; errors name the file and the field."""
    where = str(path or data.get("name", "manifest"))
    for key in ("name", "service", "kind", "modules", "sources"):
        if key not in data:
            raise ValueError(f"{where}: missing {key!r}")
    if data["kind"] not in KINDS:
        raise ValueError(f"{where}: kind must be one of {', '.join(KINDS)}, got {data['kind']!r}")
    python = _python(data.get("python"), where)
    if data["kind"] == "script" and python is None:
        raise ValueError(f"{where}: a script runtime must name its python")
    if not data["sources"]:
        raise ValueError(f"{where}: name the sources the facts come from")
    modules = {}
    for name, spec in data["modules"].items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"{where}: modules are top-level import names, got {name!r}")
        modules[name] = ModuleSpec(spec["distribution"], spec.get("version", ""), spec.get("why", ""))
    image = data.get("image") or {}
    return Runtime(
        name=data["name"], service=data["service"], kind=data["kind"], python=python, modules=modules,
        repository=image.get("repository"), tags=tuple(image.get("tags", ())),
        sdk_retrieve=dict(image.get("sdk_retrieve", {})), algorithm=data.get("algorithm"),
        entrypoint=tuple(data.get("entrypoint") or ()), install=data.get("install"),
        sources=tuple(data["sources"]), path=path,
    )


def load_runtimes(folder: Path = MANIFEST_DIR) -> dict[str, Runtime]:
    """Every manifest in ``folder`` by name."""
    runtimes: dict[str, Runtime] = {}
    for path in sorted(folder.glob("*.json")):
        runtime = parse_manifest(json.loads(path.read_text()), path)
        if runtime.name in runtimes:
            raise ValueError(f"{path}: runtime {runtime.name!r} is also described by {runtimes[runtime.name].path}")
        runtimes[runtime.name] = runtime
    return runtimes


def parse_image_uri(uri: str) -> tuple[str, str]:
    """``(repository, tag)`` of an ECR image URI (tag ``latest`` when none is given)."""
    m = _IMAGE_URI.fullmatch(uri.strip())
    if not m:
        raise ValueError(f"{uri!r} is not an ECR image URI (<account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag>)")
    return m.group("repository"), m.group("tag") or "latest"


def runtime_for_image(uri: str, runtimes: Mapping[str, Runtime] | None = None) -> Runtime:
    """The manifest of the image ``uri`` names; :class:`UnknownImage` when there is none."""
    try:
        repository, tag = parse_image_uri(uri)
    except ValueError as exc:
        raise UnknownImage(str(exc)) from None
    for runtime in (runtimes if runtimes is not None else load_runtimes()).values():
        if runtime.repository == repository and tag in runtime.tags:
            return runtime
    raise UnknownImage(f"no manifest in {MANIFEST_DIR} describes image {repository}:{tag}; local mode runs a job "
                       f"only in an image whose Python and modules it knows (add a manifest with its sources)")


def runtime_named(name: str, runtimes: Mapping[str, Runtime] | None = None) -> Runtime:
    """The manifest called ``name`` (e.g. ``glue-5.0``)."""
    known = runtimes if runtimes is not None else load_runtimes()
    if name not in known:
        raise UnknownImage(f"no runtime manifest named {name!r}; known: {', '.join(sorted(known))}")
    return known[name]

"""Where the pipeline's job scripts live in S3, and uploading them there.

The definition refers to scripts by S3 URI only (building it makes no AWS call);
``run-pipeline`` and the local runner upload the job packages before they upsert.
Each package is uploaded as a folder so a script can import its siblings: the
processing steps mount the packages at ``/opt/ml/processing/input/lib`` and put
that folder on ``PYTHONPATH``.

The code is versioned by its content: it goes under ``.../code/<version>/``, where the
version is a hash of every job file's path and bytes, and the definition names that
version. A push that changes the code uploads a new version and upserts a definition
naming it; an execution already running keeps reading the code it started with
(SageMaker runs an execution on the definition it started with). Unchanged code maps
to the same keys, so uploading it again changes nothing.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

#: the job-code packages the pipeline's processing steps run (folders at the repo root)
CODE_PACKAGES: tuple[str, ...] = ("processing", "evaluation")
REPO_ROOT = Path(__file__).resolve().parents[1]
#: hex digits of the content hash that names a code version
VERSION_LENGTH = 16
_VERSION_IN_URI = re.compile(rf"/code/([0-9a-f]{{{VERSION_LENGTH}}})(?![0-9A-Za-z])")


class CodeChanged(RuntimeError):
    """The job code on disk is not the version the definition names."""


def code_files(repo_root: Path = REPO_ROOT) -> list[tuple[Path, str]]:
    """(local file, key relative to the code prefix) for every ``.py`` file of the job packages."""
    files: list[tuple[Path, str]] = []
    for package in CODE_PACKAGES:
        root = repo_root / package
        if not root.is_dir():
            raise FileNotFoundError(f"job package {root} is missing; run from an aircast checkout")
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            files.append((path, path.relative_to(repo_root).as_posix()))
    return files


def version_of(contents: list[tuple[str, bytes]]) -> str:
    """The content hash of (key, bytes) pairs: a new version whenever a file, a name or the set of files changes."""
    digest = hashlib.sha256()
    for key, body in sorted(contents):
        digest.update(key.encode() + b"\0" + len(body).to_bytes(8, "big") + body)
    return digest.hexdigest()[:VERSION_LENGTH]


def code_version(repo_root: Path = REPO_ROOT) -> str:
    """The version of the job code in ``repo_root`` now."""
    return version_of([(rel, path.read_bytes()) for path, rel in code_files(repo_root)])


def code_prefix_uri(default_bucket: str, default_bucket_prefix: str, version: str | None = None) -> str:
    """``s3://bucket/prefix/code/<version>`` — the folder holding one version of the job packages
    (``version`` None: the code in this checkout)."""
    version = version or code_version()
    prefix = default_bucket_prefix.strip("/")
    base = f"s3://{default_bucket}/{prefix}/code" if prefix else f"s3://{default_bucket}/code"
    return f"{base}/{version}"


def script_uri(default_bucket: str, default_bucket_prefix: str, package: str, script: str,
               version: str | None = None) -> str:
    """S3 URI of one job script, e.g. ``.../code/<version>/processing/preprocess.py``."""
    return f"{code_prefix_uri(default_bucket, default_bucket_prefix, version)}/{package}/{script}"


def definition_code_version(definition: str) -> str:
    """The one code version a pipeline definition (JSON text) reads its scripts from."""
    versions = set(_VERSION_IN_URI.findall(definition))
    if len(versions) != 1:
        raise CodeChanged(f"the definition names {len(versions)} job-code versions ({', '.join(sorted(versions))}); "
                          "the code changed while it was built: build it again")
    return versions.pop()


def upload_code(s3_client: Any, default_bucket: str, default_bucket_prefix: str,
                repo_root: Path = REPO_ROOT, version: str | None = None) -> list[str]:
    """Upload the job packages under their content version with a boto3-shaped S3 client; return the S3 URIs.

    ``version``: the version the definition names; when the files on disk are another version
    (edited since the definition was built) :class:`CodeChanged` is raised and nothing is uploaded.
    """
    contents = [(rel, path.read_bytes()) for path, rel in code_files(repo_root)]
    current = version_of(contents)
    if version is not None and version != current:
        raise CodeChanged(f"the job code changed since the definition was built (it names version {version}, "
                          f"the files are version {current}); build the definition again")
    base = code_prefix_uri(default_bucket, default_bucket_prefix, current)
    key_base = base[len(f"s3://{default_bucket}/"):]
    uris = []
    for rel, body in contents:
        key = f"{key_base}/{rel}"
        s3_client.put_object(Bucket=default_bucket, Key=key, Body=body)
        uris.append(f"s3://{default_bucket}/{key}")
    return uris

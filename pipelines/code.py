"""Where the pipeline's job scripts live in S3, and uploading them there.

The definition refers to scripts by S3 URI only (building it makes no AWS call);
``run-pipeline`` and the local runner upload the job packages before they upsert.
Each package is uploaded as a folder so a script can import its siblings: the
processing steps mount the packages at ``/opt/ml/processing/input/lib`` and put
that folder on ``PYTHONPATH``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: the job-code packages the pipeline's processing steps run (folders at the repo root)
CODE_PACKAGES: tuple[str, ...] = ("processing", "evaluation")
REPO_ROOT = Path(__file__).resolve().parents[1]


def code_prefix_uri(default_bucket: str, default_bucket_prefix: str) -> str:
    """``s3://bucket/prefix/code`` — the folder holding the uploaded job packages."""
    prefix = default_bucket_prefix.strip("/")
    return f"s3://{default_bucket}/{prefix}/code" if prefix else f"s3://{default_bucket}/code"


def script_uri(default_bucket: str, default_bucket_prefix: str, package: str, script: str) -> str:
    """S3 URI of one job script, e.g. ``.../code/processing/preprocess.py``."""
    return f"{code_prefix_uri(default_bucket, default_bucket_prefix)}/{package}/{script}"


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


def upload_code(s3_client: Any, default_bucket: str, default_bucket_prefix: str,
                repo_root: Path = REPO_ROOT) -> list[str]:
    """Upload the job packages with a boto3-shaped S3 client; return the S3 URIs written."""
    base = code_prefix_uri(default_bucket, default_bucket_prefix)
    key_base = base[len(f"s3://{default_bucket}/"):]
    uris = []
    for path, rel in code_files(repo_root):
        key = f"{key_base}/{rel}"
        s3_client.upload_file(str(path), default_bucket, key)
        uris.append(f"s3://{default_bucket}/{key}")
    return uris

"""S3 stand-in: objects are files under ``<data_dir>/s3/<bucket>/<key>``.

``LocalS3Client`` offers the boto3 S3 methods aircast uses, with the same
request/response shapes, so code that takes an S3 client has one path.
Writes are atomic (temp file + rename), as S3 PUTs are all-or-nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


class NoSuchKey(KeyError):
    """Raised like botocore's ``NoSuchKey`` when an object does not exist."""


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``; raise ValueError on anything else."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI (expected s3://bucket/key): {uri!r}")
    rest = uri[len("s3://"):]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise ValueError(f"S3 URI has no bucket: {uri!r}")
    return bucket, key


def uri_to_path(uri: str, s3_root: Path) -> Path:
    """Local path of an S3 URI (a prefix maps to a folder)."""
    bucket, key = parse_s3_uri(uri)
    path = (s3_root / bucket / key).resolve()
    if not str(path).startswith(str((s3_root / bucket).resolve())):
        raise ValueError(f"S3 key escapes its bucket: {uri!r}")
    return path


def path_to_uri(path: Path, s3_root: Path) -> str:
    """S3 URI of a local path under the S3 root."""
    rel = Path(path).resolve().relative_to(Path(s3_root).resolve())
    parts = rel.parts
    return f"s3://{parts[0]}/" + "/".join(parts[1:])


def atomic_write_bytes(path: Path, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` so readers see either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class LocalS3Client:
    """The subset of ``boto3.client("s3")`` aircast uses, over local files."""

    def __init__(self, s3_root: Path) -> None:
        self.root = Path(s3_root)

    def _path(self, bucket: str, key: str) -> Path:
        return uri_to_path(f"s3://{bucket}/{key}", self.root)

    def create_bucket(self, Bucket: str, **_: Any) -> dict[str, Any]:
        (self.root / Bucket).mkdir(parents=True, exist_ok=True)
        return {"Location": f"/{Bucket}"}

    def put_object(self, Bucket: str, Key: str, Body: bytes | str | io.IOBase = b"", **_: Any) -> dict[str, Any]:
        data = Body.encode() if isinstance(Body, str) else Body if isinstance(Body, bytes) else Body.read()
        atomic_write_bytes(self._path(Bucket, Key), data)
        return {"ETag": f'"{hashlib.md5(data).hexdigest()}"'}

    def get_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        path = self._path(Bucket, Key)
        if not path.is_file():
            raise NoSuchKey(f"s3://{Bucket}/{Key} does not exist")
        data = path.read_bytes()
        return {"Body": io.BytesIO(data), "ContentLength": len(data), "LastModified": _mtime(path)}

    def head_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        path = self._path(Bucket, Key)
        if not path.is_file():
            raise NoSuchKey(f"s3://{Bucket}/{Key} does not exist")
        return {"ContentLength": path.stat().st_size, "LastModified": _mtime(path)}

    def delete_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        self._path(Bucket, Key).unlink(missing_ok=True)
        return {}

    def upload_file(self, Filename: str, Bucket: str, Key: str, **_: Any) -> None:
        dest = self._path(Bucket, Key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.upload")
        shutil.copyfile(Filename, tmp)
        os.replace(tmp, dest)

    def download_file(self, Bucket: str, Key: str, Filename: str, **_: Any) -> None:
        src = self._path(Bucket, Key)
        if not src.is_file():
            raise NoSuchKey(f"s3://{Bucket}/{Key} does not exist")
        Path(Filename).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, Filename)

    def list_objects_v2(self, Bucket: str, Prefix: str = "", ContinuationToken: str | None = None,
                        MaxKeys: int = 1000, **_: Any) -> dict[str, Any]:
        """Keys in lexicographic order, paginated like S3 (hidden temp files excluded)."""
        base = self.root / Bucket
        keys: list[str] = []
        if base.is_dir():
            for p in base.rglob("*"):
                if p.is_file() and not p.name.startswith("."):
                    key = p.relative_to(base).as_posix()
                    if key.startswith(Prefix):
                        keys.append(key)
        keys.sort()
        if ContinuationToken:
            keys = [k for k in keys if k > ContinuationToken]
        page, more = keys[:MaxKeys], len(keys) > MaxKeys
        out: dict[str, Any] = {
            "KeyCount": len(page),
            "IsTruncated": more,
            "Contents": [{"Key": k, "Size": (base / k).stat().st_size, "LastModified": _mtime(base / k)} for k in page],
        }
        if more:
            out["NextContinuationToken"] = page[-1]
        return out


def _mtime(path: Path) -> dt.datetime:
    return dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC)

"""S3 stand-in: objects are files under ``<data_dir>/s3/<bucket>/<key>``.

:class:`LocalS3Backend` answers the S3 operations aircast uses, behind a real boto3
``s3`` client (:func:`infra.local.core.local_client`), so requests are validated by
botocore and ``upload_file``/``download_file`` are boto3's own transfer manager.
Writes are atomic (temp file + rename), as S3 PUTs are all-or-nothing.

Rules S3 enforces that the stand-in enforces too, with S3's codes and wording:
bucket names (`Bucket naming rules`_: 3–63 characters of lowercase letters, digits,
dots and hyphens, starting and ending with a letter or digit, no ``..``, not an IP
address, no reserved prefix or suffix) → ``InvalidBucketName``; a bucket that does not
exist → ``NoSuchBucket``; a missing key → ``NoSuchKey`` (``404`` for HEAD, which has no
body); keys over 1,024 bytes → ``KeyTooLongError``. One local limit S3 does not have:
a key with a ``.`` or ``..`` path segment (legal in S3, where keys are flat) would leave
the bucket's folder here, so it is refused with ``InvalidArgument``.

.. _Bucket naming rules: https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import ipaddress
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from botocore.response import StreamingBody

from infra.local.core.clock import from_epoch
from infra.local.core.errors import ServiceError

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
MAX_KEY_BYTES = 1024


def bucket_name_problem(name: str) -> str | None:
    """Why ``name`` breaks S3's general purpose bucket naming rules, or None."""
    if not _BUCKET_RE.match(name):
        return ("bucket names are 3-63 characters of lowercase letters, numbers, dots (.) and hyphens (-), "
                "beginning and ending with a letter or number")
    if ".." in name:
        return "bucket names must not contain two adjacent periods"
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        pass
    else:
        return "bucket names must not be formatted as an IP address"
    if name.startswith(_RESERVED_PREFIXES) or name.endswith(_RESERVED_SUFFIXES):
        return "bucket names must not use a prefix or suffix S3 reserves"
    return None


def invalid_bucket(name: str) -> ServiceError:
    return ServiceError("InvalidBucketName", "The specified bucket is not valid.", 400, extra={"BucketName": name})


def key_problem(key: str) -> ServiceError | None:
    if len(key.encode()) > MAX_KEY_BYTES:
        return ServiceError("KeyTooLongError", "Your key is too long", 400)
    if any(part in (".", "..") for part in key.split("/")):
        return ServiceError("InvalidArgument", f"aircast's local S3 cannot store the key {key!r}: a '.' or '..' "
                            "path segment would leave the bucket's folder (S3 itself stores such keys literally)")
    return None


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """Split ``s3://bucket/key`` into ``(bucket, key)``; raise ValueError on anything else."""
    if not isinstance(uri, str) or not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI (expected s3://bucket/key): {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise ValueError(f"S3 URI has no bucket: {uri!r}")
    problem = bucket_name_problem(bucket)
    if problem:
        raise ValueError(f"S3 URI {uri!r} names an invalid bucket: {problem}")
    return bucket, key


def uri_to_path(uri: str, s3_root: Path) -> Path:
    """Local path of an S3 URI (a prefix maps to a folder), never outside its bucket's folder."""
    bucket, key = parse_s3_uri(uri)
    if any(part in (".", "..") for part in key.split("/")):
        raise ValueError(f"S3 key {key!r} has a '.' or '..' path segment, which aircast's local S3 cannot store")
    base = (Path(s3_root) / bucket).resolve()
    path = (base / key).resolve()
    if path != base and base not in path.parents:
        raise ValueError(f"S3 key escapes its bucket: {uri!r}")
    return path


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


def _etag(data: bytes) -> str:
    return f'"{hashlib.md5(data).hexdigest()}"'


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    return body.read()


class LocalS3Backend:
    """The S3 operations aircast uses, over local files (see module docstring)."""

    def __init__(self, s3_root: Path, region: str = "us-east-1") -> None:
        self.root = Path(s3_root)
        self.region = region

    # ---- buckets ------------------------------------------------------------
    def ensure_bucket(self, name: str) -> None:
        """Create a bucket the stack owns (the local counterpart of the CloudFormation bucket)."""
        if bucket_name_problem(name):
            raise invalid_bucket(name)
        (self.root / name).mkdir(parents=True, exist_ok=True)

    def _bucket(self, name: str) -> Path:
        if bucket_name_problem(name):
            raise invalid_bucket(name)
        path = self.root / name
        if not path.is_dir():
            raise ServiceError("NoSuchBucket", "The specified bucket does not exist", 404,
                               extra={"BucketName": name})
        return path

    def _object(self, bucket: str, key: str) -> Path:
        base = self._bucket(bucket)
        problem = key_problem(key)
        if problem:
            raise problem
        return uri_to_path(f"s3://{bucket}/{key}", self.root) if key else base / key

    def create_bucket(self, Bucket: str, CreateBucketConfiguration: dict[str, Any] | None = None,
                      **_: Any) -> dict[str, Any]:
        if bucket_name_problem(Bucket):
            raise invalid_bucket(Bucket)
        constraint = (CreateBucketConfiguration or {}).get("LocationConstraint")
        if self.region != "us-east-1" and constraint != self.region:
            raise ServiceError("IllegalLocationConstraintException",
                               "The unspecified location constraint is incompatible for the region specific "
                               "endpoint this request was sent to.", 400)
        if (self.root / Bucket).is_dir() and self.region != "us-east-1":
            raise ServiceError("BucketAlreadyOwnedByYou", "Your previous request to create the named bucket "
                               "succeeded and you already own it.", 409, extra={"BucketName": Bucket})
        (self.root / Bucket).mkdir(parents=True, exist_ok=True)
        return {"Location": f"/{Bucket}"}

    def head_bucket(self, Bucket: str, **_: Any) -> dict[str, Any]:
        try:
            self._bucket(Bucket)
        except ServiceError as exc:
            raise ServiceError(str(exc.status), "Not Found" if exc.status == 404 else "Bad Request",
                               exc.status) from None
        return {"BucketRegion": self.region}

    # ---- objects -------------------------------------------------------------
    def put_object(self, Bucket: str, Key: str, Body: Any = None, **_: Any) -> dict[str, Any]:
        path = self._object(Bucket, Key)
        data = _body_bytes(Body)
        atomic_write_bytes(path, data)
        return {"ETag": _etag(data)}

    def get_object(self, Bucket: str, Key: str, Range: str | None = None, **_: Any) -> dict[str, Any]:
        path = self._object(Bucket, Key)
        if not path.is_file():
            raise ServiceError("NoSuchKey", "The specified key does not exist.", 404, extra={"Key": Key})
        data = path.read_bytes()
        out: dict[str, Any] = {"LastModified": _mtime(path), "ETag": _etag(data), "AcceptRanges": "bytes"}
        if Range:
            start, end = _byte_range(Range, len(data))
            out["ContentRange"] = f"bytes {start}-{end}/{len(data)}"
            data = data[start:end + 1]
        out.update(Body=StreamingBody(io.BytesIO(data), len(data)), ContentLength=len(data))
        return out

    def head_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        try:
            path = self._object(Bucket, Key)
        except ServiceError as exc:  # HEAD responses carry no body, so no error code but the status
            raise ServiceError(str(exc.status), "Not Found" if exc.status == 404 else "Bad Request",
                               exc.status) from None
        if not path.is_file():
            raise ServiceError("404", "Not Found", 404)
        data = path.read_bytes()
        return {"ContentLength": len(data), "LastModified": _mtime(path), "ETag": _etag(data),
                "AcceptRanges": "bytes"}

    def delete_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        self._object(Bucket, Key).unlink(missing_ok=True)
        return {}

    def delete_objects(self, Bucket: str, Delete: dict[str, Any], **_: Any) -> dict[str, Any]:
        deleted = []
        for obj in Delete.get("Objects", []):
            self.delete_object(Bucket=Bucket, Key=obj["Key"])
            deleted.append({"Key": obj["Key"]})
        return {} if Delete.get("Quiet") else {"Deleted": deleted}

    def list_objects_v2(self, Bucket: str, Prefix: str = "", Delimiter: str | None = None,
                        ContinuationToken: str | None = None, StartAfter: str | None = None,
                        MaxKeys: int = 1000, **_: Any) -> dict[str, Any]:
        """Keys in lexicographic order, paginated like S3 (hidden temp files excluded)."""
        base = self._bucket(Bucket)
        keys = sorted(p.relative_to(base).as_posix() for p in base.rglob("*")
                      if p.is_file() and not p.name.startswith(".")
                      and p.relative_to(base).as_posix().startswith(Prefix))
        after = ContinuationToken or StartAfter
        if after:
            keys = [k for k in keys if k > after]
        entries: list[tuple[str, bool]] = []  # (key or common prefix, is_prefix)
        for key in keys:
            if Delimiter and Delimiter in key[len(Prefix):]:
                common = key[:len(Prefix) + key[len(Prefix):].index(Delimiter) + len(Delimiter)]
                if not entries or entries[-1] != (common, True):
                    entries.append((common, True))
            else:
                entries.append((key, False))
        page, more = entries[:MaxKeys], len(entries) > MaxKeys
        contents = [{"Key": k, "Size": (base / k).stat().st_size, "LastModified": _mtime(base / k),
                     "ETag": _etag((base / k).read_bytes()), "StorageClass": "STANDARD"}
                    for k, is_prefix in page if not is_prefix]
        out: dict[str, Any] = {"Name": Bucket, "Prefix": Prefix, "MaxKeys": MaxKeys, "KeyCount": len(page),
                               "IsTruncated": more}
        if contents:
            out["Contents"] = contents
        if Delimiter:
            out["Delimiter"] = Delimiter
            prefixes = [{"Prefix": k} for k, is_prefix in page if is_prefix]
            if prefixes:
                out["CommonPrefixes"] = prefixes
        if ContinuationToken:
            out["ContinuationToken"] = ContinuationToken
        if more:
            last = page[-1][0]
            out["NextContinuationToken"] = last if not page[-1][1] else last + "\uffff"
        return out

    # ---- multipart uploads (boto3's transfer manager uses them above 8 MiB) ---------
    def _upload_dir(self, bucket: str, upload_id: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{32}", upload_id or ""):
            raise ServiceError("NoSuchUpload", "The specified upload does not exist.", 404)
        return self.root / ".multipart" / bucket / upload_id

    def create_multipart_upload(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        self._object(Bucket, Key)
        upload_id = uuid.uuid4().hex
        self._upload_dir(Bucket, upload_id).mkdir(parents=True)
        return {"Bucket": Bucket, "Key": Key, "UploadId": upload_id}

    def upload_part(self, Bucket: str, Key: str, PartNumber: int, UploadId: str, Body: Any = None,
                    **_: Any) -> dict[str, Any]:
        folder = self._upload_dir(Bucket, UploadId)
        if not folder.is_dir():
            raise ServiceError("NoSuchUpload", "The specified upload does not exist.", 404)
        data = _body_bytes(Body)
        atomic_write_bytes(folder / f"{PartNumber:05d}", data, fsync=False)
        return {"ETag": _etag(data)}

    def complete_multipart_upload(self, Bucket: str, Key: str, UploadId: str,
                                  MultipartUpload: dict[str, Any] | None = None, **_: Any) -> dict[str, Any]:
        folder = self._upload_dir(Bucket, UploadId)
        if not folder.is_dir():
            raise ServiceError("NoSuchUpload", "The specified upload does not exist.", 404)
        parts = sorted((MultipartUpload or {}).get("Parts", []), key=lambda p: p["PartNumber"])
        chunks = []
        for part in parts:
            path = folder / f"{part['PartNumber']:05d}"
            if not path.is_file():
                raise ServiceError("InvalidPart", "One or more of the specified parts could not be found.", 400)
            chunks.append(path.read_bytes())
        data = b"".join(chunks)
        atomic_write_bytes(self._object(Bucket, Key), data)
        shutil.rmtree(folder, ignore_errors=True)
        digest = hashlib.md5(b"".join(hashlib.md5(c).digest() for c in chunks)).hexdigest()
        return {"Bucket": Bucket, "Key": Key, "ETag": f'"{digest}-{len(chunks)}"'}

    def abort_multipart_upload(self, Bucket: str, Key: str, UploadId: str, **_: Any) -> dict[str, Any]:
        shutil.rmtree(self._upload_dir(Bucket, UploadId), ignore_errors=True)
        return {}


def _byte_range(spec: str, size: int) -> tuple[int, int]:
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", spec.strip())
    if not match or (not match[1] and not match[2]):
        return 0, size - 1
    if not match[1]:  # suffix range: the last N bytes
        return max(size - int(match[2]), 0), size - 1
    start = int(match[1])
    end = min(int(match[2]), size - 1) if match[2] else size - 1
    if start >= size:
        raise ServiceError("InvalidRange", "The requested range is not satisfiable", 416)
    return start, end


def _mtime(path: Path) -> dt.datetime:
    return from_epoch(path.stat().st_mtime)

"""Durable, atomic object writes in Firehose's layout (local S3 = files).

An object is written to a temp file outside the bucket, fsynced, renamed into
place and its directory fsynced, so readers never see a partial object and a
crash after ``write_object`` returns cannot lose it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from infra.local.core.config import LocalConfig


def temp_dir(config: LocalConfig) -> Path:
    """Where objects are assembled before the rename (same filesystem, outside the bucket)."""
    return config.data_dir / "firehose" / "tmp"


def clean_temp(config: LocalConfig) -> int:
    """Remove temp files a killed writer left behind; return how many."""
    d = temp_dir(config)
    removed = 0
    if d.is_dir():
        for p in d.iterdir():
            p.unlink(missing_ok=True)
            removed += 1
    return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs_durable(path: Path) -> None:
    """mkdir -p, fsyncing each parent whose entry was created (so the new dirs survive a crash)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            pass
        _fsync_dir(d.parent)


def write_object(config: LocalConfig, bucket: str, key: str, chunks: list[bytes]) -> Path:
    """Write ``chunks`` as the object ``s3://bucket/key`` atomically and durably; return its path."""
    final = config.s3_root / bucket / key
    tmp_dir = temp_dir(config)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{uuid.uuid4().hex}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb", buffering=1024 * 1024) as fh:
            fh.writelines(chunks)
            fh.flush()
            os.fsync(fh.fileno())
        _makedirs_durable(final.parent)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)
    return final

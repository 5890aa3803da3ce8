"""SQLite stores of the local stand-ins (event bus, registry, pipelines, endpoints): one way to open them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: how long a writer waits for another process's transaction before giving up
BUSY_TIMEOUT_S = 30.0


@contextmanager
def open_store(path: Path, schema: str = "", *, immediate: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection with ``schema`` applied (if given), rows by name, WAL so readers never block the writer;
    the block is one transaction (committed on success, rolled back on an exception).

    ``immediate``: take the write lock at once (``BEGIN IMMEDIATE``), so a read-modify-write in the block
    cannot lose another process's update made between its read and its write.

    One short-lived connection per call: service threads, scheduler threads and CLI processes all
    write to the same file, and each waits up to :data:`BUSY_TIMEOUT_S` for the others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)
    db.row_factory = sqlite3.Row
    try:
        db.execute("PRAGMA journal_mode=WAL")
        if schema:
            db.executescript(schema)
        with db:
            if immediate:
                db.execute("BEGIN IMMEDIATE")
            yield db
    finally:
        db.close()

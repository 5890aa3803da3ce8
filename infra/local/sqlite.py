"""SQLite stores of the local stand-ins (registry, pipeline executions): one way to open them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def open_store(path: Path, schema: str) -> Iterator[sqlite3.Connection]:
    """A connection with ``schema`` applied, rows by name, WAL so readers never block the writer;
    the block is one transaction (committed on success, rolled back on an exception)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30)
    db.row_factory = sqlite3.Row
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(schema)
        with db:
            yield db
    finally:
        db.close()

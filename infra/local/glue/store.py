"""The local Glue's run history: job runs, crawls and trigger firings in one SQLite file.

``<data_dir>/glue/glue.sqlite`` is shared by the Glue service process and by clients that
run jobs in their own process while the service is down, so the history (and the rule
that a job runs at most ``MaxConcurrentRuns`` at a time) holds across processes and
restarts. Every change happens in an ``IMMEDIATE`` transaction; each run and crawl records
the process that owns it, and one whose process has died is closed as FAILED the next
time anyone looks (:meth:`GlueStore.sweep`), as Glue fails a run whose driver is lost.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from infra.local.proc import same_process, this_process

#: Glue's job run states that are not final
ACTIVE_RUN_STATES = ("WAITING", "STARTING", "RUNNING", "STOPPING")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS job_runs (
    id TEXT PRIMARY KEY,
    job TEXT NOT NULL,
    state TEXT NOT NULL,
    seq INTEGER NOT NULL,
    record TEXT NOT NULL,
    owner_pid INTEGER NOT NULL,
    owner_start TEXT,
    stop_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS job_runs_by_job ON job_runs (job, seq);
CREATE TABLE IF NOT EXISTS crawls (
    id TEXT PRIMARY KEY,
    crawler TEXT NOT NULL,
    state TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    error TEXT,
    tables_created INTEGER NOT NULL DEFAULT 0,
    tables_updated INTEGER NOT NULL DEFAULT 0,
    tables_deleted INTEGER NOT NULL DEFAULT 0,
    owner_pid INTEGER NOT NULL,
    owner_start TEXT
);
CREATE INDEX IF NOT EXISTS crawls_by_crawler ON crawls (crawler, started);
CREATE TABLE IF NOT EXISTS trigger_firings (
    name TEXT PRIMARY KEY,
    last_fired REAL NOT NULL
);
"""


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class GlueStore:
    """Job runs (Glue ``JobRun`` records), crawls and trigger firings, shared by every process."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / "glue.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30.0)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One short connection in an IMMEDIATE transaction (writers queue up, readers never block)."""
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """One short connection for reading (no write lock)."""
        conn = sqlite3.connect(self.path, timeout=30.0)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            yield conn
        finally:
            conn.close()

    # ---- job runs --------------------------------------------------------------------
    def insert_run(self, db: sqlite3.Connection, record: dict[str, Any]) -> None:
        pid, started = this_process()
        seq = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM job_runs").fetchone()[0]
        db.execute("INSERT INTO job_runs (id, job, state, seq, record, owner_pid, owner_start) VALUES (?,?,?,?,?,?,?)",
                   (record["Id"], record["JobName"], record["JobRunState"], seq, json.dumps(record), pid, started))

    def update_run(self, db: sqlite3.Connection, run_id: str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into the run's record (``None`` removes a member); returns the record."""
        row = db.execute("SELECT record FROM job_runs WHERE id = ?", (run_id,)).fetchone()
        record = json.loads(row["record"])
        for key, value in fields.items():
            if value is None:
                record.pop(key, None)
            else:
                record[key] = value
        record["LastModifiedOn"] = now_iso()
        db.execute("UPDATE job_runs SET record = ?, state = ? WHERE id = ?",
                   (json.dumps(record), record["JobRunState"], run_id))
        return record

    def run(self, db: sqlite3.Connection, job: str, run_id: str) -> dict[str, Any] | None:
        row = db.execute("SELECT record FROM job_runs WHERE id = ? AND job = ?", (run_id, job)).fetchone()
        return json.loads(row["record"]) if row else None

    def runs(self, db: sqlite3.Connection, job: str, offset: int, limit: int) -> list[dict[str, Any]]:
        """Runs of ``job``, newest first."""
        rows = db.execute("SELECT record FROM job_runs WHERE job = ? ORDER BY seq DESC LIMIT ? OFFSET ?",
                          (job, limit, offset)).fetchall()
        return [json.loads(r["record"]) for r in rows]

    def active_runs(self, db: sqlite3.Connection, job: str) -> list[dict[str, Any]]:
        """Runs of ``job`` that have not ended, oldest first."""
        marks = ",".join("?" * len(ACTIVE_RUN_STATES))
        rows = db.execute(f"SELECT record FROM job_runs WHERE job = ? AND state IN ({marks}) ORDER BY seq",
                          (job, *ACTIVE_RUN_STATES)).fetchall()
        return [json.loads(r["record"]) for r in rows]

    def request_stop(self, db: sqlite3.Connection, run_id: str) -> None:
        db.execute("UPDATE job_runs SET stop_requested = 1 WHERE id = ?", (run_id,))

    def stop_requested(self, run_id: str) -> bool:
        with self.read() as db:
            row = db.execute("SELECT stop_requested FROM job_runs WHERE id = ?", (run_id,)).fetchone()
        return bool(row and row["stop_requested"])

    # ---- crawls ----------------------------------------------------------------------
    def insert_crawl(self, db: sqlite3.Connection, crawl_id: str, crawler: str, started: float) -> None:
        pid, start = this_process()
        db.execute("INSERT INTO crawls (id, crawler, state, started, owner_pid, owner_start) VALUES (?,?,?,?,?,?)",
                   (crawl_id, crawler, "RUNNING", started, pid, start))

    def finish_crawl(self, crawl_id: str, state: str, ended: float, error: str | None = None,
                     created: int = 0, updated: int = 0, deleted: int = 0) -> None:
        with self.transaction() as db:
            db.execute("UPDATE crawls SET state = ?, ended = ?, error = ?, tables_created = ?, tables_updated = ?, "
                       "tables_deleted = ? WHERE id = ?", (state, ended, error, created, updated, deleted, crawl_id))

    def crawls(self, db: sqlite3.Connection, crawler: str, limit: int = 50) -> list[sqlite3.Row]:
        """Crawls of ``crawler``, newest first."""
        return db.execute("SELECT * FROM crawls WHERE crawler = ? ORDER BY started DESC LIMIT ?",
                          (crawler, limit)).fetchall()

    # ---- triggers --------------------------------------------------------------------
    def last_fired(self, db: sqlite3.Connection, name: str) -> float | None:
        row = db.execute("SELECT last_fired FROM trigger_firings WHERE name = ?", (name,)).fetchone()
        return row["last_fired"] if row else None

    def set_fired(self, db: sqlite3.Connection, name: str, when: float) -> None:
        db.execute("INSERT INTO trigger_firings (name, last_fired) VALUES (?, ?) "
                   "ON CONFLICT(name) DO UPDATE SET last_fired = excluded.last_fired", (name, when))

    # ---- owners ----------------------------------------------------------------------
    def sweep(self, db: sqlite3.Connection) -> list[str]:
        """Close runs and crawls whose owning process has died (FAILED); returns their ids."""
        closed = []
        marks = ",".join("?" * len(ACTIVE_RUN_STATES))
        for row in db.execute(f"SELECT id, owner_pid, owner_start FROM job_runs WHERE state IN ({marks})",
                              ACTIVE_RUN_STATES).fetchall():
            if not same_process(row["owner_pid"], row["owner_start"]):
                now = now_iso()
                self.update_run(db, row["id"], JobRunState="FAILED", CompletedOn=now, StateDetail=None,
                                ErrorMessage=f"The process that ran this job run (pid {row['owner_pid']}) ended "
                                             "before the run finished.")
                closed.append(row["id"])
        for row in db.execute("SELECT id, owner_pid, owner_start FROM crawls WHERE state IN ('RUNNING', 'STOPPING')"
                              ).fetchall():
            if not same_process(row["owner_pid"], row["owner_start"]):
                db.execute("UPDATE crawls SET state = 'FAILED', ended = started, error = ? WHERE id = ?",
                           (f"The process that ran this crawl (pid {row['owner_pid']}) ended before it finished.",
                            row["id"]))
                closed.append(row["id"])
        return closed

"""Local CloudWatch Logs: the log streams of the local jobs, read back with ``filter_log_events``.

The local pipeline executor writes what a SageMaker job or a Lambda function would log to
CloudWatch Logs into ``<data_dir>/logs/<group>/<stream>.jsonl`` (one event per line:
``{"timestamp": ms, "ingestionTime": ms, "message": ...}``), in the groups AWS uses:
``/aws/sagemaker/ProcessingJobs`` (stream ``<job>/algo-1-<epoch>``), ``/aws/sagemaker/TrainingJobs``,
``/aws/sagemaker/TransformJobs`` and ``/aws/lambda/<function>``. :class:`LocalLogsClient` offers
``filter_log_events`` and ``describe_log_streams`` in boto3's shapes, with CloudWatch Logs' error codes.
"""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.parse
from pathlib import Path
from typing import IO, Any

from infra.local.core.clock import now_ms
from infra.local.core.errors import ServiceError

MAX_EVENTS = 10000  # FilterLogEvents' largest page


def _invalid(message: str, operation: str) -> ServiceError:
    return ServiceError("InvalidParameterException", message, 400, operation)


def _component(name: str) -> str:
    # one path component per group / stream name, reversible ("/" and "[" are common in both)
    return urllib.parse.quote(name, safe="")


def group_dir(data_dir: Path, group: str) -> Path:
    return Path(data_dir) / "logs" / _component(group)


class LogStream:
    """Appends events to one log stream (thread-safe; each line written and flushed whole)."""

    def __init__(self, data_dir: Path, group: str, stream: str) -> None:
        self.group, self.stream = group, stream
        folder = group_dir(data_dir, group)
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / (_component(stream) + ".jsonl")
        self._lock = threading.Lock()

    def put(self, message: str, timestamp_ms: int | None = None) -> None:
        """One log event (a trailing newline is dropped, as the CloudWatch agent does)."""
        ts = now_ms() if timestamp_ms is None else timestamp_ms
        line = json.dumps({"timestamp": ts, "ingestionTime": now_ms(), "message": message.rstrip("\n")})
        with self._lock, open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def run_logged(argv: list[str], *, cwd: Path, env: dict[str, str], timeout_s: float, log_file: IO[bytes],
               stream: LogStream) -> int | None:
    """Run ``argv`` with its output (stdout and stderr) line by line in ``log_file`` and in ``stream``,
    each line stamped when it was written, as the CloudWatch agent of a job container does.

    Returns the exit code, or None when it ran past ``timeout_s`` (then it was killed)."""
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    expired = threading.Event()

    def kill() -> None:
        expired.set()
        proc.kill()

    timer = threading.Timer(timeout_s, kill)
    timer.start()
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            log_file.write(raw)
            log_file.flush()
            stream.put(raw.decode("utf-8", errors="replace"))
        proc.wait()
    finally:
        timer.cancel()
    return None if expired.is_set() else proc.returncode


class LocalLogsClient:
    """``boto3.client("logs")`` for the local backend: the reads the console needs."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)

    def _group(self, name: str | None, op: str) -> Path:
        if not name:
            raise _invalid("1 validation error detected: Value null at 'logGroupName' failed to satisfy constraint: "
                           "Member must not be null", op)
        folder = group_dir(self.data_dir, name)
        if not folder.is_dir():
            raise ServiceError.not_found("ResourceNotFoundException", "The specified log group does not exist.", op)
        return folder

    @staticmethod
    def _streams(folder: Path) -> dict[str, Path]:
        return {urllib.parse.unquote(p.name[:-len(".jsonl")]): p for p in sorted(folder.glob("*.jsonl"))}

    def describe_log_streams(self, *, logGroupName: str | None = None, logStreamNamePrefix: str | None = None,
                             orderBy: str = "LogStreamName", descending: bool = False,
                             limit: int = 50, nextToken: str | None = None, **_: Any) -> dict[str, Any]:
        """Streams of a group with their first / last event times."""
        op = "DescribeLogStreams"
        folder = self._group(logGroupName, op)
        if orderBy == "LastEventTime" and logStreamNamePrefix:
            raise _invalid("Cannot order by LastEventTime with a logStreamNamePrefix.", op)
        rows = []
        for name, path in self._streams(folder).items():
            if logStreamNamePrefix and not name.startswith(logStreamNamePrefix):
                continue
            events = _read(path)
            row: dict[str, Any] = {"logStreamName": name, "creationTime": int(path.stat().st_ctime * 1000),
                                   "storedBytes": 0}
            if events:
                row.update(firstEventTimestamp=events[0]["timestamp"], lastEventTimestamp=events[-1]["timestamp"],
                           lastIngestionTime=events[-1]["ingestionTime"])
            rows.append(row)
        key = (lambda r: r.get("lastEventTimestamp", 0)) if orderBy == "LastEventTime" else (lambda r: r["logStreamName"])
        rows.sort(key=key, reverse=descending)
        start = int(nextToken or 0)
        out: dict[str, Any] = {"logStreams": rows[start:start + limit]}
        if start + limit < len(rows):
            out["nextToken"] = str(start + limit)
        return out

    def filter_log_events(self, *, logGroupName: str | None = None, logStreamNames: list[str] | None = None,
                          logStreamNamePrefix: str | None = None, startTime: int | None = None,
                          endTime: int | None = None, filterPattern: str | None = None, nextToken: str | None = None,
                          limit: int | None = None, **_: Any) -> dict[str, Any]:
        """Events of a group in time order, from the named streams or those with a name prefix."""
        op = "FilterLogEvents"
        folder = self._group(logGroupName, op)
        if logStreamNames and logStreamNamePrefix:
            raise _invalid("logStreamNames and logStreamNamePrefix are mutually exclusive", op)
        if limit is not None and not 1 <= limit <= MAX_EVENTS:
            raise _invalid(f"limit must be between 1 and {MAX_EVENTS}", op)
        if filterPattern:
            raise _invalid("filterPattern is not supported by the local CloudWatch Logs stand-in", op)
        events = []
        searched = []
        for name, path in self._streams(folder).items():
            if (logStreamNames and name not in logStreamNames) or \
                    (logStreamNamePrefix and not name.startswith(logStreamNamePrefix)):
                continue
            searched.append({"logStreamName": name, "searchedCompletely": True})
            for n, event in enumerate(_read(path)):
                if (startTime is not None and event["timestamp"] < startTime) or \
                        (endTime is not None and event["timestamp"] > endTime):
                    continue
                events.append({"logStreamName": name, "timestamp": event["timestamp"], "message": event["message"],
                               "ingestionTime": event["ingestionTime"], "eventId": f"{name}:{n}"})
        events.sort(key=lambda e: (e["timestamp"], e["eventId"]))
        start = int(nextToken or 0)
        size = limit or MAX_EVENTS
        out: dict[str, Any] = {"events": events[start:start + size], "searchedLogStreams": searched}
        if start + size < len(events):
            out["nextToken"] = str(start + size)
        return out


def _read(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a crash mid-write
    return events

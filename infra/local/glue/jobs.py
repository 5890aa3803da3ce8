"""Glue job runs on local Spark, with Glue's run states and rules.

A run goes ``STARTING → RUNNING → SUCCEEDED | FAILED | STOPPED | TIMEOUT`` (``WAITING`` first
when it was queued, ``STOPPING`` while a stop lands), recorded in the shared history
(:mod:`infra.local.glue.store`). As on Glue:

- A job runs at most ``MaxConcurrentRuns`` at a time (across processes): another start is
  refused with ``ConcurrentRunsExceededException`` ("Concurrent runs exceeded for <job>"),
  unless job run queuing is enabled (the run's ``JobRunQueuingEnabled``, else the job's), in
  which case the run waits in ``WAITING`` and starts when its turn comes; one that waits more
  than 15 minutes turns ``FAILED`` (Glue retries for at most 15 minutes or 10 attempts).
- The run executes the job *script file* (the job's ``ScriptLocation``), loaded afresh for
  every run, by calling its ``main(argv)`` with the arguments Glue passes: ``--JOB_ID``,
  ``--JOB_RUN_ID``, ``--JOB_NAME``, the job's default arguments and the run's own. ``s3://``
  values are handed to the script as the local files that play S3. A non-zero return is
  "Command failed with exit code N"; an exception fails the run with its message.
- What the script prints goes to CloudWatch Logs ``/aws-glue/jobs/output``, stream
  ``<run id>-driver`` (Glue 5.0's layout); a failure's traceback to ``/aws-glue/jobs/error``.
- ``BatchStopJobRun`` stops a waiting run at once and cancels a running one's Spark jobs and
  refuses its script's next call into Spark, so driver-side work stops too (``STOPPING`` →
  ``STOPPED``); a run past its ``Timeout`` (minutes) ends ``TIMEOUT`` the same way.

Runs execute in this process's Spark session (``session``): a long-lived service keeps it
warm between runs; a run that fails leaves it usable (its cached data is dropped, and a
session that no longer answers is replaced).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import io
import secrets
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from infra.local.core.errors import ServiceError
from infra.local.glue.config import GlueConfig, JobDefinition
from infra.local.glue.session import WARMUP_JOB_GROUP, stops_at_next_jvm_call
from infra.local.glue.store import GlueStore, now_iso
from infra.local.logs import LogStream
from infra.local.s3 import uri_to_path

TERMINAL_STATES = ("STOPPED", "SUCCEEDED", "FAILED", "TIMEOUT", "ERROR", "EXPIRED")
OUTPUT_LOG_GROUP = "/aws-glue/jobs/output"
ERROR_LOG_GROUP = "/aws-glue/jobs/error"
POLL_S = 0.2
#: A run that cannot start within this many seconds of WAITING fails, as on Glue ("Job run statuses":
#: a standard Spark job that cannot acquire resources "will retry for a maximum of 15 minutes or 10
#: attempts, whichever comes first", then turns FAILED).
WAITING_LIMIT_S = 15 * 60


class Session(Protocol):
    """Where runs get their Spark session."""

    def get(self) -> Any:
        """The session, once it is ready (may block while it starts)."""

    def recover(self) -> None:
        """After a failed run: make sure the next run gets a working session."""


def driver_stream(run_id: str) -> str:
    """The log stream of a run's driver (Glue 5.0: ``<job run id>-driver``)."""
    return f"{run_id}-driver"


class JobRunner:
    """Starts, tracks and stops the runs of the configured jobs in this process."""

    def __init__(self, config: GlueConfig, store: GlueStore, session: Session,
                 on_finished: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.config = config
        self.store = store
        self.session = session
        self.on_finished = on_finished
        self._threads: dict[str, threading.Thread] = {}

    # ---- the API -----------------------------------------------------------------------
    def start(self, job: JobDefinition, arguments: dict[str, str] | None = None, queuing: bool | None = None,
              timeout: int | None = None, trigger_name: str | None = None, previous_run_id: str | None = None,
              worker_type: str | None = None, number_of_workers: int | None = None,
              execution_class: str | None = None) -> str:
        """Record a new run and start it on a thread; refuse it when the job is at its concurrency limit."""
        run_id = "jr_" + secrets.token_hex(32)
        # only a job that does not retry may wait in WAITING (Glue, "Job run statuses"); one with MaxRetries
        # is refused at its limit as without queuing
        queue_ok = (job.job_run_queuing_enabled if queuing is None else queuing) and job.max_retries == 0
        workers = number_of_workers or job.number_of_workers
        now = now_iso()
        record: dict[str, Any] = {
            "Id": run_id, "Attempt": 0, "JobName": job.name, "JobMode": "SCRIPT", "JobRunQueuingEnabled": queue_ok,
            "StartedOn": now, "LastModifiedOn": now, "JobRunState": "STARTING", "Arguments": dict(arguments or {}),
            "PredecessorRuns": [], "AllocatedCapacity": workers, "MaxCapacity": float(workers),
            "ExecutionTime": 0, "Timeout": timeout or job.timeout_minutes, "WorkerType": worker_type or job.worker_type,
            "NumberOfWorkers": workers, "LogGroupName": "/aws-glue/jobs", "GlueVersion": job.glue_version,
            "ExecutionClass": execution_class or "STANDARD",
        }
        if trigger_name:
            record["TriggerName"] = trigger_name
        if previous_run_id:
            record["PreviousRunId"] = previous_run_id
        with self.store.transaction() as db:
            self.store.sweep(db)
            active = self.store.active_runs(db, job.name)
            if len(active) >= job.max_concurrent_runs:
                if not queue_ok:
                    raise ServiceError("ConcurrentRunsExceededException", f"Concurrent runs exceeded for {job.name}",
                                       400, "StartJobRun")
                record.update(JobRunState="WAITING", StateDetail=(
                    f"Waiting for a run of {job.name} to finish (MaxConcurrentRuns {job.max_concurrent_runs}); "
                    "job run queuing is enabled"))
            self.store.insert_run(db, record)
        thread = threading.Thread(target=self._run, args=(job, run_id), name=f"glue-run-{run_id[:11]}", daemon=True)
        self._threads[run_id] = thread
        thread.start()
        return run_id

    def record_refused(self, job: JobDefinition, trigger_name: str, arguments: dict[str, str] | None = None) -> str:
        """A trigger's run that the concurrency limit refused: recorded FAILED, as Glue records it."""
        run_id = "jr_" + secrets.token_hex(32)
        now = now_iso()
        with self.store.transaction() as db:
            self.store.insert_run(db, {
                "Id": run_id, "Attempt": 0, "JobName": job.name, "JobMode": "SCRIPT", "TriggerName": trigger_name,
                "StartedOn": now, "LastModifiedOn": now, "CompletedOn": now, "JobRunState": "FAILED",
                "Arguments": dict(arguments or {}), "PredecessorRuns": [], "ExecutionTime": 0,
                "Timeout": job.timeout_minutes, "WorkerType": job.worker_type, "NumberOfWorkers": job.number_of_workers,
                "GlueVersion": job.glue_version, "LogGroupName": "/aws-glue/jobs", "ExecutionClass": "STANDARD",
                "ErrorMessage": f"Max concurrent runs exceeded: {job.name} allows {job.max_concurrent_runs} "
                                "run(s) at a time and one was running when the trigger fired",
            })
        return run_id

    def stop(self, job_name: str, run_ids: list[str]) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
        """``BatchStopJobRun``: (successful submissions, errors)."""
        ok, errors = [], []
        with self.store.transaction() as db:
            self.store.sweep(db)
            for run_id in run_ids:
                run = self.store.run(db, job_name, run_id)
                if run is None:
                    errors.append(_stop_error(job_name, run_id, "EntityNotFoundException",
                                              f"Job run {run_id} of job {job_name} not found."))
                    continue
                state = run["JobRunState"]
                if state in TERMINAL_STATES:
                    errors.append(_stop_error(job_name, run_id, "InvalidInputException",
                                              f"Job run {run_id} is already in state {state}."))
                    continue
                self.store.request_stop(db, run_id)
                if state == "WAITING":  # never started: stopped at once
                    self.store.update_run(db, run_id, JobRunState="STOPPED", CompletedOn=now_iso(), StateDetail=None)
                elif state in ("STARTING", "RUNNING"):
                    self.store.update_run(db, run_id, JobRunState="STOPPING")
                ok.append({"JobName": job_name, "JobRunId": run_id})
        return ok, errors

    def running_here(self) -> list[str]:
        """Ids of the runs this process executes (or waits to execute) now."""
        return list(self._threads)

    def wait(self, run_id: str, timeout_s: float | None = None) -> None:
        """Local only: block until this process's thread for ``run_id`` ends."""
        thread = self._threads.get(run_id)
        if thread is not None:
            thread.join(timeout_s)

    # ---- one run ----------------------------------------------------------------------
    def _run(self, job: JobDefinition, run_id: str) -> None:
        try:
            if not self._await_turn(job, run_id):
                return
            spark = self.session.get()  # STARTING while the session starts or warms up
            with self.store.transaction() as db:
                run = self.store.run(db, job.name, run_id)
                assert run is not None
                if run["JobRunState"] != "STARTING":  # stopped while starting
                    if run["JobRunState"] == "STOPPING":
                        self._finish(db, run_id, "STOPPED", 0.0)
                    return
                run = self.store.update_run(db, run_id, JobRunState="RUNNING")
            self._execute(spark, job, run)
        except Exception as exc:  # noqa: BLE001 - the stand-in's own failure still ends the run
            with self.store.transaction() as db:
                self._finish(db, run_id, "FAILED", 0.0, f"{type(exc).__name__}: {_first_line(exc)}")
            LogStream(self.config.data_dir, ERROR_LOG_GROUP, driver_stream(run_id)).put(traceback.format_exc())
        finally:
            self._threads.pop(run_id, None)

    def _await_turn(self, job: JobDefinition, run_id: str) -> bool:
        """Wait while the run is WAITING; claim it (→ STARTING) when it is first in line. False: it was stopped,
        or it waited past ``WAITING_LIMIT_S`` and failed."""
        while True:
            failed = None
            with self.store.transaction() as db:
                self.store.sweep(db)
                run = self.store.run(db, job.name, run_id)
                if run is None or run["JobRunState"] in TERMINAL_STATES:
                    return False
                if run["JobRunState"] != "WAITING":
                    return True
                active = self.store.active_runs(db, job.name)
                busy = sum(1 for r in active if r["JobRunState"] != "WAITING")
                waiting = [r["Id"] for r in active if r["JobRunState"] == "WAITING"]
                if busy < job.max_concurrent_runs and run_id in waiting[: job.max_concurrent_runs - busy]:
                    self.store.update_run(db, run_id, JobRunState="STARTING", StateDetail=None)
                    return True
                waited = dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(run["StartedOn"])
                if waited.total_seconds() > WAITING_LIMIT_S:
                    failed = self._finish(db, run_id, "FAILED", 0.0, (
                        f"Concurrent runs exceeded for {job.name}: the run could not acquire resources within "
                        f"{WAITING_LIMIT_S / 60:g} minutes of WAITING (MaxConcurrentRuns {job.max_concurrent_runs})"))
            if failed is not None:
                if self.on_finished is not None:
                    self.on_finished(failed)
                return False
            time.sleep(POLL_S)

    def _execute(self, spark: Any, job: JobDefinition, run: dict[str, Any]) -> None:
        run_id = run["Id"]
        arguments = {**job.default_arguments, **run["Arguments"]}
        argv = [str(script_path(job.script_location)), "--JOB_ID", f"j_{job.name}", "--JOB_RUN_ID", run_id,
                "--JOB_NAME", job.name]
        for key, value in arguments.items():
            argv += [key, local_value(value, self.config)]
        output = LogStream(self.config.data_dir, OUTPUT_LOG_GROUP, driver_stream(run_id))
        deadline = time.monotonic() + 60 * int(run["Timeout"])
        watch = _Watch(self.store, spark, run_id, deadline)
        started = time.monotonic()
        error: BaseException | None = None
        code = 0
        watch.start()
        try:
            with stops_at_next_jvm_call(spark, watch.halt, "the job run is stopping (BatchStopJobRun or its "
                                        "Timeout): its Spark jobs are cancelled and its calls into Spark refused"):
                code = run_script(spark, job.script_location, argv, run_id, output.put)
        except BaseException as exc:  # noqa: BLE001 - a failing script is a FAILED run, not our crash
            error = exc
        finally:
            watch.stop()
        seconds = time.monotonic() - started
        if error is not None:
            LogStream(self.config.data_dir, ERROR_LOG_GROUP, driver_stream(run_id)).put(
                "".join(traceback.format_exception(error)))
        if watch.stopped:
            state, message = "STOPPED", None
        elif watch.timed_out:
            state, message = "TIMEOUT", f"Job run timed out after {run['Timeout']} minutes"
        elif error is not None:
            state, message = "FAILED", f"{type(error).__name__}: {_first_line(error)}"
        elif code != 0:
            state, message = "FAILED", f"Command failed with exit code {code}"
        else:
            state, message = "SUCCEEDED", None
        if state != "SUCCEEDED":
            self._clean_up(spark)
        with self.store.transaction() as db:
            record = self._finish(db, run_id, state, seconds, message)
        if self.on_finished is not None:
            self.on_finished(record)

    def _finish(self, db: Any, run_id: str, state: str, seconds: float, message: str | None = None) -> dict[str, Any]:
        return self.store.update_run(db, run_id, JobRunState=state, CompletedOn=now_iso(), StateDetail=None,
                                     ExecutionTime=int(round(seconds)), ErrorMessage=message)

    def _clean_up(self, spark: Any) -> None:
        """After a failed or stopped run: drop what it cached; replace a session that no longer answers."""
        try:
            spark.catalog.clearCache()
        except Exception:  # noqa: BLE001 - recover() below finds out whether the session still works
            pass
        self.session.recover()


class _Watch:
    """Watches a running run: a stop request or its timeout cancels its Spark jobs until it ends, and
    refuses the script's next call into Spark (``halt``)."""

    def __init__(self, store: GlueStore, spark: Any, run_id: str, deadline: float) -> None:
        self.store, self.spark, self.run_id, self.deadline = store, spark, run_id, deadline
        self.stopped = self.timed_out = False
        self.halt = threading.Event()  # set on a stop or the timeout: the script's next call into Spark is refused
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"glue-watch-{run_id[:11]}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._done.wait(POLL_S):
            if not (self.stopped or self.timed_out):
                if self.store.stop_requested(self.run_id):
                    self.stopped = True
                elif time.monotonic() > self.deadline:
                    self.timed_out = True
            if self.stopped or self.timed_out:
                self.halt.set()
                # again and again: a job the script starts after a cancel must not run either
                try:
                    self.spark.sparkContext.cancelJobGroup(self.run_id)
                except Exception:  # noqa: BLE001 - the run's own thread reports what broke
                    pass


def _stop_error(job: str, run_id: str, code: str, message: str) -> dict[str, Any]:
    return {"JobName": job, "JobRunId": run_id, "ErrorDetail": {"ErrorCode": code, "ErrorMessage": message}}


def _first_line(exc: BaseException) -> str:
    java = getattr(exc, "java_exception", None)
    text = str(java.toString()) if java is not None else str(exc)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (lines[0] if lines else repr(exc))[:2000]


# ---- the script ------------------------------------------------------------------------

def script_path(location: str) -> Path:
    """The job script's file (``ScriptLocation``: a path or a file:// URI)."""
    return Path(location[len("file://"):] if location.startswith("file://") else location)


def local_value(value: str, config: GlueConfig) -> str:
    """An argument as the local script sees it: ``s3://bucket/key`` → the file URI that plays it."""
    if not value.startswith("s3://"):
        return value
    path = uri_to_path(value, config.s3_root)
    return path.as_uri() + ("/" if value.endswith("/") else "")


def run_script(spark: Any, location: str, argv: list[str], group: str, out: Callable[[str], None]) -> int:
    """Load the job script from its file and call its ``main(argv)`` in this thread, its Spark jobs in
    job group ``group``; what it prints goes to ``out``. Returns its exit code."""
    path = script_path(location)
    spec = importlib.util.spec_from_file_location("glue_job_script", path)
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"job script {path} cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    sys.modules["glue_job_script"] = module  # dataclasses look their module up while the script loads
    spec.loader.exec_module(module)
    context = spark.sparkContext
    with routed_output(out):
        context.setJobGroup(group, f"Glue job run {group}", True)
        try:
            result = module.main(argv)
        except SystemExit as exc:
            result = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            context.setLocalProperty("spark.jobGroup.id", None)
    return int(result or 0)


class _Router(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` that send a job thread's lines to its log stream, others' through."""

    def __init__(self, original: Any) -> None:
        self.original = original
        self.sinks: dict[int, Callable[[str], None]] = {}
        self._partial: dict[int, str] = {}

    def write(self, text: str) -> int:
        ident = threading.get_ident()
        sink = self.sinks.get(ident)
        if sink is None:
            return self.original.write(text)
        buffered = self._partial.pop(ident, "") + text
        *lines, rest = buffered.split("\n")
        for line in lines:
            sink(line)
        if rest:
            self._partial[ident] = rest
        return len(text)

    def flush(self) -> None:
        self.original.flush()

    def drain(self, ident: int) -> None:
        rest = self._partial.pop(ident, "")
        sink = self.sinks.get(ident)
        if rest and sink is not None:
            sink(rest)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")


_route_lock = threading.Lock()


@contextmanager
def routed_output(sink: Callable[[str], None]) -> Iterator[None]:
    """Send what this thread prints (stdout and stderr) to ``sink``, line by line."""
    ident = threading.get_ident()
    with _route_lock:
        routers = []
        for name in ("stdout", "stderr"):
            current = getattr(sys, name)
            if not isinstance(current, _Router):
                current = _Router(current)
                setattr(sys, name, current)
            current.sinks[ident] = sink
            routers.append((name, current))
    try:
        yield
    finally:
        with _route_lock:
            for name, router in routers:
                router.drain(ident)
                router.sinks.pop(ident, None)
                if not router.sinks and getattr(sys, name) is router:
                    setattr(sys, name, router.original)


# ---- warm-up ---------------------------------------------------------------------------

def warm_up(spark: Any, config: GlueConfig, log: Callable[[str], None],
            stop: threading.Event | None = None) -> None:
    """Run each job's script over ``config.warmup_lines`` in a scratch lake, twice (a first object, then a
    second one over the same day), so the first real run finds its code compiled and its classes loaded.

    ``stop`` set (a real run arrived) ends the warm-up before its next pass; the session cancels the
    pass in flight (its Spark jobs are in ``WARMUP_JOB_GROUP``)."""
    import shutil

    if not config.warmup_lines:
        return
    stop = stop or threading.Event()
    for job in config.jobs:
        if not job.warmup_arguments or stop.is_set():
            continue
        scratch = config.root / "warmup" / job.name
        shutil.rmtree(scratch, ignore_errors=True)
        arguments = {k: v.replace("{scratch}", scratch.as_uri()) for k, v in job.warmup_arguments.items()}
        started = time.monotonic()
        passes = 0
        failure: Exception | None = None
        try:
            for n in range(2):
                if stop.is_set():
                    break
                folder = scratch / "input" / "2000" / "01" / "01" / "00"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"warmup-{n}").write_text("\n".join(config.warmup_lines) + "\n")
                argv = [str(script_path(job.script_location)), "--JOB_NAME", f"{job.name}-warmup",
                        "--JOB_RUN_ID", f"jr_warmup_{n}"]
                for key, value in {**job.default_arguments, **arguments}.items():
                    argv += [key, local_value(value, config)]
                code = run_script(spark, job.script_location, argv, WARMUP_JOB_GROUP, lambda line: None)
                if code:
                    raise RuntimeError(f"exit code {code}")
                passes += 1
        except Exception as exc:  # noqa: BLE001 - a failed warm-up only costs the first run its speed
            failure = exc
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        took = time.monotonic() - started
        if passes == 2:
            log(f"warmed up job {job.name} in {took:.1f} s")
        elif stop.is_set():  # stopped between passes, or its pass in flight cancelled
            log(f"warm-up of job {job.name} cut short after {took:.1f} s ({passes} of 2 passes): a run arrived")
        elif failure is not None:
            log(f"warm-up of job {job.name} failed ({type(failure).__name__}: {_first_line(failure)}); "
                "runs still work")

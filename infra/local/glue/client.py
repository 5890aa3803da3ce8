"""The local Glue's API: the Glue calls a project makes, in boto3's shapes, over the local catalog,
job runs on local Spark, crawlers and triggers.

:class:`LocalGlueClient` is the backend behind both local clients: in-process
(``infra.local.core.local_client("glue", LocalGlueClient(config))``: runs execute in the
caller's process) and the Glue service process (``infra.local.glue.service``: runs execute
in its warm Spark session). Requests reach it already validated against botocore's model;
it enforces Glue's own rules (see :mod:`infra.local.glue.jobs`, :mod:`.crawlers`,
:mod:`.triggers`) and raises Glue's error codes.
"""

from __future__ import annotations

import threading
from typing import Any

from infra.local.core.errors import ServiceError
from infra.local.glue.catalog import Catalog
from infra.local.glue.config import GlueConfig, JobDefinition
from infra.local.glue.crawlers import CrawlerRunner
from infra.local.glue.jobs import JobRunner, Session
from infra.local.glue.store import GlueStore
from infra.local.glue.triggers import Triggers

#: a job run's longest timeout (the API reference's JobRun.Timeout: "less than 7 days or 10080 minutes")
MAX_TIMEOUT_MINUTES = 10080


class GlueEngine:
    """The state and workers of one local Glue (one data dir) in this process."""

    def __init__(self, config: GlueConfig, session: Session) -> None:
        self.config = config
        self.session = session
        self.store = GlueStore(config.root)
        self.catalog = Catalog(config.root / "catalog", config.account_id)
        self.crawlers = CrawlerRunner(config, self.store, self.catalog)
        self.jobs = JobRunner(config, self.store, session, on_finished=self._job_finished)
        self.triggers = Triggers(config, self.store, start_job=self.start_job, start_crawler=self.crawlers.start,
                                 record_refused_run=self._record_refused)

    def job(self, name: str, operation: str) -> JobDefinition:
        job = self.config.job(name)
        if job is None:
            message = ("Failed to start job run due to missing metadata" if operation == "StartJobRun"
                       else f"Job {name} not found.")
            raise ServiceError("EntityNotFoundException", message, 400, operation)
        return job

    def start_job(self, name: str, arguments: dict[str, str] | None = None, trigger_name: str | None = None,
                  **options: Any) -> str:
        return self.jobs.start(self.job(name, "StartJobRun"), arguments, trigger_name=trigger_name, **options)

    def _record_refused(self, name: str, trigger_name: str, arguments: dict[str, str] | None = None) -> None:
        self.jobs.record_refused(self.job(name, "StartJobRun"), trigger_name, arguments)

    def _job_finished(self, run: dict[str, Any]) -> None:
        self.triggers.on_job_run_finished(run)


_engines: dict[str, GlueEngine] = {}
_engines_lock = threading.Lock()


def process_engine(config: GlueConfig) -> GlueEngine:
    """This process's engine for ``config`` (one per configuration: runs started by any client of it
    are tracked together), running jobs in this process's Spark session."""
    from infra.local.glue.session import ProcessSession

    key = config.to_json()
    with _engines_lock:
        if key not in _engines:
            _engines[key] = GlueEngine(config, ProcessSession())
        return _engines[key]


class LocalGlueClient:
    """``boto3.client("glue")``'s calls aircast makes, answered by a local Glue engine."""

    def __init__(self, config: GlueConfig, engine: GlueEngine | None = None) -> None:
        self.config = config
        self.engine = engine or process_engine(config)
        catalog = self.engine.catalog
        for name in ("create_database", "get_database", "get_databases", "create_table", "update_table", "get_table",
                     "get_tables", "delete_table", "batch_create_partition", "get_partitions"):
            setattr(self, name, getattr(catalog, name))

    # ---- jobs ---------------------------------------------------------------------------
    def get_job(self, JobName: str, **_: Any) -> dict[str, Any]:
        job = self.engine.job(JobName, "GetJob")
        return {"Job": {
            "Name": job.name, "JobMode": "SCRIPT", "Description": job.description, "Role": job.role,
            "ExecutionProperty": {"MaxConcurrentRuns": job.max_concurrent_runs},
            "Command": {"Name": "glueetl", "ScriptLocation": job.script_location, "PythonVersion": "3"},
            "DefaultArguments": dict(job.default_arguments), "MaxRetries": job.max_retries,
            "Timeout": job.timeout_minutes, "WorkerType": job.worker_type, "NumberOfWorkers": job.number_of_workers,
            "GlueVersion": job.glue_version, "ExecutionClass": "STANDARD",
            "JobRunQueuingEnabled": job.job_run_queuing_enabled,
        }}

    def start_job_run(self, JobName: str, Arguments: dict[str, str] | None = None,
                      JobRunQueuingEnabled: bool | None = None, Timeout: int | None = None,
                      JobRunId: str | None = None, WorkerType: str | None = None, NumberOfWorkers: int | None = None,
                      ExecutionClass: str | None = None, **_: Any) -> dict[str, Any]:
        """Start a run (it executes on a thread); refused with ConcurrentRunsExceededException at the limit."""
        if Timeout is not None and Timeout > MAX_TIMEOUT_MINUTES:
            # botocore's model states only the minimum; the API reference states the ceiling (JobRun.Timeout)
            raise ServiceError("InvalidInputException", "Jobs must have timeout values less than 7 days or "
                               f"{MAX_TIMEOUT_MINUTES} minutes.", 400, "StartJobRun")
        run_id = self.engine.start_job(JobName, Arguments, queuing=JobRunQueuingEnabled, timeout=Timeout,
                                       previous_run_id=JobRunId, worker_type=WorkerType,
                                       number_of_workers=NumberOfWorkers, execution_class=ExecutionClass)
        return {"JobRunId": run_id}

    def get_job_run(self, JobName: str, RunId: str, **_: Any) -> dict[str, Any]:
        self.engine.job(JobName, "GetJobRun")
        store = self.engine.store
        with store.transaction() as db:
            store.sweep(db)
            run = store.run(db, JobName, RunId)
        if run is None:
            raise ServiceError("EntityNotFoundException", f"Job run {RunId} not found.", 400, "GetJobRun")
        return {"JobRun": run}

    def get_job_runs(self, JobName: str, NextToken: str | None = None, MaxResults: int | None = None,
                     **_: Any) -> dict[str, Any]:
        """Runs of the job, newest first, paginated as Glue pages them."""
        self.engine.job(JobName, "GetJobRuns")
        try:
            offset = int(NextToken or 0)
        except ValueError:
            raise ServiceError("InvalidInputException", "Invalid pagination token", 400, "GetJobRuns") from None
        limit = MaxResults or 100
        store = self.engine.store
        with store.transaction() as db:
            store.sweep(db)
            runs = store.runs(db, JobName, offset, limit + 1)
        out: dict[str, Any] = {"JobRuns": runs[:limit]}
        if len(runs) > limit:
            out["NextToken"] = str(offset + limit)
        return out

    def batch_stop_job_run(self, JobName: str, JobRunIds: list[str], **_: Any) -> dict[str, Any]:
        ok, errors = self.engine.jobs.stop(JobName, JobRunIds)
        return {"SuccessfulSubmissions": ok, "Errors": errors}

    # ---- crawlers -------------------------------------------------------------------------
    def start_crawler(self, Name: str, **_: Any) -> dict[str, Any]:
        self.engine.crawlers.start(Name)
        return {}

    def get_crawler(self, Name: str, **_: Any) -> dict[str, Any]:
        return {"Crawler": self.engine.crawlers.get(Name)}

    def get_crawler_metrics(self, CrawlerNameList: list[str] | None = None, MaxResults: int | None = None,
                            NextToken: str | None = None, **_: Any) -> dict[str, Any]:
        metrics = self.engine.crawlers.metrics(list(CrawlerNameList or []))
        offset = int(NextToken or 0) if (NextToken or "0").isdigit() else 0
        limit = MaxResults or 1000
        out: dict[str, Any] = {"CrawlerMetricsList": metrics[offset:offset + limit]}
        if offset + limit < len(metrics):
            out["NextToken"] = str(offset + limit)
        return out

    # ---- triggers ---------------------------------------------------------------------------
    def get_trigger(self, Name: str, **_: Any) -> dict[str, Any]:
        trigger = self.config.trigger(Name)
        if trigger is None:
            raise ServiceError("EntityNotFoundException", f"Trigger {Name} not found.", 400, "GetTrigger")
        return {"Trigger": self.engine.triggers.describe(trigger)}

    def get_triggers(self, DependentJobName: str | None = None, **_: Any) -> dict[str, Any]:
        triggers = [t for t in self.config.triggers if DependentJobName is None
                    or any(a.get("JobName") == DependentJobName for a in t.actions)]
        return {"Triggers": [self.engine.triggers.describe(t) for t in triggers]}

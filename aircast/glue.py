"""aircast's Glue: the job, crawlers and triggers its stack declares, and starting them and waiting.

On AWS these are resources of ``infra/aws/aircast.yaml``; locally :func:`glue_config` describes
the same ones (names, default arguments, schedule, schema-change policies) to the local Glue,
which runs them in-process or, while the stack is up, in the Glue service with its warm Spark
session (:data:`SERVICE`, started by ``aircast local up``).

:func:`run_etl_job` and :func:`run_raw_crawler` are what ``aircast lake etl|crawl`` and the demo
do on either backend: start through the Glue API, wait, report progress (run state changes and
the job's own log lines from CloudWatch Logs) and read the run's counts from the lake.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from aircast.lake_paths import (
    CURATED_TABLES,
    RAW_TELEMETRY_PREFIX,
    curated_uri,
    local_raw_telemetry_dir,
    raw_telemetry_uri,
)
from aircast.settings import Settings
from infra.local.glue.config import CrawlerDefinition, GlueConfig, JobDefinition, TriggerDefinition
from infra.local.stack import ServiceSpec

#: the names the CloudFormation stack gives these resources (ProjectName ``aircast``)
RAW_CRAWLER = "aircast-raw-telemetry"
CURATED_CRAWLER = "aircast-curated"
ETL_TRIGGER = "aircast-etl-schedule"
CURATED_CRAWL_TRIGGER = "aircast-curated-crawl-after-etl"
#: the job script, as the Glue job's ScriptLocation names it
SCRIPT = Path(__file__).resolve().parents[1] / "processing" / "glue_etl.py"
JOB_LOG_GROUP = "/aws-glue/jobs/output"
CRAWLER_LOG_GROUP = "/aws-glue/crawlers"
TERMINAL_STATES = ("STOPPED", "SUCCEEDED", "FAILED", "TIMEOUT", "ERROR", "EXPIRED")
SERVICE_NAME = "glue"


class JobRunFailed(RuntimeError):
    """A job run ended in a state other than SUCCEEDED; the message says which and why."""

    def __init__(self, run: dict[str, Any]) -> None:
        why = f": {run['ErrorMessage']}" if run.get("ErrorMessage") else ""
        super().__init__(f"job run {run['Id']} of {run['JobName']} ended {run['JobRunState']}{why}")
        self.run = run


class CrawlFailed(RuntimeError):
    """A crawl ended FAILED or CANCELLED."""


# ---- what the stack declares ----------------------------------------------------------------

def job_arguments(settings: Settings) -> dict[str, str]:
    """The ETL job's DefaultArguments, as ``infra/aws/aircast.yaml`` sets them."""
    return {
        "--job-bookmark-option": "job-bookmark-enable",
        "--source_uri": raw_telemetry_uri(settings),
        "--target_uri": curated_uri(settings),
        "--database": settings.glue_database,
        "--TempDir": f"{settings.artifacts_uri}/glue/tmp/",
        "--enable-metrics": "true",
    }


#: sample raw lines the service warms each job up with: the two payload kinds and a bad record
WARMUP_LINES: tuple[str, ...] = tuple(json.dumps(r) for r in (
    {"device_id": "warmup-001", "seq": 1, "timestamp": "2021-02-05T13:30:00Z", "pm2_5": 12.0, "pm10": 20.0,
     "temperature": 3.5, "humidity": 61.0, "pressure": 1016.2, "thing_name": "warmup-001",
     "received_at": 1612531801000},
    {"ozone": 10, "particullate_matter": 20, "carbon_monoxide": 1, "sulfure_dioxide": 4, "nitrogen_dioxide": 5,
     "longitude": 10.25, "latitude": 56.2, "timestamp": "2021-02-05T13:00:00.000Z", "thing_name": "warmup-002",
     "received_at": 1612530000250},
    {"device_id": "warmup-001", "seq": 2, "timestamp": "not-a-time", "pm2_5": 12.0, "thing_name": "warmup-001",
     "received_at": 1612531802000},
))


def glue_config(settings: Settings) -> GlueConfig:
    """The local Glue's resources for these settings: the stack's job, crawlers and triggers."""
    role = f"arn:aws:iam::{settings.account_id}:role/aircast-glue"
    job = JobDefinition(
        name=settings.glue_job_name, script_location=str(SCRIPT), role=role, default_arguments=job_arguments(settings),
        description="raw JSON lines -> curated readings/hourly/quarantine parquet (processing/glue_etl.py)",
        warmup_arguments={"--source_uri": "{scratch}/input/", "--target_uri": "{scratch}/output/"},
    )
    raw = CrawlerDefinition(
        name=RAW_CRAWLER, role=role, database=settings.glue_database, s3_targets=(raw_telemetry_uri(settings),),
        table_prefix="raw_", update_behavior="LOG", delete_behavior="LOG", recrawl_behavior="CRAWL_NEW_FOLDERS_ONLY",
        configuration='{"Version":1.0,"Grouping":{"TableGroupingPolicy":"CombineCompatibleSchemas"}}',
    )
    curated = CrawlerDefinition(
        name=CURATED_CRAWLER, role=role, database=settings.glue_database,
        s3_targets=tuple(curated_uri(settings, t) for t in CURATED_TABLES),
        configuration='{"Version":1.0,"CrawlerOutput":{"Partitions":{"AddOrUpdateBehavior":"InheritFromTable"}}}',
    )
    triggers = (
        TriggerDefinition(name=ETL_TRIGGER, type="SCHEDULED", schedule=settings.glue_etl_schedule,
                          actions=({"JobName": job.name},)),
        TriggerDefinition(name=CURATED_CRAWL_TRIGGER, type="CONDITIONAL", actions=({"CrawlerName": CURATED_CRAWLER},),
                          conditions=({"LogicalOperator": "EQUALS", "JobName": job.name, "State": "SUCCEEDED"},)),
    )
    return GlueConfig(data_dir=settings.data_dir, region=settings.region, account_id=settings.account_id,
                      port=settings.glue_port, heap_mib=settings.glue_heap_mib, jit=settings.glue_jit, jobs=(job,),
                      crawlers=(raw, curated), triggers=triggers,
                      warmup_lines=WARMUP_LINES if settings.glue_warmup else ())


# ---- the class archive of local Spark ----------------------------------------------------------

def class_archive_workload(spark: Any, workdir: Path) -> None:
    """What the JVM that writes the class archive runs: the job script over the warm-up lines."""
    import dataclasses

    from aircast.settings import load_settings
    from infra.local.glue.jobs import warm_up

    settings = load_settings(data_dir=workdir / "data")
    config = dataclasses.replace(glue_config(settings), warmup_lines=WARMUP_LINES)
    warm_up(spark, config, lambda line: print(f"    {line}", file=sys.stderr))


def build_class_archive(force: bool = False) -> Path | None:
    """``make install``: write local Spark's class data sharing archive (:mod:`infra.local.glue.cds`)."""
    from infra.local.glue import cds

    return cds.build("aircast.glue:class_archive_workload", force=force)


# ---- the service -------------------------------------------------------------------------------

def config_path(settings: Settings) -> Path:
    return settings.data_dir / "glue" / "service.json"


def _write_config(settings: Settings) -> None:
    path = config_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(glue_config(settings).to_json())


def service_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.glue_port}"


def service_running(settings: Settings) -> bool:
    """Whether this data dir's Glue service runs (then the glue client talks to it)."""
    from aircast.local_wiring import read_pid

    return settings.backend == "local" and read_pid(settings, SERVICE_NAME) is not None


def service_health(settings: Settings, timeout_s: float = 2.0) -> dict[str, Any]:
    """The service's ``GET /health`` (session state, heap, trigger times)."""
    with urllib.request.urlopen(f"{service_url(settings)}/health", timeout=timeout_s) as response:
        return json.loads(response.read())


def _detail(settings: Settings) -> str:
    session = service_health(settings)["session"]
    if "heap_max_mib" not in session:
        return f"session {session['state']} (heap limit {settings.glue_heap_mib} MiB)"
    return (f"session {session['state']}: heap {session['heap_used_mib']:.0f} used / "
            f"{session['heap_committed_mib']:.0f} committed / {session['heap_max_mib']:.0f} MiB max, "
            f"JVM RSS {session.get('jvm_rss_mib', 0):.0f} MiB, JIT {session.get('jit', '?')}")


def service(settings: Settings, env: Mapping[str, str] | None = None) -> ServiceSpec:
    """The Glue service as a stack service on 127.0.0.1:``settings.glue_port`` (its config file written at start)."""
    return ServiceSpec(name=SERVICE_NAME, port=settings.glue_port, env=dict(env or {}),
                       argv=[sys.executable, "-m", "infra.local.glue.service", "--config", str(config_path(settings))],
                       prepare=lambda: _write_config(settings), detail=lambda: _detail(settings))


# ---- start and wait (both backends) -------------------------------------------------------------

def _clients(settings: Settings) -> tuple[Any, Any]:
    from aircast.clients import get_client

    return get_client("glue", settings), get_client("logs", settings)


class LogFollower:
    """Prints new events of log streams with a name prefix as they arrive (CloudWatch Logs)."""

    def __init__(self, logs: Any, group: str, prefix: str, sink: Callable[[str], None], contains: str = "") -> None:
        self.logs, self.group, self.prefix, self.sink, self.contains = logs, group, prefix, sink, contains
        self._seen: set[str] = set()
        self._since = 0

    def poll(self) -> None:
        kwargs: dict[str, Any] = {"logGroupName": self.group, "logStreamNamePrefix": self.prefix,
                                  "startTime": self._since}
        try:
            while True:
                page = self.logs.filter_log_events(**kwargs)
                for event in page.get("events", []):
                    if event["eventId"] in self._seen:
                        continue
                    self._seen.add(event["eventId"])
                    self._since = max(self._since, event["timestamp"])
                    if self.contains in event["message"]:
                        self.sink(event["message"])
                if not page.get("nextToken"):
                    return
                kwargs["nextToken"] = page["nextToken"]
        except Exception as exc:  # noqa: BLE001 - no log group yet (first run) or no permission: no lines
            if getattr(exc, "response", {}).get("Error", {}).get("Code") not in (
                    "ResourceNotFoundException", "AccessDeniedException"):
                raise


def wait_for_job_run(settings: Settings, run_id: str, progress: Callable[[str], None] | None = None,
                     poll_s: float | None = None, timeout_s: float | None = None) -> dict[str, Any]:
    """Poll the run until it ends; report state changes and the job's log lines. Returns the final JobRun."""
    glue, logs = _clients(settings)
    say = progress or (lambda line: None)
    follower = LogFollower(logs, JOB_LOG_GROUP, run_id, lambda line: say(f"  | {line}"))
    poll = poll_s if poll_s is not None else (0.25 if settings.backend == "local" else 5.0)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    state = None
    while True:
        run = glue.get_job_run(JobName=settings.glue_job_name, RunId=run_id)["JobRun"]
        if run["JobRunState"] != state:
            state = run["JobRunState"]
            detail = f" ({run['StateDetail']})" if run.get("StateDetail") else ""
            say(f"job run {run_id[:12]}… {state}{detail}")
        follower.poll()
        if state in TERMINAL_STATES:
            return run
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"job run {run_id} still {state} after {timeout_s:.0f} s")
        time.sleep(poll)


def run_summary(settings: Settings, run: dict[str, Any]) -> dict[str, Any] | None:
    """The counts the job wrote for ``run`` (``curated/_runs/<job>/<run id>.json``), None if there are none."""
    from aircast.clients import get_client

    target = (run.get("Arguments") or {}).get("--target_uri") or curated_uri(settings)
    bucket, _, prefix = target[len("s3://"):].partition("/")
    key = f"{prefix.rstrip('/')}/_runs/{run['JobName']}/{run['Id']}.json".lstrip("/")
    try:
        return json.loads(get_client("s3", settings).get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as exc:  # no summary (a run before this version, a failed run) or no read access
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404", "AccessDenied", "403"):
            return None
        raise


def run_etl_job(settings: Settings, progress: Callable[[str], None] | None = None, queue: bool = False,
                arguments: dict[str, str] | None = None, timeout_s: float | None = None) -> dict[str, Any]:
    """Start the ETL job, wait for it and return its counts (plus ``job_run_id``, ``duration_s``).

    ``queue``: wait in WAITING behind a run in progress (job run queuing) instead of being refused.
    Raises ``JobRunFailed`` when the run does not succeed. Locally it then also waits for the
    curated crawl the success triggers, so the catalog is current when it returns.
    """
    glue, _ = _clients(settings)
    started = time.monotonic()
    request: dict[str, Any] = {"JobName": settings.glue_job_name}
    if arguments:
        request["Arguments"] = arguments
    if queue:
        request["JobRunQueuingEnabled"] = True
    run_id = glue.start_job_run(**request)["JobRunId"]
    run = wait_for_job_run(settings, run_id, progress, timeout_s=timeout_s)
    if run["JobRunState"] != "SUCCEEDED":
        raise JobRunFailed(run)
    counts = run_summary(settings, run) or {}
    if settings.backend == "local":
        wait_for_triggered_crawl(settings, CURATED_CRAWLER, run["CompletedOn"], progress)
    return {**counts, "job_run_id": run_id, "duration_s": round(time.monotonic() - started, 3)}


def wait_for_triggered_crawl(settings: Settings, name: str, after: dt.datetime,
                             progress: Callable[[str], None] | None = None, timeout_s: float = 120.0) -> None:
    """Wait until a crawl of ``name`` started at or after ``after`` (by a trigger) has ended."""
    glue, _ = _clients(settings)
    deadline = time.monotonic() + timeout_s
    grace = time.monotonic() + 10.0  # a trigger that did not start the crawl (it was running) is not waited for
    announced = False
    while time.monotonic() < deadline:
        crawler = glue.get_crawler(Name=name)["Crawler"]
        last = crawler.get("LastCrawl", {})
        if crawler["State"] == "RUNNING" and not announced and progress:
            progress(f"crawler {name} RUNNING (started by trigger {CURATED_CRAWL_TRIGGER})")
            announced = True
        if crawler["State"] == "READY" and last.get("StartTime") and last["StartTime"] >= after - dt.timedelta(
                seconds=1):
            if progress:
                progress(f"crawler {name} {last['Status']}")
            return
        if crawler["State"] == "READY" and time.monotonic() > grace:
            return
        time.sleep(0.2)


def run_crawler(settings: Settings, name: str = RAW_CRAWLER, progress: Callable[[str], None] | None = None,
                timeout_s: float = 600.0) -> dict[str, Any]:
    """Start a crawler, wait for it, and return its LastCrawl, metrics and the crawl's log lines."""
    glue, logs = _clients(settings)
    glue.start_crawler(Name=name)
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    poll = 0.2 if settings.backend == "local" else 10.0
    time.sleep(0.05)
    while True:
        crawler = glue.get_crawler(Name=name)["Crawler"]
        if crawler["State"] == "READY" and crawler.get("LastCrawl"):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"crawler {name} still {crawler['State']} after {timeout_s:.0f} s")
        time.sleep(poll)
    last = crawler["LastCrawl"]
    prefix = f"[{last['MessagePrefix']}] "

    def keep(line: str) -> None:
        lines.append(line[len(prefix):])
        if progress:
            progress(f"  | {line[len(prefix):]}")

    LogFollower(logs, CRAWLER_LOG_GROUP, name, keep, contains=prefix).poll()
    if last["Status"] != "SUCCEEDED":
        raise CrawlFailed(f"crawl of {name} ended {last['Status']}: {last.get('ErrorMessage', '?')}")
    metrics = glue.get_crawler_metrics(CrawlerNameList=[name])["CrawlerMetricsList"]
    return {"crawler": crawler, "metrics": metrics[0] if metrics else {}, "log": lines}


class NoRawDataError(ValueError):
    """The lake has no raw object yet; the message says where it looked and what to do."""


def require_raw_data(settings: Settings) -> None:
    """Raise ``NoRawDataError`` naming the raw prefix (and, locally, its folder) when it holds no object."""
    from aircast.clients import get_client

    page = get_client("s3", settings).list_objects_v2(Bucket=settings.lake_bucket, Prefix=RAW_TELEMETRY_PREFIX, MaxKeys=1)
    if page.get("KeyCount", len(page.get("Contents", []))):
        return
    where = f" ({local_raw_telemetry_dir(settings)})" if settings.backend == "local" else ""
    raise NoRawDataError(f"no raw data under {raw_telemetry_uri(settings)}{where}: start the local stack and a "
                         "device (`aircast local up`, `aircast device ...`) or copy Firehose objects there")

"""The local Glue service as ``aircast local up`` runs it: one process with a warm Spark session
answering Glue's JSON protocol (boto3's client against it), a bounded heap shown by
``aircast local status``, runs that survive in the history across a restart, and the stack's
triggers firing while it is up."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aircast import local_wiring
from aircast.cli import main
from aircast.clients import get_client
from aircast.glue import CURATED_CRAWLER, ETL_TRIGGER, SERVICE_NAME, service_health, service_running, wait_for_job_run
from aircast.settings import Settings, load_settings
from tests.helpers import free_port, wait_until
from tests.lake.raw import BAD_RECORDS, T0, aircast, seed, write_object

pytestmark = pytest.mark.slow

M = dt.timedelta(minutes=1)
JOB = "aircast-etl"
GLUE = (SERVICE_NAME,)
NEVER = "cron(0 0 1 1 ? 2199)"


def _wait_ready(settings: Settings, timeout_s: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        session = service_health(settings)["session"]
        if session["state"] in ("ready", "failed"):
            return session
        time.sleep(0.5)
    raise TimeoutError("the Glue service's session did not become ready")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A lake with one object and the Glue service up on it (no scheduled trigger due for now)."""
    data_dir = tmp_path_factory.mktemp("glue-service")
    with pytest.MonkeyPatch.context() as env:
        for key in list(os.environ):
            if key.startswith("AIRCAST_") and key != "AIRCAST_STRICT_RESPONSES":
                env.delenv(key)
        settings = load_settings(data_dir=data_dir, glue_port=free_port(), glue_heap_mib=1024,
                                 glue_etl_schedule=NEVER)
        for name in ("data_dir", "glue_port", "glue_heap_mib", "glue_etl_schedule"):
            env.setenv(f"AIRCAST_{name.upper()}", str(getattr(settings, name)))
        write_object(settings, [seed(T0, 1, 2, 3, 4, 5), aircast(1, "2021-02-05T13:30:00Z", 10, 20, T0 + 30 * M),
                                *[line for line, _, _ in BAD_RECORDS[:4]]], T0 + 50 * M)
        local_wiring.up(settings, GLUE)
        try:
            yield settings
        finally:
            local_wiring.down(settings, GLUE)


def test_the_cli_runs_the_job_on_the_service_and_shows_its_progress(service: Settings,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    first = wait_until(lambda: (s := service_health(service)["session"])["state"] != "starting" and s, 600,
                       interval_s=0.2, what="the session's first state after starting")
    # The warm-up begins as soon as the session is up, with no run asking (it used to wait 10 s idle,
    # and the demo's first run always came within them: it found a cold JVM).
    assert first["state"] == "warming" or first["warmup_s"] > 0, first
    session = _wait_ready(service)
    assert session["state"] == "ready" and session["heap_max_mib"] <= 1024
    glue = get_client("glue", service)
    assert service_running(service) and glue.meta.endpoint_url == f"http://127.0.0.1:{service.glue_port}"

    assert main(["lake", "etl"]) == 0
    out, err = capsys.readouterr()
    assert "the local Glue service (warm Spark session)" in err
    assert "RUNNING" in err and "SUCCEEDED" in err and f"| [{JOB}]" in err and "1 new since the last bookmark" in err
    counts = dict(line.split(None, 1) for line in out.splitlines() if line.strip())
    assert (counts["read"], counts["written"], counts["quarantined"]) == ("6", "2", "4")
    # the curated crawl the success triggered, in the service
    crawler = glue.get_crawler(Name=CURATED_CRAWLER)["Crawler"]
    assert crawler["State"] == "READY" and crawler["LastCrawl"]["Status"] == "SUCCEEDED"
    assert {t["Name"] for t in glue.get_tables(DatabaseName="aircast")["TableList"]} >= {"readings", "hourly",
                                                                                           "quarantine"}

    assert main(["local", "status", SERVICE_NAME]) == 0
    status = capsys.readouterr().out
    assert "session ready: heap" in status and "/ 1024 MiB max" in status and "JVM RSS" in status
    assert "JIT c1" in status  # the service's default: the quick compiler only (infra/local/glue/session.py)


def test_the_service_refuses_a_concurrent_run_and_queues_on_request(service: Settings) -> None:
    glue = get_client("glue", service)
    first = glue.start_job_run(JobName=JOB)["JobRunId"]
    with pytest.raises(glue.exceptions.ConcurrentRunsExceededException, match=f"Concurrent runs exceeded for {JOB}"):
        glue.start_job_run(JobName=JOB)
    queued = glue.start_job_run(JobName=JOB, JobRunQueuingEnabled=True)["JobRunId"]
    assert glue.get_job_run(JobName=JOB, RunId=queued)["JobRun"]["JobRunState"] == "WAITING"
    assert wait_for_job_run(service, first, timeout_s=300)["JobRunState"] == "SUCCEEDED"
    assert wait_for_job_run(service, queued, timeout_s=300)["JobRunState"] == "SUCCEEDED"
    with pytest.raises(glue.exceptions.ClientError, match="enum value set"):  # the server checks the model too
        glue.start_job_run(JobName=JOB, ExecutionClass="CHEAP")


def test_a_failing_run_then_a_good_one_in_the_same_warm_session(service: Settings) -> None:
    glue = get_client("glue", service)
    pid = local_wiring.read_pid(service, SERVICE_NAME)
    bad = glue.start_job_run(JobName=JOB, Arguments={"--target_uri": "nosuch://nowhere/curated/"})["JobRunId"]
    run = wait_for_job_run(service, bad, timeout_s=300)
    assert run["JobRunState"] == "FAILED" and "nosuch" in run["ErrorMessage"]
    write_object(service, [aircast(2, "2021-02-05T14:30:00Z", 11, 21, T0 + 90 * M)], T0 + 95 * M)
    good = glue.start_job_run(JobName=JOB)["JobRunId"]
    assert wait_for_job_run(service, good, timeout_s=300)["JobRunState"] == "SUCCEEDED"
    assert local_wiring.read_pid(service, SERVICE_NAME) == pid  # the same process, its session kept


def test_history_survives_a_restart_and_the_scheduled_trigger_fires(service: Settings) -> None:
    glue = get_client("glue", service)
    keys = ("Id", "JobRunState", "StartedOn", "CompletedOn", "ExecutionTime", "ErrorMessage", "TriggerName")
    before = [{k: r.get(k) for k in keys} for r in glue.get_job_runs(JobName=JOB)["JobRuns"]]
    assert len(before) >= 5 and "FAILED" in {r["JobRunState"] for r in before}
    local_wiring.down(service, GLUE)
    assert not service_running(service)
    # up again, now with the trigger due every minute
    every_minute = service.replace(glue_etl_schedule="cron(* * * * ? *)", glue_warmup=False)  # warmed up before
    local_wiring.up(every_minute, GLUE)
    glue = get_client("glue", every_minute)
    after = [{k: r.get(k) for k in keys} for r in glue.get_job_runs(JobName=JOB)["JobRuns"]]
    assert after[-len(before):] == before
    next_time = dt.datetime.fromisoformat(service_health(every_minute)["next_fire_times"][ETL_TRIGGER])
    assert next_time - dt.datetime.now(dt.UTC) <= dt.timedelta(seconds=61)
    deadline = time.monotonic() + 300
    while True:
        triggered = [r for r in glue.get_job_runs(JobName=JOB)["JobRuns"] if r.get("TriggerName") == ETL_TRIGGER]
        if triggered and triggered[-1]["JobRunState"] in ("SUCCEEDED", "FAILED"):
            break
        assert time.monotonic() < deadline, "the scheduled trigger did not run the job"
        time.sleep(1)
    assert triggered[-1]["JobRunState"] == "SUCCEEDED"
    log = (Path(every_minute.run_dir) / "glue.log").read_text()
    assert f"trigger {ETL_TRIGGER} fired" in log
    assert json.loads(json.dumps(service_health(every_minute)))["status"] == "ok"

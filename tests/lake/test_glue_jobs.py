"""Glue job runs through the Glue API (boto3's client, validated against botocore's model), here
answered in-process with the stack down: Glue's run states, MaxConcurrentRuns 1 across
processes, job run queuing, stops, a failing run followed by a good one, the triggers, and
what ``aircast lake etl`` shows while it waits."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from aircast.cli import main
from aircast.clients import get_client
from aircast.glue import CURATED_CRAWLER, ETL_TRIGGER, glue_config, run_etl_job, wait_for_job_run
from aircast.settings import Settings
from infra.local.glue.client import process_engine
from tests.helpers import wait_until
from tests.lake.raw import BAD_RECORDS, T0, aircast, seed, write_object

M = dt.timedelta(minutes=1)
JOB = "aircast-etl"


@pytest.fixture
def lake(settings: Settings, spark: Any) -> Settings:
    """One Firehose object of good and bad records (``spark``: the test session runs the jobs)."""
    write_object(settings, [seed(T0, 1, 2, 3, 4, 5), aircast(1, "2021-02-05T13:30:00Z", 10, 20, T0 + 30 * M),
                            *[line for line, _, _ in BAD_RECORDS[:4]]], T0 + 50 * M)
    return settings


def _states(settings: Settings, run_id: str) -> tuple[dict[str, Any], list[str]]:
    """Wait for the run; return it and the states the waiting saw, in order."""
    lines: list[str] = []
    run = wait_for_job_run(settings, run_id, lines.append, poll_s=0.05, timeout_s=600)
    return run, [line.split("… ")[1].split()[0] for line in lines if line.startswith("job run ")]


def test_a_second_run_is_refused_or_queued_as_glue_does(lake: Settings) -> None:
    glue = get_client("glue", lake)
    first = glue.start_job_run(JobName=JOB)["JobRunId"]
    assert glue.get_job_run(JobName=JOB, RunId=first)["JobRun"]["JobRunState"] in ("STARTING", "RUNNING")
    with pytest.raises(glue.exceptions.ConcurrentRunsExceededException, match=f"Concurrent runs exceeded for {JOB}"):
        glue.start_job_run(JobName=JOB)
    queued = glue.start_job_run(JobName=JOB, JobRunQueuingEnabled=True)["JobRunId"]
    waiting = glue.get_job_run(JobName=JOB, RunId=queued)["JobRun"]
    assert waiting["JobRunState"] == "WAITING" and "MaxConcurrentRuns 1" in waiting["StateDetail"]
    assert waiting["JobRunQueuingEnabled"] is True

    done, states = _states(lake, first)
    assert done["JobRunState"] == "SUCCEEDED" and "RUNNING" in states
    assert done["CompletedOn"] >= done["StartedOn"] and done["GlueVersion"] == "5.0"
    after, states = _states(lake, queued)
    assert after["JobRunState"] == "SUCCEEDED" and after["CompletedOn"] > done["CompletedOn"]
    runs = glue.get_job_runs(JobName=JOB)["JobRuns"]
    assert [r["Id"] for r in runs] == [queued, first]  # newest first; the refused start left no run
    assert glue.get_job_runs(JobName=JOB, MaxResults=1)["NextToken"]


def test_a_job_that_retries_cannot_queue(lake: Settings) -> None:
    """Only jobs that do not retry may wait in WAITING (Glue, "Job run statuses"): with MaxRetries a start at
    the concurrency limit is refused even when it asks for queuing."""
    from dataclasses import replace

    from infra.local.core.botoclient import local_client
    from infra.local.glue.client import LocalGlueClient

    config = glue_config(lake)
    config = replace(config, jobs=tuple(replace(job, max_retries=1) for job in config.jobs))
    glue = local_client("glue", LocalGlueClient(config), region=lake.region)
    first = glue.start_job_run(JobName=JOB)["JobRunId"]
    with pytest.raises(glue.exceptions.ConcurrentRunsExceededException):
        glue.start_job_run(JobName=JOB, JobRunQueuingEnabled=True)
    process_engine(config).jobs.wait(first, 600)
    assert [r["Id"] for r in glue.get_job_runs(JobName=JOB)["JobRuns"]] == [first]


def test_stop_a_waiting_run_and_a_finished_one(lake: Settings) -> None:
    glue = get_client("glue", lake)
    first = glue.start_job_run(JobName=JOB)["JobRunId"]
    queued = glue.start_job_run(JobName=JOB, JobRunQueuingEnabled=True)["JobRunId"]
    stopped = glue.batch_stop_job_run(JobName=JOB, JobRunIds=[queued])
    assert stopped["SuccessfulSubmissions"] == [{"JobName": JOB, "JobRunId": queued}] and not stopped["Errors"]
    assert glue.get_job_run(JobName=JOB, RunId=queued)["JobRun"]["JobRunState"] == "STOPPED"
    assert _states(lake, first)[0]["JobRunState"] == "SUCCEEDED"
    late = glue.batch_stop_job_run(JobName=JOB, JobRunIds=[first, "jr_" + "0" * 64])
    assert [e["ErrorDetail"]["ErrorCode"] for e in late["Errors"]] == ["InvalidInputException",
                                                                         "EntityNotFoundException"]


@pytest.mark.slow
def test_stop_a_running_run(settings: Settings, spark: Any) -> None:
    from bench.etl import generate

    generate(settings.s3_root / settings.lake_bucket / "raw" / "telemetry", 40_000)
    glue = get_client("glue", settings)
    run_id = glue.start_job_run(JobName=JOB)["JobRunId"]
    wait_until(lambda: glue.get_job_run(JobName=JOB, RunId=run_id)["JobRun"]["JobRunState"] == "RUNNING", 300,
               what="the run RUNNING")
    glue.batch_stop_job_run(JobName=JOB, JobRunIds=[run_id])
    run, states = _states(settings, run_id)
    assert run["JobRunState"] == "STOPPED"
    assert not list((settings.s3_root / settings.lake_bucket / "curated" / "_bookmarks").rglob("*.json"))
    assert run_etl_job(settings)["objects_new"] > 0  # the session still works; the objects were never committed


def test_a_failing_run_leaves_the_session_usable(lake: Settings) -> None:
    glue = get_client("glue", lake)
    bad = glue.start_job_run(JobName=JOB, Arguments={"--source_uri": "nosuch://nowhere/raw/"})["JobRunId"]
    run, _ = _states(lake, bad)
    assert run["JobRunState"] == "FAILED" and 'No FileSystem for scheme "nosuch"' in run["ErrorMessage"]
    error_log = get_client("logs", lake).filter_log_events(logGroupName="/aws-glue/jobs/error",
                                                           logStreamNames=[f"{bad}-driver"])["events"]
    assert "Traceback" in error_log[0]["message"]
    counts = run_etl_job(lake)
    assert (counts["read"], counts["written"], counts["quarantined"]) == (6, 2, 4)


def test_requests_are_checked_against_glue_s_model(lake: Settings) -> None:
    glue = get_client("glue", lake)
    with pytest.raises(glue.exceptions.EntityNotFoundException, match="missing metadata"):
        glue.start_job_run(JobName="no-such-job")
    with pytest.raises(ClientError, match="enum value set"):
        glue.start_job_run(JobName=JOB, WorkerType="G.9X")
    with pytest.raises(ClientError, match="less than or equal to 200"):
        glue.get_job_runs(JobName=JOB, MaxResults=500)
    with pytest.raises(ParamValidationError):
        glue.start_job_run(JobName=JOB, Timeout=0)
    with pytest.raises(glue.exceptions.InvalidInputException, match="less than 7 days or 10080 minutes"):
        glue.start_job_run(JobName=JOB, Timeout=10081)  # the model states no ceiling; the API reference does
    with pytest.raises(glue.exceptions.EntityNotFoundException, match="not found"):
        glue.get_job_run(JobName=JOB, RunId="jr_missing")
    with pytest.raises(glue.exceptions.EntityNotFoundException, match="does not exist"):
        glue.start_crawler(Name="no-such-crawler")


def test_two_etl_processes_at_once_the_second_is_refused_clearly(lake: Settings,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    first = subprocess.Popen([sys.executable, "-m", "aircast.cli", "--data-dir", str(lake.data_dir), "lake", "etl"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        glue = get_client("glue", lake)
        deadline = time.monotonic() + 120
        while not glue.get_job_runs(JobName=JOB)["JobRuns"]:
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        assert main(["--data-dir", str(lake.data_dir), "lake", "etl"]) == 1
        err = capsys.readouterr().err
        assert f"job {JOB} is already running" in err and "--queue" in err and "Traceback" not in err
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    # the killed process's run is closed as FAILED, and the job can run again
    [run] = get_client("glue", lake).get_job_runs(JobName=JOB)["JobRuns"]
    assert run["JobRunState"] == "FAILED" and "ended before the run finished" in run["ErrorMessage"]
    assert main(["--data-dir", str(lake.data_dir), "lake", "etl", "--json"]) == 0


def test_the_cli_shows_the_run_s_progress(lake: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-dir", str(lake.data_dir), "lake", "etl"]) == 0
    out, err = capsys.readouterr()
    assert "local Spark in this process" in err
    assert "STARTING" in err and "RUNNING" in err and "SUCCEEDED" in err
    assert f"| [{JOB}]" in err and "1 raw objects, 1 new since the last bookmark" in err
    assert f"crawler {CURATED_CRAWLER} SUCCEEDED" in err
    assert "written" in out and "quarantined" in out
    assert main(["--data-dir", str(lake.data_dir), "lake", "runs"]) == 0
    out = capsys.readouterr().out
    assert "SUCCEEDED" in out and "quarantined" in out


def test_triggers_start_the_job_on_schedule_and_the_crawl_after_success(lake: Settings) -> None:
    settings = lake.replace(glue_etl_schedule="cron(15 * * * ? *)")
    engine = process_engine(glue_config(settings))
    due = engine.triggers.next_fire_times()[ETL_TRIGGER]
    assert due is not None and due.minute == 15
    assert engine.triggers.fire_due(now=due - dt.timedelta(seconds=1)) == []
    assert engine.triggers.fire_due(now=due) == [ETL_TRIGGER]
    assert engine.triggers.fire_due(now=due + dt.timedelta(seconds=30)) == []  # once per scheduled time
    glue = get_client("glue", settings)
    [run] = glue.get_job_runs(JobName=JOB)["JobRuns"]
    assert run["TriggerName"] == ETL_TRIGGER
    finished, _ = _states(settings, run["Id"])
    assert finished["JobRunState"] == "SUCCEEDED"
    # the run is SUCCEEDED before the conditional trigger starts the crawl (as on Glue): wait for the run's
    # thread, which fires the trigger, then for the crawl
    engine.jobs.wait(run["Id"], 120)
    engine.crawlers.wait(CURATED_CRAWLER, 120)
    crawler = glue.get_crawler(Name=CURATED_CRAWLER)["Crawler"]
    assert crawler["State"] == "READY" and crawler["LastCrawl"]["Status"] == "SUCCEEDED"
    assert crawler["LastCrawl"]["StartTime"] >= finished["CompletedOn"] - dt.timedelta(seconds=1)
    assert {t["Name"] for t in glue.get_tables(DatabaseName="aircast")["TableList"]} >= {"readings", "hourly"}
    metrics = glue.get_crawler_metrics(CrawlerNameList=[CURATED_CRAWLER])["CrawlerMetricsList"]
    assert metrics[0]["TablesCreated"] == 3
    # a scheduled run while one is running is recorded FAILED, as Glue records it
    busy = glue.start_job_run(JobName=JOB)["JobRunId"]
    later = engine.triggers.next_fire_times()[ETL_TRIGGER]
    assert engine.triggers.fire_due(now=later) == [ETL_TRIGGER]
    refused = glue.get_job_runs(JobName=JOB)["JobRuns"][0]
    assert refused["TriggerName"] == ETL_TRIGGER and refused["JobRunState"] == "FAILED"
    assert "Max concurrent runs exceeded" in refused["ErrorMessage"]
    _states(settings, busy)


def test_no_raw_data_yet_is_a_successful_run_that_does_nothing(settings: Settings, spark: Any,
                                                               tmp_path: Path) -> None:
    from processing.glue_etl import main as job_main

    # the script itself, as Glue calls it (an hourly trigger before any device has sent data)
    source, target = (tmp_path / "raw").as_uri() + "/", (tmp_path / "curated").as_uri() + "/"
    argv = ["glue_etl.py", "--JOB_NAME", JOB, "--JOB_RUN_ID", "jr_empty", "--source_uri", source, "--target_uri", target]
    assert job_main(argv) == 0
    summary = (tmp_path / "curated" / "_runs" / JOB / "jr_empty.json").read_text()
    assert '"objects_total": 0' in summary and '"read": 0' in summary
    # and through the Glue API
    glue = get_client("glue", settings)
    run, _ = _states(settings, glue.start_job_run(JobName=JOB)["JobRunId"])
    assert run["JobRunState"] == "SUCCEEDED"


def test_the_service_stops_only_the_runs_it_executes(settings: Settings) -> None:
    """At shutdown the Glue service stops its own runs; a run another process executes (``aircast lake etl``
    in-process, recorded in the same history) is that process's to finish."""
    from infra.local.glue.service import _stop_runs

    engine = process_engine(glue_config(settings))
    elsewhere = {"Id": "jr_" + "e" * 64, "Attempt": 0, "JobName": JOB, "JobRunState": "RUNNING",
                 "StartedOn": "2026-12-01T00:00:00+00:00", "Arguments": {}}
    with engine.store.transaction() as db:
        engine.store.insert_run(db, elsewhere)  # owned by this (live) process, not run by the engine's threads
    _stop_runs(engine, wait_s=0.1)
    run = get_client("glue", settings).get_job_run(JobName=JOB, RunId=elsewhere["Id"])["JobRun"]
    assert run["JobRunState"] == "RUNNING"


def test_a_run_that_arrives_during_the_warm_up_cuts_it_short(settings: Settings, spark: Any) -> None:
    """The service's warm-up never holds a run back: the run cancels the pass in flight and starts."""
    import threading

    from infra.local.glue.jobs import warm_up
    from infra.local.glue.session import WARMUP_JOB_GROUP, WarmSession

    config = glue_config(settings.replace(glue_warmup=True))
    lines: list[str] = []
    in_pass = threading.Event()

    def warmup(session: Any, stop: threading.Event) -> None:
        in_pass.set()
        # a pass that would run for minutes, in the warm-up's job group (as warm_up's passes are)...
        session.sparkContext.setJobGroup(WARMUP_JOB_GROUP, "warm-up", True)
        try:
            session.range(0, 10**11, numPartitions=2).selectExpr("sum(id * id)").collect()
        finally:
            session.sparkContext.setLocalProperty("spark.jobGroup.id", None)
        # ...then the real warm-up's passes, which must see the stop and not start
        warm_up(session, config, lines.append, stop)

    warm = WarmSession({}, warmup)
    warm.start()
    assert in_pass.wait(120)
    time.sleep(1.0)  # the long job is running
    asked = time.monotonic()
    assert warm.get() is spark
    assert time.monotonic() - asked < 1  # the run does not wait for the warm-up to return
    while warm.stats()["state"] != "ready" and time.monotonic() - asked < 15:  # its job is cancelled
        time.sleep(0.1)
    stats = warm.stats()
    assert stats["state"] == "ready" and stats.get("warmup_cut_short") is True and "warmup_error" not in stats
    assert lines == []  # told to stop before its first pass, the real warm-up started none
    assert spark.range(5).count() == 5  # the session serves the run
    # a run in the session after the cancelled warm-up works
    write_object(settings, [seed(T0, 1, 2, 3, 4, 5)], T0)
    assert run_etl_job(settings)["written"] == 1


def test_a_run_that_arrives_before_the_warm_up_began_skips_it(spark: Any) -> None:
    from infra.local.glue.session import WarmSession

    calls: list[str] = []
    warm = WarmSession({}, lambda session, stop: calls.append("warm-up"))
    warm.stop_warmup.set()  # what get() does when a run arrives while the JVM starts
    warm.start()
    assert warm.get() is spark
    assert calls == [] and warm.stats()["state"] == "ready" and warm.stats()["warmup_cut_short"] is True


def test_the_warm_up_starts_as_soon_as_the_session_has(spark: Any) -> None:
    """No idle delay first: the demo's first run comes ~10 s after the stack starts, and even a warm-up
    that run cuts short leaves it the JVM's compiled code; a warm-up that waited gave it nothing."""
    import threading

    from infra.local.glue.session import WarmSession

    began = threading.Event()
    release = threading.Event()

    def warmup(session: Any, stop: threading.Event) -> None:
        began.set()
        release.wait(30)

    warm = WarmSession({}, warmup)
    warm.start()
    assert began.wait(30)  # nobody asked for the session: the warm-up runs on its own
    assert warm.stats()["state"] == "warming"
    release.set()
    stats = wait_until(lambda: (s := warm.stats())["state"] != "warming" and s, 30, what="the warm-up's end")
    assert stats["state"] == "ready" and "warmup_cut_short" not in stats


def test_a_warm_up_busy_in_the_driver_stops_at_its_next_call_when_a_run_arrives(spark: Any) -> None:
    """Cancelling Spark jobs does not reach a job script's driver-side work (analysing its DataFrames,
    planning, compiling: seconds on a cold JVM, on the run's cores). The warm-up's own next call into
    the JVM is refused instead, and other threads' calls pass."""
    import threading

    from infra.local.glue.session import JvmCallsStopped, WarmSession

    calls = 0
    raised: list[BaseException] = []

    def warmup(session: Any, stop: threading.Event) -> None:
        nonlocal calls
        jvm = session.sparkContext._jvm
        try:
            while True:  # driver-side work that never looks at ``stop``, one JVM call after another
                jvm.java.lang.System.nanoTime()
                calls += 1
        except BaseException as exc:
            raised.append(exc)
            raise

    warm = WarmSession({}, warmup)
    warm.start()
    wait_until(lambda: calls >= 50, 60, what="the warm-up's calls into the JVM")
    assert warm.get() is spark
    stats = wait_until(lambda: (s := warm.stats())["state"] == "ready" and s, 10, what="the warm-up's end")
    assert stats["state"] == "ready" and stats.get("warmup_cut_short") is True and "warmup_error" not in stats
    assert len(raised) == 1 and isinstance(raised[0], JvmCallsStopped)
    assert spark.sparkContext._jvm.java.lang.System.nanoTime() > 0  # this thread's calls pass, as the run's do
    done: list[int] = []
    other = threading.Thread(target=lambda: done.append(spark.range(3).count()))
    other.start()
    other.join(60)
    assert done == [3]


def test_a_run_that_waits_too_long_fails_as_on_glue(lake: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Glue retries a WAITING run for at most 15 minutes (or 10 attempts), then the run is FAILED
    ("Job run statuses"); locally a queue behind a long run does not grow without end."""
    from infra.local.glue import jobs

    monkeypatch.setattr(jobs, "WAITING_LIMIT_S", 0.3)  # 15 minutes, shortened for the test
    glue = get_client("glue", lake)
    first = glue.start_job_run(JobName=JOB)["JobRunId"]
    queued = glue.start_job_run(JobName=JOB, JobRunQueuingEnabled=True)["JobRunId"]
    failed, states = _states(lake, queued)
    assert failed["JobRunState"] == "FAILED" and states[-1] == "FAILED" and "RUNNING" not in states
    assert failed["ErrorMessage"].startswith(f"Concurrent runs exceeded for {JOB}") and "WAITING" in failed["ErrorMessage"]
    assert "StateDetail" not in failed and failed["CompletedOn"] >= failed["StartedOn"]
    assert glue.get_job_run(JobName=JOB, RunId=first)["JobRun"]["JobRunState"] in ("STARTING", "RUNNING")
    assert _states(lake, first)[0]["JobRunState"] == "SUCCEEDED"  # the run it waited behind is untouched


def test_a_stop_ends_a_run_busy_in_the_driver(lake: Settings, tmp_path: Path) -> None:
    """BatchStopJobRun stops the run, not only its Spark jobs: a script busy in the driver (one call into
    Spark after another, no job to cancel) ends STOPPED, and the session serves the next run."""
    from dataclasses import replace

    from infra.local.core.botoclient import local_client
    from infra.local.glue.client import LocalGlueClient

    script = tmp_path / "busy_driver.py"
    script.write_text(
        "from pyspark.sql import SparkSession\n\n\n"
        "def main(argv):\n"
        "    jvm = SparkSession.builder.getOrCreate().sparkContext._jvm\n"
        "    print('busy in the driver')\n"
        "    while True:\n"
        "        jvm.java.lang.System.nanoTime()\n"
    )
    config = glue_config(lake)
    busy = replace(config.jobs[0], name="busy-driver", script_location=str(script))
    config = replace(config, jobs=(*config.jobs, busy))
    glue = local_client("glue", LocalGlueClient(config), region=lake.region)
    run_id = glue.start_job_run(JobName="busy-driver")["JobRunId"]
    wait_until(lambda: glue.get_job_run(JobName="busy-driver", RunId=run_id)["JobRun"]["JobRunState"] == "RUNNING",
               120, what="the busy run RUNNING")
    time.sleep(1.0)  # in its loop
    glue.batch_stop_job_run(JobName="busy-driver", JobRunIds=[run_id])
    process_engine(config).jobs.wait(run_id, 30)
    run = glue.get_job_run(JobName="busy-driver", RunId=run_id)["JobRun"]
    assert run["JobRunState"] == "STOPPED", run["JobRunState"]
    counts = run_etl_job(lake)
    assert (counts["read"], counts["written"]) == (6, 2)

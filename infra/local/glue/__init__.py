"""Glue stand-in: the Data Catalog (JSON files), the crawler, and the ETL job on local Spark.

The API the CLI and the demo call::

    run_crawler(settings) -> dict           # table raw_telemetry, partitions, added/changed columns
    run_etl_job(settings, spark=None) -> dict  # the job run's counts (read/written/duplicate/quarantined...)
    get_spark()                              # the process's quiet local[*] session
"""

from __future__ import annotations

from typing import Any

from aircast.settings import Settings
from infra.local.glue.crawler import NoRawDataError, require_raw_data, run_crawler
from infra.local.glue.session import get_spark


class JobRunFailed(RuntimeError):
    """The ETL job run ended FAILED; the message is the run's ErrorMessage."""

    def __init__(self, run: dict[str, Any]) -> None:
        super().__init__(f"job run {run['Id']} FAILED: {run.get('ErrorMessage', '?')}")
        self.run = run


def run_etl_job(settings: Settings, spark: Any = None, arguments: dict[str, str] | None = None) -> dict[str, Any]:
    """Start the ETL job run on local Spark and return its counts (plus ``job_run_id``, ``duration_s``).

    Raises ``NoRawDataError`` before starting Spark when the lake has no raw objects,
    and ``JobRunFailed`` when the run fails (it is recorded either way).
    """
    from infra.local.glue.catalog import LocalGlueClient

    require_raw_data(settings)
    glue = LocalGlueClient(settings, spark=spark)
    run_id = glue.start_job_run(JobName=settings.glue_job_name, Arguments=arguments or {})["JobRunId"]
    run = glue.job_run_record(JobName=settings.glue_job_name, RunId=run_id)
    if run["JobRunState"] != "SUCCEEDED":
        raise JobRunFailed(run)
    return {**run["Counts"], "job_run_id": run_id, "duration_s": run["DurationSeconds"]}


__all__ = ["JobRunFailed", "NoRawDataError", "get_spark", "run_crawler", "run_etl_job"]

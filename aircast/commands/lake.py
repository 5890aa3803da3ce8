"""`aircast lake ...`: the Glue crawler, the Glue ETL job and SQL over the curated lake (DuckDB as Athena)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aircast.cli import add_group
from aircast.glue import RAW_CRAWLER
from aircast.lake_paths import CURATED_TABLES, curated_uri, local_curated_dir
from aircast.output import CommandError, UsageError, print_csv, print_json, print_kv, print_table
from aircast.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `lake` command group."""
    group = add_group(sub, "lake", "the data lake: Glue crawler, Glue ETL job (Spark), SQL over curated parquet")

    crawl = group.add_parser("crawl", help=f"run the Glue crawler {RAW_CRAWLER}: raw/telemetry/ into table "
                                           "raw_telemetry")
    crawl.add_argument("--json", action="store_true", help="print the Glue Table (GetTable shape) and the crawl as JSON")
    crawl.set_defaults(func=cmd_crawl)

    etl = group.add_parser("etl", help="run the Glue ETL job (raw → curated readings/hourly/quarantine) and wait, "
                                       "showing its progress: on the local Glue service's warm Spark session while "
                                       "the stack is up, else in this process")
    etl.add_argument("--json", action="store_true", help="print the run's counts as JSON")
    etl.add_argument("--queue", action="store_true",
                     help="if a run is in progress, wait in WAITING behind it (Glue job run queuing) instead of "
                          "being refused")
    etl.add_argument("--no-wait", action="store_true", help="start the run and print its id without waiting")
    etl.set_defaults(func=cmd_etl)

    runs = group.add_parser("runs", help="the ETL job's runs, newest first, with their counts (like glue "
                                         "get-job-runs)")
    runs.add_argument("--limit", type=_positive, default=20, help="how many runs (default 20)")
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(func=cmd_runs)

    query = group.add_parser("query", help="SQL over the curated lake (tables readings, hourly, quarantine)")
    query.add_argument("sql", help='e.g. "SELECT pollutant, avg(mean) FROM hourly GROUP BY 1"')
    fmt = query.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="rows as a JSON list of objects")
    fmt.add_argument("--csv", action="store_true", help="rows as CSV with a header line")
    query.set_defaults(func=cmd_query)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _local_only(settings: Settings, what: str) -> None:
    if settings.backend != "local":
        raise UsageError(f"`aircast lake {what}` runs on the local backend; on AWS use the Glue crawler/job "
                           "and Athena that infra/aws provisions")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _require_raw_data(settings: Settings) -> None:
    from aircast.glue import NoRawDataError, require_raw_data

    if settings.backend == "local":
        try:
            require_raw_data(settings)
        except NoRawDataError as exc:
            raise CommandError(str(exc)) from None


def _where(settings: Settings) -> str:
    from aircast.glue import service_running

    if settings.backend == "aws":
        return "AWS Glue"
    if service_running(settings):
        return "the local Glue service (warm Spark session)"
    return "local Spark in this process (the local stack is down: `aircast local up` keeps a warm session)"


def cmd_crawl(args: argparse.Namespace, settings: Settings) -> int:
    from botocore.exceptions import ClientError

    from aircast.clients import get_client
    from aircast.glue import RAW_CRAWLER, CrawlFailed, run_crawler

    _require_raw_data(settings)
    glue = get_client("glue", settings)
    table_name = "raw_telemetry"
    if not args.json:
        _say(f"crawler {RAW_CRAWLER} on {_where(settings).split(' (')[0]} ...")
    try:
        crawl = run_crawler(settings, RAW_CRAWLER, progress=None if args.json else _say)
        table = glue.get_table(DatabaseName=settings.glue_database, Name=table_name)["Table"]
        partitions = glue.get_partitions(DatabaseName=settings.glue_database, TableName=table_name)["Partitions"]
    except CrawlFailed as exc:
        raise CommandError(str(exc)) from None
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "CrawlerRunningException":
            raise CommandError(f"crawler {RAW_CRAWLER} is already running; wait for it (it ends READY) and run "
                               "`aircast lake crawl` again if you need a new crawl") from None
        raise
    if args.json:
        print_json({"table": table, "partitions": len(partitions), "crawler": crawl["crawler"],
                    "metrics": crawl["metrics"], "log": crawl["log"]})
        return 0
    metrics = crawl["metrics"]
    params = table.get("Parameters", {})
    print_kv({
        "table": f"{table['DatabaseName']}.{table['Name']}",
        "location": table["StorageDescriptor"]["Location"],
        "crawl": f"{crawl['crawler']['LastCrawl']['Status']} in {metrics.get('LastRuntimeSeconds', 0):.1f} s "
                 f"(tables created {metrics.get('TablesCreated', 0)}, updated {metrics.get('TablesUpdated', 0)})",
        "objects": params.get("objectCount", "-"),
        "records": params.get("recordCount", "-"),
        "partitions": f"{len(partitions)} ({', '.join(k['Name'] for k in table['PartitionKeys'])})",
    })
    print()
    print_table(table["StorageDescriptor"]["Columns"], ["Name", "Type"])
    return 0


def cmd_etl(args: argparse.Namespace, settings: Settings) -> int:
    from botocore.exceptions import ClientError

    from aircast.clients import get_client
    from aircast.glue import JobRunFailed, run_etl_job

    _require_raw_data(settings)
    glue = get_client("glue", settings)
    if args.no_wait:
        request = {"JobName": settings.glue_job_name, **({"JobRunQueuingEnabled": True} if args.queue else {})}
        try:
            run_id = glue.start_job_run(**request)["JobRunId"]
        except ClientError as exc:
            raise _concurrent(exc, glue, settings) from None
        print_json({"JobRunId": run_id}) if args.json else print(f"started Glue job run {run_id}")
        return 0
    _say(f"job {settings.glue_job_name} on {_where(settings)} ...")
    try:
        counts = run_etl_job(settings, progress=_say, queue=args.queue)
    except ClientError as exc:
        raise _concurrent(exc, glue, settings) from None
    except JobRunFailed as exc:
        raise CommandError(f"{exc} (details: aircast lake runs; the run's log: CloudWatch Logs "
                           "/aws-glue/jobs/error)") from None
    if args.json:
        print_json(counts)
    else:
        print_kv({k: (", ".join(v) if isinstance(v, list) else v) for k, v in counts.items()})
    return 0


def _concurrent(exc: Exception, glue: Any, settings: Settings) -> Exception:
    """A clear line for Glue's refusal of a second concurrent run (other errors pass through)."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    if code != "ConcurrentRunsExceededException":
        return exc
    runs = glue.get_job_runs(JobName=settings.glue_job_name, MaxResults=10)["JobRuns"]
    active = [r for r in runs if r["JobRunState"] in ("WAITING", "STARTING", "RUNNING", "STOPPING")]
    which = (f" (run {active[0]['Id'][:12]}… is {active[0]['JobRunState']} since "
             f"{active[0]['StartedOn']:%H:%M:%S})") if active else ""
    return CommandError(f"job {settings.glue_job_name} is already running{which} and allows one run at a time "
                        "(MaxConcurrentRuns 1): wait for it (`aircast lake runs`) or add --queue to run after it")


def cmd_runs(args: argparse.Namespace, settings: Settings) -> int:
    from aircast.clients import get_client
    from aircast.glue import run_summary

    glue = get_client("glue", settings)
    runs: list[dict[str, Any]] = []
    request: dict[str, Any] = {"JobName": settings.glue_job_name, "MaxResults": min(args.limit, 200)}
    while len(runs) < args.limit:
        page = glue.get_job_runs(**request)
        runs += page["JobRuns"]
        if not page.get("NextToken"):
            break
        request["NextToken"] = page["NextToken"]
    runs = runs[: args.limit]
    for run in runs:
        run["Counts"] = run_summary(settings, run) if run["JobRunState"] == "SUCCEEDED" else None
    if args.json:
        print_json(runs)
        return 0
    rows = [{
        "id": r["Id"][:20] + "…", "state": r["JobRunState"], "started": f"{r['StartedOn']:%Y-%m-%d %H:%M:%S}",
        "seconds": (r["Counts"] or {}).get("duration_s", r.get("ExecutionTime")), "trigger": r.get("TriggerName"),
        **{k: (r["Counts"] or {}).get(k) for k in ("read", "written", "duplicate", "quarantined")},
        "error": r.get("ErrorMessage"),
    } for r in runs]
    print_table(rows, empty=f"no runs of job {settings.glue_job_name} yet (aircast lake etl)")
    return 0


def sql_string(text: str) -> str:
    """``text`` as an SQL string literal (a data dir may hold a quote: ``/home/o'brien/.aircast``)."""
    return "'" + text.replace("'", "''") + "'"


def curated_views(settings: Settings) -> dict[str, str]:
    """``{table: parquet glob}`` for every curated table that has files."""
    views = {}
    for table in CURATED_TABLES:
        folder = local_curated_dir(settings, table)
        if any(folder.glob("dt=*/*.parquet")):
            views[table] = str(folder / "*" / "*.parquet")
    return views


def connect(settings: Settings) -> Any:
    """A DuckDB connection with the curated tables as views; CommandError when the lake is empty."""
    import duckdb

    views = curated_views(settings)
    if not views:
        _require_raw_data(settings)
        raise CommandError(f"no curated data under {curated_uri(settings)} ({local_curated_dir(settings)}): "
                           "run `aircast lake etl` first")
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    for table, glob in views.items():
        # dt stays a string, as the catalog declares the partition key.
        con.execute(
            f"CREATE VIEW {table} AS SELECT * FROM read_parquet({sql_string(glob)}, hive_partitioning = true, "
            "hive_types_autocast = false, union_by_name = true)"
        )
    return con


def run_query(settings: Settings, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``sql`` over the curated lake; DuckDB errors become CommandError with DuckDB's message."""
    import duckdb

    con = connect(settings)
    try:
        cursor = con.execute(sql)
        if cursor.description is None:
            return [], []
        columns = [d[0] for d in cursor.description]
        return columns, cursor.fetchall()
    except duckdb.Error as exc:
        raise CommandError(f"query failed: {exc}") from None
    finally:
        con.close()


def cmd_query(args: argparse.Namespace, settings: Settings) -> int:
    _local_only(settings, "query")
    columns, rows = run_query(settings, args.sql)
    records = [dict(zip(columns, row, strict=False)) for row in rows]
    if args.json:
        print_json(records)
    elif args.csv:
        print_csv(records, columns)
    else:
        print_table(records, columns, empty="(no rows)")
    return 0

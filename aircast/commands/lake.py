"""`aircast lake ...`: the Glue crawler, the Glue ETL job and SQL over the curated lake (DuckDB as Athena)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from aircast.cli import add_group
from aircast.lake_paths import CURATED_TABLES, curated_uri, local_curated_dir
from aircast.output import CommandError, UsageError, print_csv, print_json, print_kv, print_table
from aircast.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `lake` command group."""
    group = add_group(sub, "lake", "the data lake: Glue crawler, Glue ETL job (Spark), SQL over curated parquet")

    crawl = group.add_parser("crawl", help="infer raw/telemetry/ into the catalog table raw_telemetry")
    crawl.add_argument("--json", action="store_true", help="print the Glue Table (GetTable shape) as JSON")
    crawl.set_defaults(func=cmd_crawl)

    etl = group.add_parser("etl", help="run the Glue ETL job on local Spark: raw → curated readings/hourly/quarantine")
    etl.add_argument("--json", action="store_true", help="print the run's counts as JSON")
    etl.set_defaults(func=cmd_etl)

    runs = group.add_parser("runs", help="the ETL job's runs, newest first (like glue get-job-runs)")
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(func=cmd_runs)

    query = group.add_parser("query", help="SQL over the curated lake (tables readings, hourly, quarantine)")
    query.add_argument("sql", help='e.g. "SELECT pollutant, avg(mean) FROM hourly GROUP BY 1"')
    fmt = query.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="rows as a JSON list of objects")
    fmt.add_argument("--csv", action="store_true", help="rows as CSV with a header line")
    query.set_defaults(func=cmd_query)


def _local_only(settings: Settings, what: str) -> None:
    if settings.backend != "local":
        raise UsageError(f"`aircast lake {what}` runs on the local backend; on AWS use the Glue crawler/job "
                           "and Athena that infra/aws provisions")


def cmd_crawl(args: argparse.Namespace, settings: Settings) -> int:
    _local_only(settings, "crawl")
    from infra.local.glue import NoRawDataError, run_crawler

    try:
        result = run_crawler(settings)
    except NoRawDataError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print_json(result)
        return 0
    table = result["table"]
    print_kv({
        "table": f"{table['DatabaseName']}.{table['Name']}",
        "location": table["StorageDescriptor"]["Location"],
        "objects": result["objects"],
        "records": result["records"],
        "unparsable lines": result["unparsable"],
        "partitions": f"{result['partitions']} ({', '.join(k['Name'] for k in table['PartitionKeys'])})",
        "new columns": ", ".join(result["added"]) or "-",
        "changed types": ", ".join(result["changed"]) or "-",
    })
    print()
    print_table(table["StorageDescriptor"]["Columns"], ["Name", "Type"])
    return 0


def cmd_etl(args: argparse.Namespace, settings: Settings) -> int:
    if settings.backend == "aws":
        from aircast.clients import get_client

        run_id = get_client("glue", settings).start_job_run(JobName=settings.glue_job_name)["JobRunId"]
        print_json({"JobRunId": run_id}) if args.json else print(f"started Glue job run {run_id}")
        return 0
    from infra.local.glue import JobRunFailed, NoRawDataError, run_etl_job

    print("starting local Spark and the ETL job ...", file=sys.stderr, flush=True)
    try:
        counts = run_etl_job(settings)
    except NoRawDataError as exc:
        raise CommandError(str(exc)) from None
    except JobRunFailed as exc:
        raise CommandError(f"{exc} (details: aircast lake runs --json)") from None
    if args.json:
        print_json(counts)
    else:
        print_kv({k: (", ".join(v) if isinstance(v, list) else v) for k, v in counts.items()})
    return 0


def cmd_runs(args: argparse.Namespace, settings: Settings) -> int:
    from aircast.clients import get_client

    if settings.backend == "local":  # the local runs also keep the job's counts
        from infra.local.glue.catalog import LocalGlueClient

        runs = LocalGlueClient(settings).job_run_records(settings.glue_job_name)
    else:
        runs = get_client("glue", settings).get_job_runs(JobName=settings.glue_job_name)["JobRuns"]
    if args.json:
        print_json(runs)
        return 0
    rows = [{
        "id": r["Id"][:20] + "…", "state": r["JobRunState"], "started": r["StartedOn"],
        "seconds": r.get("DurationSeconds", r.get("ExecutionTime")),
        **{k: (r.get("Counts") or {}).get(k) for k in ("read", "written", "duplicate", "quarantined")},
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

    from infra.local.glue import NoRawDataError, require_raw_data

    views = curated_views(settings)
    if not views:
        try:
            require_raw_data(settings)
        except NoRawDataError as exc:
            raise CommandError(str(exc)) from None
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

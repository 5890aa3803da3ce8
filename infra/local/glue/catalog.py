"""Glue stand-in: the Data Catalog as JSON files, and job runs of the ETL script on local Spark.

``LocalGlueClient(settings)`` offers the boto3 Glue calls aircast uses, with
boto3's request and response shapes; errors are botocore ``ClientError``s with
Glue's codes (``EntityNotFoundException``, ``AlreadyExistsException``), so
callers have one path for both backends.

Layout under ``<data_dir>/glue/``::

    catalog/<database>/database.json
    catalog/<database>/tables/<table>.json          # Glue ``Table`` (GetTable shape)
    catalog/<database>/partitions/<table>.json      # list of Glue ``Partition``
    jobs/<job>/runs/<run id>.json                   # Glue ``JobRun`` (+ local ``Counts``)
"""

from __future__ import annotations

import datetime as dt
import json
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from aircast.settings import Settings
from infra.local.core.errors import ServiceError
from infra.local.s3 import atomic_write_bytes, uri_to_path

#: The job script, as the Glue job's ScriptLocation would name it.
SCRIPT = Path(__file__).resolve().parents[3] / "processing" / "glue_etl.py"


def _error(code: str, message: str, operation: str) -> ServiceError:
    return ServiceError(code, message, 400, operation)


_LOCAL_RUN_KEYS = ("Counts", "DurationSeconds", "ErrorDetail")


def _as_job_run(record: dict[str, Any]) -> dict[str, Any]:
    """A stored run as Glue's ``JobRun`` (without the local bookkeeping)."""
    return {k: v for k, v in record.items() if k not in _LOCAL_RUN_KEYS}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _read(path: Path) -> Any:
    return json.loads(path.read_text())


def _write(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode(), fsync=False)


class LocalGlueClient:
    """The subset of ``boto3.client("glue")`` aircast uses, over JSON files and local Spark."""

    def __init__(self, settings: Settings, spark: Any = None) -> None:
        self.settings = settings
        self.root = settings.data_dir / "glue"
        self._spark = spark

    # ---- databases -------------------------------------------------------------
    def _db_dir(self, name: str) -> Path:
        return self.root / "catalog" / name

    def create_database(self, DatabaseInput: dict[str, Any], **_: Any) -> dict[str, Any]:
        path = self._db_dir(DatabaseInput["Name"]) / "database.json"
        if path.exists():
            raise _error("AlreadyExistsException", f"Database {DatabaseInput['Name']} already exists.", "CreateDatabase")
        _write(path, {**DatabaseInput, "CreateTime": _now(), "CatalogId": self.settings.account_id})
        return {}

    def get_database(self, Name: str, **_: Any) -> dict[str, Any]:
        path = self._db_dir(Name) / "database.json"
        if not path.exists():
            raise _error("EntityNotFoundException", f"Database {Name} not found.", "GetDatabase")
        return {"Database": _read(path)}

    def get_databases(self, **_: Any) -> dict[str, Any]:
        base = self.root / "catalog"
        dbs = sorted(base.glob("*/database.json")) if base.exists() else []
        return {"DatabaseList": [_read(p) for p in dbs]}

    def ensure_database(self, name: str) -> None:
        """Create the database if it is missing (what the crawler's configuration does)."""
        try:
            self.create_database(DatabaseInput={"Name": name, "Description": "aircast lake"})
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "AlreadyExistsException":
                raise

    # ---- tables ------------------------------------------------------------------
    def _table_path(self, database: str, name: str) -> Path:
        return self._db_dir(database) / "tables" / f"{name}.json"

    def _need_db(self, database: str, operation: str) -> None:
        if not (self._db_dir(database) / "database.json").exists():
            raise _error("EntityNotFoundException", f"Database {database} not found.", operation)

    def create_table(self, DatabaseName: str, TableInput: dict[str, Any], **_: Any) -> dict[str, Any]:
        self._need_db(DatabaseName, "CreateTable")
        path = self._table_path(DatabaseName, TableInput["Name"])
        if path.exists():
            raise _error("AlreadyExistsException", f"Table {TableInput['Name']} already exists.", "CreateTable")
        now = _now()
        _write(path, {**TableInput, "DatabaseName": DatabaseName, "CreateTime": TableInput.get("CreateTime", now),
                      "UpdateTime": now, "VersionId": TableInput.get("VersionId", "1"),
                      "CatalogId": self.settings.account_id})
        return {}

    def update_table(self, DatabaseName: str, TableInput: dict[str, Any], **_: Any) -> dict[str, Any]:
        path = self._table_path(DatabaseName, TableInput["Name"])
        if not path.exists():
            raise _error("EntityNotFoundException", f"Table {TableInput['Name']} not found.", "UpdateTable")
        old = _read(path)
        version = str(int(old.get("VersionId", "1")) + 1)
        _write(path, {**TableInput, "DatabaseName": DatabaseName, "CreateTime": old["CreateTime"],
                      "UpdateTime": _now(), "VersionId": version, "CatalogId": self.settings.account_id})
        return {}

    def get_table(self, DatabaseName: str, Name: str, **_: Any) -> dict[str, Any]:
        self._need_db(DatabaseName, "GetTable")
        path = self._table_path(DatabaseName, Name)
        if not path.exists():
            raise _error("EntityNotFoundException", f"Table {Name} not found.", "GetTable")
        return {"Table": _read(path)}

    def get_tables(self, DatabaseName: str, **_: Any) -> dict[str, Any]:
        self._need_db(DatabaseName, "GetTables")
        tables = sorted((self._db_dir(DatabaseName) / "tables").glob("*.json"))
        return {"TableList": [_read(p) for p in tables]}

    def delete_table(self, DatabaseName: str, Name: str, **_: Any) -> dict[str, Any]:
        path = self._table_path(DatabaseName, Name)
        if not path.exists():
            raise _error("EntityNotFoundException", f"Table {Name} not found.", "DeleteTable")
        path.unlink()
        (self._db_dir(DatabaseName) / "partitions" / f"{Name}.json").unlink(missing_ok=True)
        return {}

    def put_table(self, database: str, table: dict[str, Any]) -> None:
        """Create or update (the crawler's and the job's catalog update)."""
        try:
            self.get_table(DatabaseName=database, Name=table["Name"])
        except ClientError:
            self.create_table(DatabaseName=database, TableInput=table)
        else:
            self.update_table(DatabaseName=database, TableInput=table)

    # ---- partitions -----------------------------------------------------------------
    def _partitions_path(self, database: str, table: str) -> Path:
        return self._db_dir(database) / "partitions" / f"{table}.json"

    def batch_create_partition(self, DatabaseName: str, TableName: str,
                               PartitionInputList: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        self.get_table(DatabaseName=DatabaseName, Name=TableName)
        path = self._partitions_path(DatabaseName, TableName)
        current = _read(path) if path.exists() else []
        have = {tuple(p["Values"]) for p in current}
        errors = []
        for part in PartitionInputList:
            if tuple(part["Values"]) in have:
                errors.append({"PartitionValues": part["Values"], "ErrorDetail": {
                    "ErrorCode": "AlreadyExistsException", "ErrorMessage": "Partition already exists."}})
                continue
            have.add(tuple(part["Values"]))
            current.append({**part, "DatabaseName": DatabaseName, "TableName": TableName,
                            "CreationTime": part.get("CreationTime", _now())})
        current.sort(key=lambda p: p["Values"])
        _write(path, current)
        return {"Errors": errors} if errors else {}

    def get_partitions(self, DatabaseName: str, TableName: str, **_: Any) -> dict[str, Any]:
        self.get_table(DatabaseName=DatabaseName, Name=TableName)
        path = self._partitions_path(DatabaseName, TableName)
        return {"Partitions": _read(path) if path.exists() else []}

    # ---- jobs ---------------------------------------------------------------------------
    def _runs_dir(self, job: str) -> Path:
        return self.root / "jobs" / job / "runs"

    def get_job(self, JobName: str, **_: Any) -> dict[str, Any]:
        """The job definition (local: the ETL script on local Spark, Glue 5.0 semantics)."""
        return {"Job": {
            "Name": JobName, "Role": self.settings.role_arn, "GlueVersion": "5.0",
            "Command": {"Name": "glueetl", "ScriptLocation": str(SCRIPT), "PythonVersion": "3"},
            "DefaultArguments": self.default_arguments(JobName),
            "ExecutionProperty": {"MaxConcurrentRuns": 1},
        }}

    def default_arguments(self, job_name: str) -> dict[str, str]:
        lake = self.settings.lake_uri
        return {
            "--JOB_NAME": job_name,
            "--source_uri": f"{lake}/raw/telemetry/",
            "--target_uri": f"{lake}/curated/",
            "--database": self.settings.glue_database,
            "--job-bookmark-option": "job-bookmark-enable",
        }

    def _local_uri(self, uri: str) -> str:
        """``s3://bucket/key`` → ``file:///<data_dir>/s3/bucket/key`` (what local Spark reads)."""
        if uri.startswith("s3://"):
            path = uri_to_path(uri, self.settings.s3_root)
            return path.as_uri() + ("/" if uri.endswith("/") else "")
        return uri

    def start_job_run(self, JobName: str, Arguments: dict[str, str] | None = None, **_: Any) -> dict[str, Any]:
        """Run the job now, in this process, on local Spark; the run is recorded either way.

        Unlike Glue the call returns when the run has finished (SUCCEEDED or FAILED).
        """
        run_id = "jr_" + uuid.uuid4().hex + uuid.uuid4().hex
        args = {**self.default_arguments(JobName), **(Arguments or {})}
        run: dict[str, Any] = {
            "Id": run_id, "Attempt": 0, "JobName": JobName, "JobMode": "SCRIPT", "StartedOn": _now(),
            "LastModifiedOn": _now(), "JobRunState": "RUNNING", "Arguments": args, "GlueVersion": "5.0",
            "WorkerType": "G.1X", "NumberOfWorkers": 1, "ExecutionTime": 0,
        }
        path = self._runs_dir(JobName) / f"{run_id}.json"
        _write(path, run)
        started = time.monotonic()
        try:
            counts = self._execute(run_id, args)
        except Exception as exc:  # noqa: BLE001 — a failed run is recorded, as Glue does
            run.update(JobRunState="FAILED", ErrorMessage=str(exc).splitlines()[0] if str(exc) else repr(exc),
                       ErrorDetail=traceback.format_exc(limit=5))
        else:
            run.update(JobRunState="SUCCEEDED", Counts=counts)
        duration = time.monotonic() - started
        run.update(CompletedOn=_now(), LastModifiedOn=_now(), ExecutionTime=int(round(duration)),
                   DurationSeconds=round(duration, 3))
        _write(path, run)
        return {"JobRunId": run_id}

    def _execute(self, run_id: str, args: dict[str, str]) -> dict[str, Any]:
        from infra.local.glue.session import get_spark
        from processing.glue_etl import JobConfig, run_job

        spark = self._spark or get_spark()
        config = JobConfig(
            job_name=args["--JOB_NAME"], source_uri=self._local_uri(args["--source_uri"]),
            target_uri=self._local_uri(args["--target_uri"]), database=args.get("--database", "aircast"),
            bookmark_uri=self._local_uri(args.get("--bookmark_uri", "")), run_id=run_id,
        )
        counts = run_job(spark, config)
        if counts["objects_new"]:
            self.catalog_curated(config.database, args["--target_uri"])
        return counts

    def catalog_curated(self, database: str, target_uri: str) -> None:
        """Create/update the curated tables and their ``dt`` partitions (the job's catalog sink)."""
        from processing.glue_etl import table_schemas

        self.ensure_database(database)
        target = target_uri.rstrip("/")
        for name, columns in table_schemas().items():
            location = f"{target}/{name}/"
            table = {
                "Name": name, "TableType": "EXTERNAL_TABLE",
                "Parameters": {"classification": "parquet", "UPDATED_BY_JOB": self.settings.glue_job_name},
                "PartitionKeys": [{"Name": "dt", "Type": "string"}],
                "StorageDescriptor": {
                    "Columns": columns, "Location": location,
                    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                    "SerdeInfo": {"SerializationLibrary":
                                  "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"},
                    "Compressed": True,
                },
            }
            self.put_table(database, table)
            folder = uri_to_path(location, self.settings.s3_root)
            days = sorted(p.name[3:] for p in folder.glob("dt=*") if p.is_dir()) if folder.exists() else []
            if days:
                self.batch_create_partition(DatabaseName=database, TableName=name, PartitionInputList=[
                    {"Values": [d], "StorageDescriptor": {**table["StorageDescriptor"], "Location": f"{location}dt={d}/"}}
                    for d in days
                ])

    def job_run_record(self, JobName: str, RunId: str) -> dict[str, Any]:
        """Local only: the stored run, with what Glue does not return (``Counts``, ``DurationSeconds``)."""
        path = self._runs_dir(JobName) / f"{RunId}.json"
        if not path.exists():
            raise _error("EntityNotFoundException", f"Job run {RunId} of {JobName} not found.", "GetJobRun")
        return _read(path)

    def job_run_records(self, JobName: str) -> list[dict[str, Any]]:
        """Local only: every stored run of the job, newest first."""
        folder = self._runs_dir(JobName)
        runs = [_read(p) for p in folder.glob("*.json")] if folder.exists() else []
        return sorted(runs, key=lambda r: r["StartedOn"], reverse=True)

    def get_job_run(self, JobName: str, RunId: str, **_: Any) -> dict[str, Any]:
        return {"JobRun": _as_job_run(self.job_run_record(JobName, RunId))}

    def get_job_runs(self, JobName: str, MaxResults: int = 200, **_: Any) -> dict[str, Any]:
        """Runs of the job, newest first (as Glue lists them)."""
        return {"JobRuns": [_as_job_run(r) for r in self.job_run_records(JobName)[:MaxResults]]}

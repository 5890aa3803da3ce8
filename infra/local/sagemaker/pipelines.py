"""Local SageMaker Pipelines: pipelines, executions and step records in SQLite.

``PipelinesAPI`` (a mixin of ``LocalSageMakerClient``) offers the boto3 calls
aircast uses. ``start_pipeline_execution`` returns the execution ARN at once and
runs the execution in a detached ``python -m infra.local.sagemaker.pipelines``
process; :func:`run_execution` is the same run in this process (for a caller that shows
progress and waits).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sqlite3
import string
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.local.core.arns import pipeline_arn, pipeline_execution_arn
from infra.local.core.config import LocalConfig
from infra.local.core.errors import ServiceError
from infra.local.sagemaker.executor import PipelineExecutor
from infra.local.sagemaker.pipeline_definition import PipelineDefinitionError, resolve_parameters
from infra.local.sqlite import open_store
from infra.local.stack import python_module_argv

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pipelines (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    role_arn TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    display_name TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL,
    modified REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    arn TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    definition TEXT NOT NULL,
    parameters TEXT NOT NULL,
    status TEXT NOT NULL,
    display_name TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    failure_reason TEXT,
    pid INTEGER,
    created REAL NOT NULL,
    modified REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    execution_arn TEXT NOT NULL,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    status TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    metadata TEXT NOT NULL DEFAULT '{}',
    failure_reason TEXT,
    PRIMARY KEY (execution_arn, name)
);
"""

_ID_CHARS = string.ascii_lowercase + string.digits
_TERMINAL = ("Succeeded", "Failed", "Stopped")


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)


def db_path(config: LocalConfig) -> Path:
    return config.data_dir / "sagemaker" / "pipelines.sqlite"


@contextmanager
def connect(config: LocalConfig) -> Iterator[sqlite3.Connection]:
    with open_store(db_path(config), _SCHEMA) as db:
        yield db


def _load_definition(text: str, op: str) -> dict[str, Any]:
    try:
        definition = json.loads(text)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ServiceError.validation(f"PipelineDefinition is not valid JSON: {exc}", op) from exc
    if not isinstance(definition, dict) or not isinstance(definition.get("Steps"), list):
        raise ServiceError.validation("PipelineDefinition must be an object with a Steps list", op)
    return definition


def _parameter_list(values: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"Name": k, "Value": v if isinstance(v, str) else json.dumps(v)} for k, v in values.items()]


class _Recorder:
    """Writes step status changes of one execution to the store."""

    def __init__(self, config: LocalConfig, execution_arn: str) -> None:
        self.config, self.arn = config, execution_arn

    def step_started(self, step: str, step_type: str) -> None:
        with connect(self.config) as db:
            db.execute("INSERT OR REPLACE INTO steps (execution_arn, name, type, status, started) VALUES (?,?,?,?,?)",
                       (self.arn, step, step_type, "Executing", time.time()))

    def step_finished(self, step: str, status: str, metadata: dict[str, Any], failure_reason: str | None) -> None:
        with connect(self.config) as db:
            db.execute("UPDATE steps SET status=?, ended=?, metadata=?, failure_reason=? WHERE execution_arn=? "
                       "AND name=?", (status, time.time(), json.dumps(metadata, default=str), failure_reason,
                                     self.arn, step))


class PipelinesAPI:
    """Mixin of LocalSageMakerClient: the SageMaker Pipelines calls aircast uses."""

    config: LocalConfig  # set by LocalSageMakerClient.__init__

    def _pipeline_arn(self, name: str) -> str:
        return pipeline_arn(self.config.region, self.config.account_id, name)

    def _pipeline_row(self, db: sqlite3.Connection, name: str, op: str) -> sqlite3.Row:
        # accept a name or an ARN, as the API does
        key = name.rsplit("/", 1)[-1] if name.startswith("arn:") else name
        row = db.execute("SELECT * FROM pipelines WHERE lower(name)=lower(?)", (key,)).fetchone()
        if row is None:
            raise ServiceError.not_found("ResourceNotFound", f"Pipeline '{self._pipeline_arn(key)}' does not exist.",
                                         op)
        return row

    # ---- pipelines -----------------------------------------------------------------
    def create_pipeline(self, *, PipelineName: str, RoleArn: str, PipelineDefinition: str | None = None,
                        PipelineDescription: str = "", PipelineDisplayName: str = "",
                        Tags: list[dict[str, str]] | None = None, **_: Any) -> dict[str, Any]:
        op = "CreatePipeline"
        if PipelineDefinition is None:
            raise ServiceError.validation("PipelineDefinition is required locally", op)
        _load_definition(PipelineDefinition, op)
        now = time.time()
        with connect(self.config) as db:
            if db.execute("SELECT 1 FROM pipelines WHERE lower(name)=lower(?)", (PipelineName,)).fetchone():
                raise ServiceError.validation(f"Pipeline names must be unique within an AWS account and region. "
                                              f"Pipeline with name ({PipelineName}) already exists.", op)
            db.execute("INSERT INTO pipelines VALUES (?,?,?,?,?,?,?,?)",
                       (PipelineName, PipelineDefinition, RoleArn, PipelineDescription or "",
                        PipelineDisplayName or PipelineName, json.dumps(Tags or []), now, now))
        return {"PipelineArn": self._pipeline_arn(PipelineName)}

    def update_pipeline(self, *, PipelineName: str, PipelineDefinition: str | None = None, RoleArn: str | None = None,
                        PipelineDescription: str | None = None, PipelineDisplayName: str | None = None,
                        **_: Any) -> dict[str, Any]:
        op = "UpdatePipeline"
        if PipelineDefinition is not None:
            _load_definition(PipelineDefinition, op)
        with connect(self.config) as db:
            row = self._pipeline_row(db, PipelineName, op)
            db.execute("UPDATE pipelines SET definition=?, role_arn=?, description=?, display_name=?, modified=? "
                       "WHERE name=?",
                       (PipelineDefinition or row["definition"], RoleArn or row["role_arn"],
                        row["description"] if PipelineDescription is None else PipelineDescription,
                        PipelineDisplayName or row["display_name"], time.time(), row["name"]))
        return {"PipelineArn": self._pipeline_arn(row["name"])}

    def describe_pipeline(self, *, PipelineName: str, **_: Any) -> dict[str, Any]:
        with connect(self.config) as db:
            row = self._pipeline_row(db, PipelineName, "DescribePipeline")
        return {
            "PipelineArn": self._pipeline_arn(row["name"]), "PipelineName": row["name"],
            "PipelineDisplayName": row["display_name"], "PipelineDefinition": row["definition"],
            "PipelineDescription": row["description"], "RoleArn": row["role_arn"], "PipelineStatus": "Active",
            "CreationTime": _dt(row["created"]), "LastModifiedTime": _dt(row["modified"]),
        }

    def list_pipelines(self, *, PipelineNamePrefix: str | None = None, SortBy: str = "CreationTime",
                       SortOrder: str = "Descending", **_: Any) -> dict[str, Any]:
        with connect(self.config) as db:
            rows = db.execute("SELECT * FROM pipelines").fetchall()
        rows = [r for r in rows if not PipelineNamePrefix or r["name"].startswith(PipelineNamePrefix)]
        rows.sort(key=(lambda r: r["name"]) if SortBy == "Name" else (lambda r: r["created"]),
                  reverse=SortOrder == "Descending")
        return {"PipelineSummaries": [{
            "PipelineArn": self._pipeline_arn(r["name"]), "PipelineName": r["name"],
            "PipelineDisplayName": r["display_name"], "PipelineDescription": r["description"],
            "RoleArn": r["role_arn"], "CreationTime": _dt(r["created"]), "LastModifiedTime": _dt(r["modified"]),
        } for r in rows]}

    # ---- executions -----------------------------------------------------------------
    def create_pipeline_execution_record(self, PipelineName: str, PipelineParameters: list[dict[str, str]] | None,
                                         display_name: str = "", description: str = "") -> str:
        """Validate the parameters against the pipeline's current definition and record a new execution."""
        op = "StartPipelineExecution"
        overrides: dict[str, str] = {}
        for p in PipelineParameters or []:
            if "Name" not in p or "Value" not in p:
                raise ServiceError.validation(f"PipelineParameters entries need Name and Value: {p}", op)
            overrides[p["Name"]] = p["Value"]
        with connect(self.config) as db:
            row = self._pipeline_row(db, PipelineName, op)
            definition = json.loads(row["definition"])
            try:
                resolve_parameters(definition, overrides)
            except PipelineDefinitionError as exc:
                raise ServiceError.validation(str(exc), op) from exc
            exec_id = "".join(secrets.choice(_ID_CHARS) for _ in range(12))
            arn = pipeline_execution_arn(self.config.region, self.config.account_id, row["name"], exec_id)
            now = time.time()
            db.execute("INSERT INTO executions (arn, pipeline, definition, parameters, status, display_name, "
                       "description, created, modified) VALUES (?,?,?,?,?,?,?,?,?)",
                       (arn, row["name"], row["definition"], json.dumps(overrides), "Executing",
                        display_name or f"execution-{int(now * 1000)}", description, now, now))
        return arn

    def start_pipeline_execution(self, *, PipelineName: str, PipelineParameters: list[dict[str, str]] | None = None,
                                 PipelineExecutionDisplayName: str = "", PipelineExecutionDescription: str = "",
                                 **_: Any) -> dict[str, Any]:
        """Record the execution and run it in a detached process; return its ARN at once."""
        arn = self.create_pipeline_execution_record(PipelineName, PipelineParameters,
                                                    PipelineExecutionDisplayName, PipelineExecutionDescription)
        exec_dir = execution_dir(self.config, arn)
        exec_dir.mkdir(parents=True, exist_ok=True)
        repo_root = Path(__file__).resolve().parents[3]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(repo_root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        with open(exec_dir / "execution.log", "ab") as log:
            proc = subprocess.Popen(
                python_module_argv("infra.local.sagemaker.pipelines", self.config, "--execution-arn", arn),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=repo_root, env=env,
                start_new_session=True,  # outlives the caller (a CLI or an EventBridge target)
            )
        with connect(self.config) as db:
            db.execute("UPDATE executions SET pid=? WHERE arn=?", (proc.pid, arn))
        return {"PipelineExecutionArn": arn}

    def _execution_row(self, db: sqlite3.Connection, arn: str, op: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM executions WHERE arn=?", (arn,)).fetchone()
        if row is None:
            raise ServiceError.not_found("ResourceNotFound", f"Pipeline execution '{arn}' does not exist.", op)
        return row

    def describe_pipeline_execution(self, *, PipelineExecutionArn: str, **_: Any) -> dict[str, Any]:
        with connect(self.config) as db:
            row = self._execution_row(db, PipelineExecutionArn, "DescribePipelineExecution")
        out = {
            "PipelineArn": self._pipeline_arn(row["pipeline"]), "PipelineExecutionArn": row["arn"],
            "PipelineExecutionDisplayName": row["display_name"], "PipelineExecutionStatus": row["status"],
            "PipelineExecutionDescription": row["description"], "CreationTime": _dt(row["created"]),
            "LastModifiedTime": _dt(row["modified"]),
        }
        if row["failure_reason"]:
            out["FailureReason"] = row["failure_reason"]
        return out

    def list_pipeline_executions(self, *, PipelineName: str, SortBy: str = "CreationTime",
                                 SortOrder: str = "Descending", MaxResults: int = 100, **_: Any) -> dict[str, Any]:
        with connect(self.config) as db:
            pipeline = self._pipeline_row(db, PipelineName, "ListPipelineExecutions")["name"]
            rows = db.execute("SELECT * FROM executions WHERE pipeline=? ORDER BY created "
                              + ("DESC" if SortOrder == "Descending" else "ASC"), (pipeline,)).fetchall()
        summaries = []
        for r in rows[:MaxResults]:
            item = {"PipelineExecutionArn": r["arn"], "StartTime": _dt(r["created"]),
                    "PipelineExecutionStatus": r["status"], "PipelineExecutionDescription": r["description"],
                    "PipelineExecutionDisplayName": r["display_name"]}
            if r["failure_reason"]:
                item["PipelineExecutionFailureReason"] = r["failure_reason"]
            summaries.append(item)
        return {"PipelineExecutionSummaries": summaries}

    def describe_pipeline_definition_for_execution(self, *, PipelineExecutionArn: str) -> dict[str, Any]:
        """The definition this execution ran (it may differ from the pipeline's current one)."""
        with connect(self.config) as db:
            row = self._execution_row(db, PipelineExecutionArn, "DescribePipelineDefinitionForExecution")
        return {"PipelineDefinition": row["definition"], "CreationTime": _dt(row["created"])}

    def list_pipeline_execution_steps(self, *, PipelineExecutionArn: str, SortOrder: str = "Descending",
                                      **_: Any) -> dict[str, Any]:
        with connect(self.config) as db:
            self._execution_row(db, PipelineExecutionArn, "ListPipelineExecutionSteps")
            rows = db.execute("SELECT * FROM steps WHERE execution_arn=? ORDER BY started "
                              + ("DESC" if SortOrder == "Descending" else "ASC") + ", rowid "
                              + ("DESC" if SortOrder == "Descending" else "ASC"), (PipelineExecutionArn,)).fetchall()
        steps = []
        for r in rows:
            item = {"StepName": r["name"], "StepDisplayName": r["name"], "StartTime": _dt(r["started"]),
                    "StepStatus": r["status"], "Metadata": json.loads(r["metadata"] or "{}"), "AttemptCount": 1}
            if r["ended"] is not None:
                item["EndTime"] = _dt(r["ended"])
            if r["failure_reason"]:
                item["FailureReason"] = r["failure_reason"]
            steps.append(item)
        return {"PipelineExecutionSteps": steps}

    def list_pipeline_parameters_for_execution(self, *, PipelineExecutionArn: str, **_: Any) -> dict[str, Any]:
        with connect(self.config) as db:
            row = self._execution_row(db, PipelineExecutionArn, "ListPipelineParametersForExecution")
        values = resolve_parameters(json.loads(row["definition"]), json.loads(row["parameters"]))
        return {"PipelineParameters": _parameter_list(values)}

    def stop_pipeline_execution(self, *, PipelineExecutionArn: str, **_: Any) -> dict[str, Any]:
        """Stop a running execution: its process group is terminated and it is marked Stopped."""
        with connect(self.config) as db:
            row = self._execution_row(db, PipelineExecutionArn, "StopPipelineExecution")
            if row["status"] in _TERMINAL:
                raise ServiceError.validation(f"execution is already {row['status']}",
                                              "StopPipelineExecution")
            db.execute("UPDATE executions SET status='Stopped', modified=? WHERE arn=?",
                       (time.time(), PipelineExecutionArn))
        if row["pid"]:
            try:
                os.killpg(row["pid"], 15)  # the detached runner leads its own session
            except (ProcessLookupError, PermissionError):
                pass
        return {"PipelineExecutionArn": PipelineExecutionArn}


def execution_dir(config: LocalConfig, execution_arn: str) -> Path:
    return config.data_dir / "sagemaker" / "executions" / execution_arn.rsplit("/", 1)[-1]


def run_execution(config: LocalConfig, execution_arn: str,
                  progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run a recorded execution to its end in this process; return ``describe_pipeline_execution``."""
    from infra.local.core import local_client
    from infra.local.sagemaker.client import LocalSageMakerClient

    backend = LocalSageMakerClient(config)
    client = local_client("sagemaker", backend, region=config.region)
    with connect(config) as db:
        row = backend._execution_row(db, execution_arn, "RunPipelineExecution")
    executor = PipelineExecutor(
        json.loads(row["definition"]), json.loads(row["parameters"]), config=config,
        pipeline_name=row["pipeline"], execution_arn=execution_arn, recorder=_Recorder(config, execution_arn),
        sagemaker_client=client, work_dir=execution_dir(config, execution_arn), progress=progress,
    )
    try:
        result = executor.run()
        status, reason = result.status, result.failure_reason
    except Exception as exc:  # noqa: BLE001 - recorded as the execution's failure
        status, reason = "Failed", f"{type(exc).__name__}: {exc}"
    with connect(config) as db:
        # a stop request wins over the runner's own verdict
        current = db.execute("SELECT status FROM executions WHERE arn=?", (execution_arn,)).fetchone()["status"]
        if current != "Stopped":
            db.execute("UPDATE executions SET status=?, failure_reason=?, modified=? WHERE arn=?",
                       (status, reason, time.time(), execution_arn))
    return client.describe_pipeline_execution(PipelineExecutionArn=execution_arn)


def main(argv: list[str] | None = None) -> int:
    """Entry of the detached execution process."""
    parser = argparse.ArgumentParser(description="run one local pipeline execution")
    LocalConfig.add_arguments(parser)
    parser.add_argument("--execution-arn", required=True)
    args = parser.parse_args(argv)
    desc = run_execution(LocalConfig.from_arguments(args), args.execution_arn,
                         progress=lambda line: print(line, flush=True))
    print(json.dumps(desc, default=str), flush=True)
    return 0 if desc["PipelineExecutionStatus"] == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())

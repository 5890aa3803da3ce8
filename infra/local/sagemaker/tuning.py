"""Local SageMaker Automatic Model Tuning: hyperparameter tuning jobs whose trials are local DeepAR training jobs.

Methods take the SageMaker API's keyword names and answer in its response shapes (botocore's
service model is the reference: requests are validated against it, responses follow it). The
search runs on optuna: ``Bayesian`` → TPE, ``Random`` → random sampling, seeded by ``RandomSeed``
(default 0). Trials run in worker processes, ``MaxParallelTrainingJobs`` at a time, each a
training job named ``<tuning job>-<NNN>-<8 hex>`` whose model lands at
``<S3OutputPath>/<training job>/output/model.tar.gz`` as on AWS.

AWS rules enforced here (ValidationException unless said otherwise): the request's shape; the
training image is the built-in DeepAR (the one algorithm this stand-in trains); the objective is
a metric DeepAR emits (``test:RMSE``, ``test:mean_wQuantileLoss``, ``train:final_loss``), minimized,
and a ``test:`` objective needs a ``test`` channel; only DeepAR's tunable hyperparameters are
ranged, never also static, with ``MinValue <= MaxValue``, values the algorithm accepts, positive
bounds for ``Logarithmic`` and ``[0, 1)`` for ``ReverseLogarithmic``; a duplicate job name is
ResourceInUse; ``MaxParallelTrainingJobs`` above this machine's cores is ResourceLimitExceeded.

Differences from AWS, on purpose: only the ``Bayesian`` and ``Random`` strategies run (``Grid`` and
``Hyperband`` are refused); the first trial is each range's centre (midpoint, or geometric mean for
``Logarithmic``) so a budget of one trains the starting values; ``TrainingJobEarlyStoppingType=Auto``
stops nothing early (AWS does not promise to either).
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import tarfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import botocore.session
from botocore.exceptions import ParamValidationError
from botocore.validate import validate_parameters

from infra.local.core.arns import sagemaker_arn
from infra.local.core.config import LocalConfig
from infra.local.core.errors import ServiceError
from infra.local.s3 import atomic_write_bytes, parse_s3_uri, uri_to_path
from infra.local.sqlite import open_store

#: what the built-in DeepAR reports and in which direction it is optimized (deepar-tuning)
DEEPAR_METRICS = {"test:RMSE": "Minimize", "test:mean_wQuantileLoss": "Minimize", "train:final_loss": "Minimize"}
#: the built-in DeepAR's tunable hyperparameters (deepar-tuning)
DEEPAR_TUNABLE = ("context_length", "epochs", "learning_rate", "num_cells", "num_layers", "mini_batch_size",
                  "dropout_rate", "embedding_dimension")
LOCAL_STRATEGIES = ("Bayesian", "Random")
TERMINAL = ("Completed", "Failed", "Stopped")
#: AWS keeps the best 50 training jobs' summaries on a tuning step's properties
MAX_SUMMARIES = 50

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tuning_jobs (
    name TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    modified REAL NOT NULL,
    ended REAL,
    failure_reason TEXT
);
CREATE TABLE IF NOT EXISTS tuning_training_jobs (
    name TEXT PRIMARY KEY,
    tuning_job TEXT NOT NULL,
    number INTEGER NOT NULL,
    hyperparameters TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    metrics TEXT,
    artifact TEXT,
    failure_reason TEXT
);
"""


def _service_model() -> Any:
    return botocore.session.get_session().get_service_model("sagemaker")


def _dt(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, tz=UTC) if ts is not None else None


# ---- the search space ------------------------------------------------------------------------
def parameter_space(ranges: dict[str, Any]) -> list[dict[str, Any]]:
    """``ParameterRanges`` → ``[{"name", "kind", "low"/"high"/"choices", "scaling"}]``."""
    space = []
    for kind, key in (("Integer", "IntegerParameterRanges"), ("Continuous", "ContinuousParameterRanges")):
        for r in ranges.get(key, []) or []:
            cast = int if kind == "Integer" else float
            space.append({"name": r["Name"], "kind": kind, "low": cast(float(r["MinValue"])),
                          "high": cast(float(r["MaxValue"])), "scaling": r.get("ScalingType", "Auto")})
    for r in ranges.get("CategoricalParameterRanges", []) or []:
        space.append({"name": r["Name"], "kind": "Categorical", "choices": list(r["Values"])})
    return space


def centre(param: dict[str, Any]) -> Any:
    """The first trial's value: the range's midpoint, geometric for Logarithmic; the first category."""
    if param["kind"] == "Categorical":
        return param["choices"][0]
    low, high = param["low"], param["high"]
    value = math.sqrt(low * high) if param["scaling"] == "Logarithmic" else (low + high) / 2
    return int(round(value)) if param["kind"] == "Integer" else float(f"{value:.6g}")


def suggest(trial: Any, param: dict[str, Any]) -> Any:
    """One value from an optuna trial for one range."""
    name = param["name"]
    if param["kind"] == "Categorical":
        return trial.suggest_categorical(name, param["choices"])
    log = param["scaling"] == "Logarithmic" and param["low"] < param["high"]
    if param["kind"] == "Integer":
        return trial.suggest_int(name, param["low"], param["high"], log=log)
    if param["scaling"] == "ReverseLogarithmic" and param["low"] < param["high"]:
        # dense near 1: sample 1 - x on a log scale
        return 1.0 - trial.suggest_float(f"{name}__reverse", 1 - param["high"], 1 - param["low"], log=True)
    return trial.suggest_float(name, param["low"], param["high"], log=log)


def _format(value: Any) -> str:
    return str(int(value)) if isinstance(value, int) else (f"{value:.6g}" if isinstance(value, float) else str(value))


# ---- one trial (in a worker process) -----------------------------------------------------------
def die_with_parent() -> None:
    """Worker initializer: the kernel kills this worker when the process that runs the tuning job dies.

    Lightning catches SIGTERM during training, so without this a stopped or killed pipeline
    execution would leave its trials running (seen: orphaned workers training on for an hour).
    """
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl: do not train for nobody
            os._exit(1)
    except OSError:  # not Linux: trials end with their training instead
        pass


def run_training_trial(hyperparameters: dict[str, str], channels: dict[str, str], model_dir: str,
                       tar_path: str, threads: int) -> dict[str, float]:
    """Train DeepAR with the trial's hyperparameters, pack ``model.tar.gz``; return its metrics."""
    import torch

    from infra.local.sagemaker import deepar

    torch.set_num_threads(max(1, threads))
    metrics = deepar.train(hyperparameters, {k: Path(v) for k, v in channels.items()}, Path(model_dir),
                           progress=False)
    with tarfile.open(tar_path, "w:gz") as tar:
        for path in sorted(Path(model_dir).rglob("*")):
            tar.add(path, arcname=path.relative_to(model_dir).as_posix(), recursive=False)
    return metrics


class TuningAPI:
    """Mixin of LocalSageMakerClient: Automatic Model Tuning with local DeepAR trials."""

    config: LocalConfig  # set by LocalSageMakerClient.__init__

    # -- storage --
    @contextmanager
    def _tuning_db(self) -> Iterator[sqlite3.Connection]:
        with open_store(self.config.data_dir / "sagemaker" / "tuning.sqlite", _SCHEMA) as db:
            yield db

    def _tuning_arn(self, name: str) -> str:
        return sagemaker_arn(self.config.region, self.config.account_id, "hyper-parameter-tuning-job", name)

    def _training_arn(self, name: str) -> str:
        return sagemaker_arn(self.config.region, self.config.account_id, "training-job", name)

    # -- API --
    def create_hyper_parameter_tuning_job(self, **kwargs: Any) -> dict[str, Any]:
        """Validate the request as SageMaker does, record the job and start its trials in the background."""
        op = "CreateHyperParameterTuningJob"
        model = _service_model()
        try:
            validate_parameters(kwargs, model.operation_model(op).input_shape)
        except ParamValidationError as exc:
            raise ServiceError.validation(str(exc).replace("\n", " "), op) from None
        name = kwargs["HyperParameterTuningJobName"]
        pattern = model.shape_for("HyperParameterTuningJobName").metadata["pattern"]
        if not re.fullmatch(pattern, name):  # botocore checks lengths, not patterns
            raise ServiceError.validation(f"1 validation error detected: Value '{name}' at "
                                          f"'hyperParameterTuningJobName' failed to satisfy constraint: Member must "
                                          f"satisfy regular expression pattern: {pattern}", op)
        config = kwargs["HyperParameterTuningJobConfig"]
        definition = _the_definition(kwargs, op)
        _check_tuning_request(config, definition, op)
        parallel = int(config["ResourceLimits"]["MaxParallelTrainingJobs"])
        cores = os.cpu_count() or 1
        if parallel > cores:
            raise ServiceError("ResourceLimitExceeded",
                               f"The account-level service limit 'Number of instances across all training jobs' is "
                               f"{cores} (this machine's cores); MaxParallelTrainingJobs={parallel} exceeds it.",
                               400, op)
        now = time.time()
        with self._tuning_db() as db:
            if db.execute("SELECT 1 FROM tuning_jobs WHERE name=?", (name,)).fetchone():
                raise ServiceError("ResourceInUse", f"Hyperparameter tuning job {name} already exists.", 400, op)
            db.execute("INSERT INTO tuning_jobs VALUES (?,?,?,?,?,?,?)",
                       (name, json.dumps(kwargs, default=str), "InProgress", now, now, None, None))
        runner = threading.Thread(target=self._run_tuning_job, args=(name,), name=f"tuning-{name}", daemon=True)
        runner.start()
        return {"HyperParameterTuningJobArn": self._tuning_arn(name)}

    def describe_hyper_parameter_tuning_job(self, *, HyperParameterTuningJobName: str) -> dict[str, Any]:
        """``DescribeHyperParameterTuningJob``: status, counters, the best training job."""
        op = "DescribeHyperParameterTuningJob"
        with self._tuning_db() as db:
            row = self._tuning_row(db, HyperParameterTuningJobName, op)
            jobs = db.execute("SELECT * FROM tuning_training_jobs WHERE tuning_job=? ORDER BY number",
                              (row["name"],)).fetchall()
        request = json.loads(row["request"])
        summaries = [self._summary(j, request) for j in jobs]
        counters = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
        objective = {"Succeeded": 0, "Pending": 0, "Failed": 0}
        for s in summaries:
            status = s["TrainingJobStatus"]
            counters["NonRetryableError" if status == "Failed" else status] += 1
            objective[s["ObjectiveStatus"]] += 1
        out: dict[str, Any] = {
            "HyperParameterTuningJobName": row["name"],
            "HyperParameterTuningJobArn": self._tuning_arn(row["name"]),
            "HyperParameterTuningJobConfig": request["HyperParameterTuningJobConfig"],
            "HyperParameterTuningJobStatus": row["status"],
            "CreationTime": _dt(row["created"]),
            "LastModifiedTime": _dt(row["modified"]),
            "TrainingJobStatusCounters": counters,
            "ObjectiveStatusCounters": objective,
        }
        if "TrainingJobDefinition" in request:
            out["TrainingJobDefinition"] = request["TrainingJobDefinition"]
        if row["ended"] is not None:
            out["HyperParameterTuningEndTime"] = _dt(row["ended"])
            out["ConsumedResources"] = {"RuntimeInSeconds": int(row["ended"] - row["created"])}
        best = ranked(summaries)
        if best:
            out["BestTrainingJob"] = best[0]
        if row["failure_reason"]:
            out["FailureReason"] = row["failure_reason"]
        return out

    def list_training_jobs_for_hyper_parameter_tuning_job(
            self, *, HyperParameterTuningJobName: str, NextToken: str | None = None, MaxResults: int = 10,
            StatusEquals: str | None = None, SortBy: str = "Name", SortOrder: str = "Ascending") -> dict[str, Any]:
        """``ListTrainingJobsForHyperParameterTuningJob``: summaries, sorted and paged as the API does."""
        op = "ListTrainingJobsForHyperParameterTuningJob"
        request = {k: v for k, v in {"HyperParameterTuningJobName": HyperParameterTuningJobName,
                                     "NextToken": NextToken, "MaxResults": MaxResults, "StatusEquals": StatusEquals,
                                     "SortBy": SortBy, "SortOrder": SortOrder}.items() if v is not None}
        try:
            validate_parameters(request, _service_model().operation_model(op).input_shape)
        except ParamValidationError as exc:
            raise ServiceError.validation(str(exc).replace("\n", " "), op) from None
        with self._tuning_db() as db:
            row = self._tuning_row(db, HyperParameterTuningJobName, op)
            jobs = db.execute("SELECT * FROM tuning_training_jobs WHERE tuning_job=? ORDER BY number",
                              (row["name"],)).fetchall()
        summaries = [self._summary(j, json.loads(row["request"])) for j in jobs]
        if StatusEquals:
            summaries = [s for s in summaries if s["TrainingJobStatus"] == StatusEquals]
        if SortBy == "FinalObjectiveMetricValue":
            # only jobs with an objective value are listed, by that value
            summaries = [s for s in summaries if "FinalHyperParameterTuningJobObjectiveMetric" in s]
            summaries.sort(key=lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
                           reverse=SortOrder == "Descending")
        else:
            key = "TrainingJobName" if SortBy == "Name" else "CreationTime"
            summaries.sort(key=lambda s: s[key], reverse=SortOrder == "Descending")
        offset = int(NextToken or 0)
        page = summaries[offset: offset + MaxResults]
        out: dict[str, Any] = {"TrainingJobSummaries": page}
        if offset + MaxResults < len(summaries):
            out["NextToken"] = str(offset + MaxResults)
        return out

    def stop_hyper_parameter_tuning_job(self, *, HyperParameterTuningJobName: str) -> dict[str, Any]:
        """Stop launching trials; running trials finish and the job ends Stopped."""
        op = "StopHyperParameterTuningJob"
        with self._tuning_db() as db:
            row = self._tuning_row(db, HyperParameterTuningJobName, op)
            if row["status"] != "InProgress":
                raise ServiceError.validation(f"Hyperparameter tuning job {row['name']} is "
                                              f"{row['status']}; only an InProgress job can be stopped.", op)
            db.execute("UPDATE tuning_jobs SET status='Stopping', modified=? WHERE name=?", (time.time(), row["name"]))
        return {}

    def describe_training_job(self, *, TrainingJobName: str) -> dict[str, Any]:
        """``DescribeTrainingJob`` for a tuning job's trial (the fields a trial has)."""
        op = "DescribeTrainingJob"
        with self._tuning_db() as db:
            job = db.execute("SELECT * FROM tuning_training_jobs WHERE name=?", (TrainingJobName,)).fetchone()
            if job is None:
                raise ServiceError.validation(f"Requested resource not found: training job "
                                              f"{TrainingJobName} does not exist.", op)
            tuning = db.execute("SELECT request FROM tuning_jobs WHERE name=?", (job["tuning_job"],)).fetchone()
        definition = json.loads(tuning["request"])["TrainingJobDefinition"]
        metrics = json.loads(job["metrics"] or "{}")
        out: dict[str, Any] = {
            "TrainingJobName": job["name"], "TrainingJobArn": self._training_arn(job["name"]),
            "TuningJobArn": self._tuning_arn(job["tuning_job"]),
            "TrainingJobStatus": job["status"],
            "SecondaryStatus": {"Completed": "Completed", "Failed": "Failed", "Stopped": "Stopped"}.get(
                job["status"], "Training"),
            "HyperParameters": json.loads(job["hyperparameters"]),
            "AlgorithmSpecification": definition["AlgorithmSpecification"],
            "RoleArn": definition["RoleArn"],
            "InputDataConfig": definition.get("InputDataConfig", []),
            "OutputDataConfig": definition["OutputDataConfig"],
            "ResourceConfig": definition.get("ResourceConfig", {}),
            "StoppingCondition": definition["StoppingCondition"],
            "CreationTime": _dt(job["created"]),
            "FinalMetricDataList": [{"MetricName": k, "Value": float(v), "Timestamp": _dt(job["ended"])}
                                    for k, v in sorted(metrics.items()) if k in DEEPAR_METRICS
                                    or k.startswith("test:")],
            "ModelArtifacts": {"S3ModelArtifacts": job["artifact"] or ""},
        }
        for key, col in (("TrainingStartTime", "started"), ("TrainingEndTime", "ended"),
                         ("LastModifiedTime", "ended")):
            if job[col] is not None:
                out[key] = _dt(job[col])
        if job["failure_reason"]:
            out["FailureReason"] = job["failure_reason"]
        return out

    # -- helpers --
    def _tuning_row(self, db: sqlite3.Connection, name: str, op: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM tuning_jobs WHERE name=?", (name,)).fetchone()
        if row is None:
            raise ServiceError.not_found("ResourceNotFound",
                                         f"Amazon SageMaker can't find a tuning job with name {name}", op)
        return row

    def _summary(self, job: sqlite3.Row, request: dict[str, Any]) -> dict[str, Any]:
        objective = request["HyperParameterTuningJobConfig"].get("HyperParameterTuningJobObjective") or {}
        metrics = json.loads(job["metrics"] or "{}")
        status = job["status"]
        summary: dict[str, Any] = {
            "TrainingJobName": job["name"], "TrainingJobArn": self._training_arn(job["name"]),
            "TuningJobName": job["tuning_job"], "CreationTime": _dt(job["created"]),
            "TrainingJobStatus": status,
            "TunedHyperParameters": {k: v for k, v in json.loads(job["hyperparameters"]).items()
                                     if k in _tuned_names(request)},
        }
        if job["started"] is not None:
            summary["TrainingStartTime"] = _dt(job["started"])
        if job["ended"] is not None:
            summary["TrainingEndTime"] = _dt(job["ended"])
        if job["failure_reason"]:
            summary["FailureReason"] = job["failure_reason"]
        value = metrics.get(objective.get("MetricName", ""))
        if status == "Completed" and value is not None and math.isfinite(float(value)):
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                "Type": objective["Type"], "MetricName": objective["MetricName"], "Value": float(value)}
            summary["ObjectiveStatus"] = "Succeeded"
        else:
            summary["ObjectiveStatus"] = "Pending" if status == "InProgress" else "Failed"
        return summary

    # -- the job's run (a background thread of this process) --
    def _run_tuning_job(self, name: str) -> None:
        try:
            self._search(name)
        except Exception as exc:  # noqa: BLE001 - recorded as the tuning job's failure
            with self._tuning_db() as db:
                db.execute("UPDATE tuning_jobs SET status='Failed', failure_reason=?, modified=?, ended=? WHERE name=?",
                           (f"{type(exc).__name__}: {exc}", time.time(), time.time(), name))

    def _search(self, name: str) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        with self._tuning_db() as db:
            request = json.loads(self._tuning_row(db, name, "RunTuningJob")["request"])
        config = request["HyperParameterTuningJobConfig"]
        definition = request["TrainingJobDefinition"]
        limits = config["ResourceLimits"]
        budget = int(limits.get("MaxNumberOfTrainingJobs", 1))
        parallel = int(limits["MaxParallelTrainingJobs"])
        deadline = time.time() + float(limits.get("MaxRuntimeInSeconds") or math.inf)
        space = parameter_space(definition.get("HyperParameterRanges") or config.get("ParameterRanges") or {})
        seed = int(config.get("RandomSeed", 0))
        if config["Strategy"] == "Random":
            sampler: Any = optuna.samplers.RandomSampler(seed=seed)
        else:
            sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, budget // 2)),
                                                 constant_liar=parallel > 1)
        study = optuna.create_study(direction="minimize", sampler=sampler)
        study.enqueue_trial({p["name"]: centre(p) for p in space if p["kind"] != "Categorical"} |
                            {p["name"]: p["choices"][0] for p in space if p["kind"] == "Categorical"})
        objective = config["HyperParameterTuningJobObjective"]["MetricName"]
        work = self.config.data_dir / "sagemaker" / "tuning" / name
        channels = self._download_channels(definition, work / "input")
        static = {k: str(v) for k, v in (definition.get("StaticHyperParameters") or {}).items()}
        output = definition["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        threads = max(1, (os.cpu_count() or 1) // parallel)
        started = 0
        running: dict[Future, tuple[Any, str]] = {}
        pool = ProcessPoolExecutor(max_workers=parallel, mp_context=get_context("spawn"), initializer=die_with_parent)
        try:
            while True:
                stopping = self._tuning_status(name) == "Stopping"
                while not stopping and started < budget and len(running) < parallel and time.time() < deadline:
                    trial = study.ask()
                    values = {p["name"]: suggest(trial, p) for p in space}
                    started += 1
                    job = f"{name}-{started:03d}-{uuid.uuid4().hex[:8]}"
                    hyperparameters = {**static, **{k: _format(v) for k, v in values.items()}}
                    self._record_trial(job, name, started, hyperparameters)
                    job_dir = work / job
                    future = pool.submit(run_training_trial, hyperparameters, channels, str(job_dir / "model"),
                                         str(job_dir / "model.tar.gz"), threads)
                    running[future] = (trial, job)
                if not running:
                    break
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    trial, job = running.pop(future)
                    self._finish_trial(study, trial, job, future, objective, f"{output}/{job}/output/model.tar.gz",
                                       work / job / "model.tar.gz")
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        self._finish_tuning_job(name)

    def _download_channels(self, definition: dict[str, Any], dest: Path) -> dict[str, str]:
        channels: dict[str, str] = {}
        s3_root = self.config.s3_root
        for channel in definition.get("InputDataConfig", []):
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            bucket, prefix = parse_s3_uri(uri)
            root = s3_root / bucket
            target = dest / channel["ChannelName"]
            target.mkdir(parents=True, exist_ok=True)
            count = 0
            for path in sorted(root.rglob("*")) if root.is_dir() else []:
                key = path.relative_to(root).as_posix()
                if path.is_file() and not path.name.startswith(".") and key.startswith(prefix):
                    out = target / (key[len(prefix):].lstrip("/") or path.name)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(path.read_bytes())
                    count += 1
            if count == 0:
                raise RuntimeError(f"ClientError: no objects found under {uri} (channel {channel['ChannelName']})")
            channels[channel["ChannelName"]] = str(target)
        return channels

    def _tuning_status(self, name: str) -> str:
        with self._tuning_db() as db:
            return db.execute("SELECT status FROM tuning_jobs WHERE name=?", (name,)).fetchone()["status"]

    def _record_trial(self, job: str, tuning: str, number: int, hyperparameters: dict[str, str]) -> None:
        now = time.time()
        with self._tuning_db() as db:
            db.execute("INSERT INTO tuning_training_jobs (name, tuning_job, number, hyperparameters, status, created, "
                       "started) VALUES (?,?,?,?,?,?,?)",
                       (job, tuning, number, json.dumps(hyperparameters), "InProgress", now, now))

    def _finish_trial(self, study: Any, trial: Any, job: str, future: Future, objective: str, artifact: str,
                      tar_path: Path) -> None:
        now = time.time()
        try:
            metrics = future.result()
        except Exception as exc:  # noqa: BLE001 - a failed trial is recorded, the search goes on
            study.tell(trial, state=_failed_state())
            reason = str(exc).splitlines()[0][:1000]
            kind = "AlgorithmError" if type(exc).__name__ == "AlgorithmError" else type(exc).__name__
            with self._tuning_db() as db:
                db.execute("UPDATE tuning_training_jobs SET status='Failed', ended=?, failure_reason=? WHERE name=?",
                           (now, f"{kind}: {reason}", job))
            return
        atomic_write_bytes(uri_to_path(artifact, self.config.s3_root), tar_path.read_bytes(), fsync=False)
        value = metrics.get(objective)
        if value is None or not math.isfinite(float(value)):
            study.tell(trial, state=_failed_state())
        else:
            study.tell(trial, float(value))
        with self._tuning_db() as db:
            db.execute("UPDATE tuning_training_jobs SET status='Completed', ended=?, metrics=?, artifact=? WHERE name=?",
                       (now, json.dumps(metrics), artifact, job))

    def _finish_tuning_job(self, name: str) -> None:
        with self._tuning_db() as db:
            row = self._tuning_row(db, name, "RunTuningJob")
            jobs = db.execute("SELECT status, failure_reason FROM tuning_training_jobs WHERE tuning_job=?",
                              (name,)).fetchall()
            succeeded = [j for j in jobs if j["status"] == "Completed"]
            status, reason = "Completed", None
            if row["status"] == "Stopping":
                status = "Stopped"
            elif not succeeded:
                first = next((j["failure_reason"] for j in jobs if j["failure_reason"]), "no training job ran")
                status, reason = "Failed", f"All training jobs failed. First failure: {first}"
            now = time.time()
            db.execute("UPDATE tuning_jobs SET status=?, failure_reason=?, modified=?, ended=? WHERE name=?",
                       (status, reason, now, now, name))


def _failed_state() -> Any:
    import optuna

    return optuna.trial.TrialState.FAIL


def _tuned_names(request: dict[str, Any]) -> set[str]:
    definition = request.get("TrainingJobDefinition", {})
    ranges = definition.get("HyperParameterRanges") or request["HyperParameterTuningJobConfig"].get(
        "ParameterRanges") or {}
    return {p["name"] for p in parameter_space(ranges)}


def ranked(summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Summaries with an objective value, best first (lowest for Minimize); ties by name."""
    scored = [s for s in summaries if "FinalHyperParameterTuningJobObjectiveMetric" in s]
    if not scored:
        return []
    sign = -1.0 if scored[0]["FinalHyperParameterTuningJobObjectiveMetric"]["Type"] == "Maximize" else 1.0
    return sorted(scored, key=lambda s: (sign * s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
                                         s["TrainingJobName"]))


def _the_definition(kwargs: dict[str, Any], op: str) -> dict[str, Any]:
    if "TrainingJobDefinitions" in kwargs:
        raise ServiceError.validation("local mode tunes one TrainingJobDefinition; "
                                      "TrainingJobDefinitions (several algorithms) is not supported", op)
    if "TrainingJobDefinition" not in kwargs:
        raise ServiceError.validation("TrainingJobDefinition is required", op)
    if kwargs.get("WarmStartConfig") or kwargs.get("Autotune"):
        raise ServiceError.validation("WarmStartConfig and Autotune are not supported locally", op)
    return kwargs["TrainingJobDefinition"]


def _check_tuning_request(config: dict[str, Any], definition: dict[str, Any], op: str) -> None:
    """AWS's rules for a DeepAR tuning job (see the module docstring)."""
    from infra.local.runtimes import UnknownImage, runtime_for_image
    from infra.local.sagemaker.deepar import AlgorithmError, validate_hyperparameters

    image = definition["AlgorithmSpecification"].get("TrainingImage", "")
    try:
        algorithm = runtime_for_image(image).algorithm  # the image's manifest, as a training step checks it
    except UnknownImage as exc:
        raise ServiceError.validation(str(exc), op) from None
    if algorithm != "deepar":
        raise ServiceError.validation(f"local mode tunes only the built-in DeepAR image, not {image!r}", op)
    strategy = config["Strategy"]
    if strategy not in LOCAL_STRATEGIES:
        raise ServiceError.validation(f"Strategy {strategy} is valid on SageMaker but not supported by "
                                      f"the local tuner; use one of {', '.join(LOCAL_STRATEGIES)}", op)
    objective = config.get("HyperParameterTuningJobObjective") or definition.get("TuningObjective")
    if not objective:
        raise ServiceError.validation("HyperParameterTuningJobObjective is required for a built-in "
                                      "algorithm", op)
    metric = objective["MetricName"]
    if metric not in DEEPAR_METRICS:
        raise ServiceError.validation(f"The objective metric [{metric}] is not valid for the "
                                      f"[forecasting-deepar] algorithm. Choose one of {', '.join(DEEPAR_METRICS)}.", op)
    if objective["Type"] != DEEPAR_METRICS[metric]:
        raise ServiceError.validation(f"The objective metric type, [{objective['Type']}], that you specified for "
                                      f"objective metric, [{metric}], isn't valid for the [forecasting-deepar] "
                                      f"algorithm. Choose a valid objective metric type ({DEEPAR_METRICS[metric]}).",
                                      op)
    channels = {c["ChannelName"] for c in definition.get("InputDataConfig", [])}
    if "train" not in channels:
        raise ServiceError.validation("DeepAR needs a 'train' channel in InputDataConfig", op)
    if metric.startswith("test:") and "test" not in channels:
        raise ServiceError.validation(f"The objective metric {metric} is computed on the 'test' channel; "
                                      "add a test channel to InputDataConfig", op)
    if config.get("ParameterRanges") and definition.get("HyperParameterRanges"):
        raise ServiceError.validation("give ParameterRanges in HyperParameterTuningJobConfig or "
                                      "HyperParameterRanges in the TrainingJobDefinition, not both", op)
    space = parameter_space(definition.get("HyperParameterRanges") or config.get("ParameterRanges") or {})
    if not space:
        raise ServiceError.validation("ParameterRanges must name at least one hyperparameter to tune", op)
    static = {k: str(v) for k, v in (definition.get("StaticHyperParameters") or {}).items()}
    names = [p["name"] for p in space]
    for name in names:
        if names.count(name) > 1:
            raise ServiceError.validation(f"Hyperparameter {name} is ranged more than once", op)
        if name not in DEEPAR_TUNABLE:
            raise ServiceError.validation(f"The hyperparameter {name} is not tunable for the "
                                          f"[forecasting-deepar] algorithm; tunable: {', '.join(DEEPAR_TUNABLE)}", op)
        if name in static:
            raise ServiceError.validation(f"Hyperparameter {name} is both static and tunable; "
                                          "remove it from StaticHyperParameters", op)
    for p in space:
        if p["kind"] == "Categorical":
            continue
        if p["low"] > p["high"]:
            raise ServiceError.validation(f"Hyperparameter {p['name']}: MinValue {p['low']} is "
                                          f"greater than MaxValue {p['high']}", op)
        if p["scaling"] == "Logarithmic" and p["low"] <= 0:
            raise ServiceError.validation(f"Hyperparameter {p['name']}: Logarithmic scaling needs "
                                          f"a range of values greater than 0 (MinValue {p['low']})", op)
        if p["scaling"] == "ReverseLogarithmic" and (p["kind"] == "Integer" or p["low"] < 0 or p["high"] >= 1):
            raise ServiceError.validation(f"Hyperparameter {p['name']}: ReverseLogarithmic scaling "
                                          "works only for continuous ranges within [0, 1)", op)
    centres = {p["name"]: _format(centre(p)) for p in space}
    try:
        validate_hyperparameters({**static, **centres})
    except AlgorithmError as exc:
        raise ServiceError.validation(f"StaticHyperParameters: {exc}", op) from None
    for p in space:
        bounds = p["choices"] if p["kind"] == "Categorical" else [p["low"], p["high"]]
        for value in bounds:
            try:
                validate_hyperparameters({**static, **centres, p["name"]: _format(value)})
            except AlgorithmError as exc:
                raise ServiceError.validation(f"Hyperparameter range {p['name']}: {exc}", op) from None

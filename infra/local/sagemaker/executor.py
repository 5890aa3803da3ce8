"""Run a SageMaker pipeline definition (the JSON ``Pipeline.definition()`` returns) on this machine.

The executor reads the same document SageMaker Pipelines executes (:mod:`.pipeline_definition`: parameters
with defaults and overrides, the step graph from references, ``DependsOn`` and condition branches),
evaluates its expressions against the execution's context (:mod:`.expressions`: ``Get`` / ``Std:Join`` /
``Std:JsonGet``, execution variables, property files, conditions), and runs each step, in dependency order,
with the runner its type has in :data:`STEP_TYPES`: the container jobs of :mod:`.jobs` (``Processing``,
``Training``, ``Transform``) and the steps of :mod:`.steps` (``Tuning``, ``Model``, ``Condition``, ``Fail``,
``RegisterModel``, ``Lambda``). S3 URIs map to the local object store.

Step statuses, times, metadata and failure reasons go to a ``StepRecorder`` (the SQLite store in
:mod:`infra.local.sagemaker.pipelines`).
"""

from __future__ import annotations

import re
import shutil
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from infra.local.core.arns import sagemaker_arn
from infra.local.core.config import LocalConfig
from infra.local.logs import LogStream
from infra.local.s3 import atomic_write_bytes, parse_s3_uri, uri_to_path
from infra.local.sagemaker import jobs, steps
from infra.local.sagemaker.expressions import ExecutionContext
from infra.local.sagemaker.pipeline_definition import (
    PipelineDefinitionError,
    StepNode,
    resolve_parameters,
    step_graph,
    topological_order,
)
from infra.local.sagemaker.steps import StepFailed

#: ``runner(executor, step)`` → the step's metadata (``{"ProcessingJob": {"Arn": ...}}``); raises StepFailed
StepRunner = Callable[["PipelineExecutor", StepNode], dict[str, Any]]

#: what runs each step type of a definition (SageMaker's ``Type`` names); other types fail the step
STEP_TYPES: dict[str, StepRunner] = {
    "Processing": jobs.run_processing,
    "Training": jobs.run_training,
    "Transform": jobs.run_transform,
    "Tuning": steps.run_tuning,
    "Model": steps.run_model,
    "Condition": steps.run_condition,
    "Fail": steps.run_fail,
    "RegisterModel": steps.run_register_model,
    "Lambda": steps.run_lambda,
}

#: the metadata key and ARN kind of the job a step of each type starts (a failed step still names it)
_JOB_KINDS = {"Processing": ("ProcessingJob", "processing-job"), "Training": ("TrainingJob", "training-job"),
              "Transform": ("TransformJob", "transform-job")}


class StepRecorder(Protocol):
    def step_started(self, step: str, step_type: str) -> None: ...
    def step_finished(self, step: str, status: str, metadata: dict[str, Any], failure_reason: str | None) -> None: ...


@dataclass
class ExecutionResult:
    status: str  # Succeeded | Failed
    failure_reason: str | None
    failed_step: str | None
    steps: dict[str, dict[str, Any]]  # step → {"status", "metadata", "failure_reason"}


class PipelineExecutor:
    """Execute one pipeline definition for one execution, step by step, in dependency order."""

    def __init__(self, definition: Mapping[str, Any], parameters: Mapping[str, Any], *, config: LocalConfig,
                 pipeline_name: str, execution_arn: str, recorder: StepRecorder | None = None,
                 sagemaker_client: Any = None, work_dir: Path | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        self.definition = definition
        values = resolve_parameters(definition, parameters)
        self.config = config
        self.pipeline_name = pipeline_name
        self.execution_arn = execution_arn
        self.execution_id = execution_arn.rsplit("/", 1)[-1]
        self.recorder = recorder
        self.client = sagemaker_client
        self.work_dir = Path(work_dir or config.data_dir / "sagemaker" / "executions" / self.execution_id)
        self._say = progress or (lambda line: None)
        self.show_progress = progress is not None
        self._jobs: dict[str, str] = {}
        self.log: LogStream | None = None  # the running step's CloudWatch Logs stream
        self.graph = step_graph(definition)
        self.ctx = ExecutionContext(values, pipeline_name=pipeline_name, execution_arn=execution_arn,
                                    region=config.region, account_id=config.account_id, local_path=self.local_path)

    def progress(self, line: str) -> None:
        """A progress line; during a job step it also goes to the job's log stream (as the job would log it)."""
        self._say(line)
        if self.log is not None:
            self.log.put(re.sub(r"^\[[^\]]*\] ", "", line))

    # -- running --
    def run(self) -> ExecutionResult:
        """Run every eligible step in dependency order; stop at the first failure.

        Of the steps whose dependencies have succeeded, the first in definition order runs next (as a reader
        expects); a step on the branch its condition did not take is skipped (not executed, not listed, as on
        SageMaker), and so is everything that depends on it."""
        sorter = topological_order(self.graph)
        position = {name: i for i, name in enumerate(self.graph)}
        ready: set[str] = set()
        results: dict[str, dict[str, Any]] = {}
        while True:
            ready.update(sorter.get_ready())
            if not ready:
                return ExecutionResult("Succeeded", None, None, results)
            name = min(ready, key=position.__getitem__)
            ready.discard(name)
            node = self.graph[name]
            if any(self.ctx.outcomes[cond] != want for cond, want in node.guards):
                continue  # the other branch: never marked done, so its dependents never become ready
            status, metadata, reason = self._run_step(node)
            results[name] = {"status": status, "metadata": metadata, "failure_reason": reason}
            if status == "Failed":
                return ExecutionResult("Failed", f"Step {name} failed: {reason}", name, results)
            sorter.done(name)

    def _run_step(self, node: StepNode) -> tuple[str, dict[str, Any], str | None]:
        started = time.time()
        self.progress(f"[{node.name}] {node.type} step started")
        if self.recorder:
            self.recorder.step_started(node.name, node.type)
        runner = STEP_TYPES.get(node.type)
        metadata: dict[str, Any] = {}
        self.log = self._log_stream(node)
        try:
            if runner is None:
                raise StepFailed(f"local mode cannot run steps of type {node.type}")
            metadata = runner(self, node) or {}
            status, reason = "Succeeded", None
        except StepFailed as exc:
            status, reason = "Failed", str(exc)
        except PipelineDefinitionError as exc:
            status, reason = "Failed", f"ValidationError: {exc}"
        except Exception as exc:  # noqa: BLE001 - any crash is this step's failure, recorded with its reason
            status, reason = "Failed", f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        if status == "Failed" and not metadata:
            metadata = self._started_job(node)
        took = time.time() - started
        self.progress(f"[{node.name}] {status} in {took:.1f} s" + (f": {reason}" if reason else ""))
        self.log = None
        if self.recorder:
            self.recorder.step_finished(node.name, status, metadata, reason)
        return status, metadata, reason

    def _log_stream(self, node: StepNode) -> LogStream | None:
        """The CloudWatch Logs stream AWS would give this step's job or function (None: no job, no log)."""
        group = jobs.LOG_GROUPS.get(node.type)
        if group is not None:
            return LogStream(self.config.data_dir, group, f"{self.job_name(node)}/algo-1-{int(time.time())}")
        if node.type == "Lambda":
            from infra.local import awslambda

            function = awslambda.function_name_of(node.spec.get("FunctionArn", "unknown"))
            return LogStream(self.config.data_dir, f"/aws/lambda/{function}",
                             time.strftime("%Y/%m/%d/[$LATEST]", time.gmtime()) + uuid.uuid4().hex)
        return None

    def _started_job(self, node: StepNode) -> dict[str, Any]:
        """A failed step's metadata still names the job it started (as SageMaker's does), so its log is found."""
        if node.type in _JOB_KINDS and node.name in self._jobs:
            key, kind = _JOB_KINDS[node.type]
            return {key: {"Arn": self.job_arn(kind, self._jobs[node.name])}}
        if node.type == "Lambda" and node.spec.get("FunctionArn"):
            return {"Lambda": {"Arn": node.spec["FunctionArn"]}}
        return {}

    def job_name(self, node: StepNode) -> str:
        """The step's job name (one per step and execution, as SageMaker Pipelines names them)."""
        if node.name not in self._jobs:
            self._jobs[node.name] = f"pipelines-{self.execution_id}-{node.name}-{uuid.uuid4().hex[:6]}"[:63]
        return self._jobs[node.name]

    def job_arn(self, kind: str, name: str) -> str:
        return sagemaker_arn(self.config.region, self.config.account_id, kind, name)

    # -- S3 --
    def local_path(self, uri: str) -> Path:
        return uri_to_path(uri, self.config.s3_root)

    def download_prefix(self, uri: str, dest: Path) -> int:
        """Copy every object under the S3 prefix ``uri`` into ``dest`` (as SageMaker's S3Prefix File mode)."""
        bucket, prefix = parse_s3_uri(uri)
        root = self.config.s3_root / bucket
        count = 0
        dest.mkdir(parents=True, exist_ok=True)
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if not path.is_file() or path.name.startswith("."):
                    continue
                key = path.relative_to(root).as_posix()
                if key.startswith(prefix):
                    # as SageMaker: the key minus the prefix; a prefix that is the whole key → its file name
                    rel = key[len(prefix):].lstrip("/") or key.rsplit("/", 1)[-1]
                    target = dest / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
                    count += 1
        if count == 0:
            raise StepFailed(f"ClientError: no objects found under {uri}")
        return count

    def upload_dir(self, src: Path, uri: str) -> int:
        count = 0
        for path in sorted(src.rglob("*")):
            if path.is_file():
                rel = path.relative_to(src).as_posix()
                atomic_write_bytes(self.local_path(uri.rstrip("/") + "/" + rel), path.read_bytes(), fsync=False)
                count += 1
        return count

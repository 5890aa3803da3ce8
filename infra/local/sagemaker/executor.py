"""Run a SageMaker pipeline definition (the JSON ``Pipeline.definition()`` returns) on this machine.

The executor reads the same document SageMaker Pipelines executes: parameters with
defaults and overrides, ``Get`` / ``Std:Join`` / ``Std:JsonGet`` expressions, execution
variables, step dependencies (references and ``DependsOn``), property files and
condition branches. S3 URIs map to the local object store; each step type runs on a
local stand-in:

- ``Processing``: the step's script in a subprocess; any argument, environment value or
  channel path under ``/opt/ml/`` is rewritten to the job's own folder. The script runs under
  its image's contract (:mod:`infra.local.runtimes`): an image without a manifest is refused,
  an import of a module the image lacks raises ``ModuleNotFoundError`` as in the container, and
  code that needs a newer Python than the image's fails the job before it starts.
- ``Training``: the built-in DeepAR image → :func:`infra.local.sagemaker.deepar.train`
  (GluonTS) with the channels and hyperparameters; writes ``model.tar.gz``.
- ``Tuning``: the local Automatic Model Tuning (:mod:`infra.local.sagemaker.tuning`) through the
  SageMaker client: ``create_hyper_parameter_tuning_job``, polled with ``describe_...``; its
  properties are the describe response plus ``TrainingJobSummaries`` (best first, at most 50).
- ``Model``: records the model (container, model data).
- ``Transform``: DeepAR batch transform, one output line per input line (``<file>.out``).
- ``Condition`` / ``Fail``: evaluated here. ``RegisterModel``: the local Model Registry.
- ``Lambda``: the local Lambda (:class:`infra.local.awslambda.LocalLambdaBackend`), synchronously.

Step statuses, times, metadata and failure reasons go to a ``StepRecorder`` (the
SQLite store in :mod:`infra.local.sagemaker.pipelines`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tarfile
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from infra.local.core.arns import pipeline_arn, sagemaker_arn
from infra.local.core.config import LocalConfig
from infra.local.logs import LogStream, run_logged
from infra.local.runtimes import Runtime, UnknownImage, contract, runtime_for_image
from infra.local.s3 import atomic_write_bytes, parse_s3_uri, uri_to_path

CONTAINER_ROOT = "/opt/ml/"
_PATH_TOKEN = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_:]*)|\[(?:'([^']*)'|\"([^\"]*)\"|(\d+))\]")


class PipelineDefinitionError(ValueError):
    """The definition (or a parameter override) is not something SageMaker would accept."""


class StepFailed(RuntimeError):
    """A step failed; the message is its FailureReason."""


# ---- parameters ----------------------------------------------------------------------
_PARAM_TYPES: dict[str, Callable[[Any], Any]] = {
    "String": str,
    "Integer": int,
    "Float": float,
    "Boolean": lambda v: v if isinstance(v, bool) else str(v).lower() == "true",
}


def parameter_defaults(definition: Mapping[str, Any]) -> dict[str, Any]:
    """Name → default value (None when the parameter has no default)."""
    return {p["Name"]: p.get("DefaultValue") for p in definition.get("Parameters", [])}


def resolve_parameters(definition: Mapping[str, Any], overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    """Defaults overridden by ``overrides`` (values as strings or typed), converted to each parameter's type.

    Unknown names, values of the wrong type, values outside ``EnumValues`` and parameters
    with neither default nor value are errors that name the parameter.
    """
    specs = {p["Name"]: p for p in definition.get("Parameters", [])}
    unknown = sorted(set(overrides or {}) - set(specs))
    if unknown:
        raise PipelineDefinitionError(
            f"unknown pipeline parameter(s): {', '.join(unknown)}; accepted: {', '.join(sorted(specs))}")
    values: dict[str, Any] = {}
    for name, spec in specs.items():
        raw = (overrides or {}).get(name, spec.get("DefaultValue"))
        if raw is None:
            raise PipelineDefinitionError(f"pipeline parameter {name} has no default; give it a value")
        kind = spec.get("Type", "String")
        try:
            value = _PARAM_TYPES[kind](raw)
            if kind == "Integer" and isinstance(raw, str) and not re.fullmatch(r"[+-]?\d+", raw.strip()):
                raise ValueError(raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise PipelineDefinitionError(f"pipeline parameter {name} must be a {kind}, got {raw!r}") from exc
        enum = spec.get("EnumValues")
        if enum and value not in enum:
            raise PipelineDefinitionError(f"pipeline parameter {name} must be one of {', '.join(map(str, enum))}, "
                                          f"got {value!r}")
        values[name] = value
    return values


# ---- the step graph -------------------------------------------------------------------
@dataclass
class StepNode:
    """One step of the definition with where it sits in the condition branches."""

    name: str
    type: str
    spec: dict[str, Any]
    #: (condition step, outcome) pairs that must all hold for this step to run
    guards: tuple[tuple[str, bool], ...] = ()
    depends_on: set[str] = field(default_factory=set)


def _references(obj: Any) -> set[str]:
    """Step names an expression tree reads from (``Get: Steps.X...``)."""
    found: set[str] = set()
    if isinstance(obj, dict):
        get = obj.get("Get")
        if isinstance(get, str) and get.startswith("Steps."):
            found.add(get.split(".", 2)[1].split("[", 1)[0])
        for value in obj.values():
            found |= _references(value)
    elif isinstance(obj, list):
        for value in obj:
            found |= _references(value)
    return found


def step_graph(definition: Mapping[str, Any]) -> dict[str, StepNode]:
    """Flatten the definition's steps (condition branches included) with their dependencies."""
    nodes: dict[str, StepNode] = {}

    def add(steps: list[dict[str, Any]], guards: tuple[tuple[str, bool], ...]) -> None:
        for spec in steps:
            name = spec["Name"]
            if name in nodes:
                raise PipelineDefinitionError(f"step name {name!r} is used twice")
            args = spec.get("Arguments", {})
            node = StepNode(name, spec["Type"], spec, guards)
            if spec["Type"] == "Condition":
                node.depends_on |= _references(args.get("Conditions", []))
            else:
                node.depends_on |= _references(args)
                node.depends_on |= _references({k: v for k, v in spec.items() if k not in ("Arguments", "Name")})
            node.depends_on |= set(spec.get("DependsOn", []))
            nodes[name] = node
            if spec["Type"] == "Condition":
                add(args.get("IfSteps", []), guards + ((name, True),))
                add(args.get("ElseSteps", []), guards + ((name, False),))

    add(list(definition.get("Steps", [])), ())
    for node in nodes.values():
        node.depends_on.discard(node.name)
        missing = node.depends_on - set(nodes)
        if missing:
            raise PipelineDefinitionError(f"step {node.name} refers to unknown step(s): {', '.join(sorted(missing))}")
        # a branch step also waits for the condition that guards it
        node.depends_on |= {cond for cond, _ in node.guards}
    _check_acyclic(nodes)
    return nodes


def _check_acyclic(nodes: Mapping[str, StepNode]) -> None:
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise PipelineDefinitionError(f"step dependencies form a cycle: {' → '.join(path + [name])}")
        state[name] = 1
        for dep in sorted(nodes[name].depends_on):
            visit(dep, path + [name])
        state[name] = 2

    for name in nodes:
        visit(name, [])


# ---- expressions ----------------------------------------------------------------------
def parse_property_path(path: str) -> list[str | int]:
    """``ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri`` → tokens."""
    tokens: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if not m:
            raise PipelineDefinitionError(f"cannot parse property path {path!r} at {path[pos:]!r}")
        name, sq, dq, idx = m.groups()
        tokens.append(name if name is not None else sq if sq is not None else dq if dq is not None else int(idx))
        pos = m.end()
    return tokens


#: fields that key a list when a property path indexes it by name (Outputs['train'], ...)
_LIST_KEYS = ("OutputName", "InputName", "ChannelName", "MetricName", "Name", "OutputParameterName")


def walk_path(obj: Any, tokens: list[str | int], where: str) -> Any:
    """Follow property-path tokens through dicts and lists (lists indexed by position or by name)."""
    for tok in tokens:
        if isinstance(obj, Mapping) and isinstance(tok, str) and tok in obj:
            obj = obj[tok]
        elif isinstance(obj, list) and isinstance(tok, int) and -len(obj) <= tok < len(obj):
            obj = obj[tok]
        elif isinstance(obj, list) and isinstance(tok, str):
            match = [item for item in obj if isinstance(item, Mapping) and any(item.get(k) == tok for k in _LIST_KEYS)]
            if not match:
                raise PipelineDefinitionError(f"{where}: no element named {tok!r}")
            obj = match[0]
        else:
            raise PipelineDefinitionError(f"{where}: {tok!r} not found")
    return obj


def json_get(document: Any, path: str, where: str) -> Any:
    """``Std:JsonGet`` path lookup (``a.b[0].c`` / ``a['b']``) in a parsed JSON document."""
    return walk_path(document, parse_property_path(path), f"{where} (JsonGet path {path!r})")


def to_string(value: Any) -> str:
    """How ``Std:Join`` prints a value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        return repr(value)
    return str(value)


class Context(Protocol):
    """What expressions read: parameters, execution variables, step properties, property files."""

    def parameter(self, name: str) -> Any: ...
    def execution_variable(self, name: str) -> Any: ...
    def step_properties(self, step: str) -> Mapping[str, Any]: ...
    def property_file(self, step: str, name: str) -> Any: ...
    def read_json_uri(self, uri: str) -> Any: ...


def resolve(expr: Any, ctx: Context) -> Any:
    """Evaluate an expression tree of the definition into plain values."""
    if isinstance(expr, list):
        return [resolve(v, ctx) for v in expr]
    if not isinstance(expr, dict):
        return expr
    if set(expr) == {"Get"}:
        return _get(expr["Get"], ctx)
    if set(expr) == {"Std:Join"}:
        spec = expr["Std:Join"]
        return str(spec.get("On", "")).join(to_string(resolve(v, ctx)) for v in spec.get("Values", []))
    if set(expr) == {"Std:JsonGet"}:
        spec = expr["Std:JsonGet"]
        if "PropertyFile" in spec:
            ref = spec["PropertyFile"]
            ref = ref.get("Get", "") if isinstance(ref, dict) else str(ref)
            m = re.fullmatch(r"Steps\.([^.]+)\.PropertyFiles\.(.+)", ref)
            if not m:
                raise PipelineDefinitionError(f"bad PropertyFile reference {ref!r}")
            doc = ctx.property_file(m.group(1), m.group(2))
            where = f"property file {m.group(2)} of step {m.group(1)}"
        else:
            uri = resolve(spec["S3Uri"], ctx)
            doc, where = ctx.read_json_uri(uri), uri
        return json_get(doc, spec["Path"], where)
    return {k: resolve(v, ctx) for k, v in expr.items()}


def _get(ref: str, ctx: Context) -> Any:
    head, _, rest = ref.partition(".")
    if head == "Parameters":
        return ctx.parameter(rest)
    if head == "Execution":
        return ctx.execution_variable(rest)
    if head == "Steps":
        m = re.match(r"([^.\[]+)(.*)", rest)
        step, path = m.group(1), m.group(2).lstrip(".")
        return walk_path(ctx.step_properties(step), parse_property_path(path), f"property {ref}")
    raise PipelineDefinitionError(f"unsupported Get reference {ref!r}")


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: a == b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanOrEqualTo": lambda a, b: a >= b,
    "LessThan": lambda a, b: a < b,
    "LessThanOrEqualTo": lambda a, b: a <= b,
}


def evaluate_condition(cond: Mapping[str, Any], ctx: Context) -> bool:
    """One condition of a ConditionStep (comparisons, In, Not, Or)."""
    kind = cond["Type"]
    if kind in _COMPARE:
        left, right = resolve(cond["LeftValue"], ctx), resolve(cond["RightValue"], ctx)
        if isinstance(left, (int, float)) != isinstance(right, (int, float)):
            left, right = _coerce_pair(left, right)
        return _COMPARE[kind](left, right)
    if kind == "In":
        return resolve(cond["QueryValue"], ctx) in [resolve(v, ctx) for v in cond["Values"]]
    if kind == "Not":
        return not evaluate_condition(cond["Condition"], ctx)
    if kind == "Or":
        return any(evaluate_condition(c, ctx) for c in cond["Conditions"])
    raise PipelineDefinitionError(f"unsupported condition type {kind!r}")


def _coerce_pair(left: Any, right: Any) -> tuple[Any, Any]:
    try:
        return float(left), float(right)
    except (TypeError, ValueError):
        return str(left), str(right)


# ---- recording --------------------------------------------------------------------------
class StepRecorder(Protocol):
    def step_started(self, step: str, step_type: str) -> None: ...
    def step_finished(self, step: str, status: str, metadata: dict[str, Any], failure_reason: str | None) -> None: ...


# ---- the executor -------------------------------------------------------------------------
#: CloudWatch Logs groups of SageMaker jobs, by pipeline step type
_LOG_GROUPS = {"Processing": "/aws/sagemaker/ProcessingJobs", "Training": "/aws/sagemaker/TrainingJobs",
               "Transform": "/aws/sagemaker/TransformJobs"}


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
        self.params = resolve_parameters(definition, parameters)
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
        self._log: LogStream | None = None  # the running step's CloudWatch Logs stream
        self.graph = step_graph(definition)
        self.properties: dict[str, dict[str, Any]] = {}
        self.property_files: dict[str, dict[str, Any]] = {}
        self.outcomes: dict[str, bool] = {}
        self.start_time = time.time()

    def progress(self, line: str) -> None:
        """A progress line; during a job step it also goes to the job's log stream (as the job would log it)."""
        self._say(line)
        if self._log is not None:
            self._log.put(re.sub(r"^\[[^\]]*\] ", "", line))

    def _log_stream(self, node: StepNode) -> LogStream | None:
        """The CloudWatch Logs stream AWS would give this step's job or function (None: no job, no log)."""
        group = _LOG_GROUPS.get(node.type)
        if group is not None:
            return LogStream(self.config.data_dir, group, f"{self._job_name(node)}/algo-1-{int(time.time())}")
        if node.type == "Lambda":
            from infra.local import awslambda

            function = awslambda.function_name_of(node.spec.get("FunctionArn", "unknown"))
            return LogStream(self.config.data_dir, f"/aws/lambda/{function}",
                             time.strftime("%Y/%m/%d/[$LATEST]", time.gmtime()) + uuid.uuid4().hex)
        return None

    # -- Context --
    def parameter(self, name: str) -> Any:
        if name not in self.params:
            raise PipelineDefinitionError(f"unknown parameter {name!r}")
        return self.params[name]

    def execution_variable(self, name: str) -> Any:
        variables = {
            "PipelineExecutionId": self.execution_id,
            "PipelineExecutionArn": self.execution_arn,
            "PipelineName": self.pipeline_name,
            "PipelineArn": pipeline_arn(self.config.region, self.config.account_id, self.pipeline_name),
            "StartDateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.start_time)),
            "CurrentDateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if name not in variables:
            raise PipelineDefinitionError(f"unknown execution variable {name!r}")
        return variables[name]

    def step_properties(self, step: str) -> Mapping[str, Any]:
        if step not in self.properties:
            raise PipelineDefinitionError(f"step {step} has not run, so its properties are not available")
        return self.properties[step]

    def property_file(self, step: str, name: str) -> Any:
        try:
            return self.property_files[step][name]
        except KeyError:
            raise PipelineDefinitionError(f"step {step} has no property file {name!r}") from None

    def read_json_uri(self, uri: str) -> Any:
        return json.loads(self.local_path(uri).read_text())

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

    # -- running --
    def run(self) -> ExecutionResult:
        """Run every eligible step in dependency order; stop at the first failure."""
        done: dict[str, str] = {}  # step → Succeeded | Failed | Skipped
        results: dict[str, dict[str, Any]] = {}
        order = list(self.graph)  # definition order breaks ties, as a reader expects
        while True:
            ready = [n for n in order if n not in done and all(done.get(d) == "Succeeded" for d in
                                                                     self.graph[n].depends_on - self._guard_names(n))
                     and all(c in self.outcomes for c, _ in self.graph[n].guards)]
            if not ready:
                break
            name = ready[0]
            node = self.graph[name]
            if any(self.outcomes[c] != want for c, want in node.guards):
                done[name] = "Skipped"  # the other branch: not executed, not listed (as on SageMaker)
                continue
            status, metadata, reason = self._run_step(node)
            done[name] = status
            results[name] = {"status": status, "metadata": metadata, "failure_reason": reason}
            if status == "Failed":
                return ExecutionResult("Failed", f"Step {name} failed: {reason}", name, results)
        return ExecutionResult("Succeeded", None, None, results)

    def _guard_names(self, name: str) -> set[str]:
        return {c for c, _ in self.graph[name].guards}

    def _run_step(self, node: StepNode) -> tuple[str, dict[str, Any], str | None]:
        started = time.time()
        self.progress(f"[{node.name}] {node.type} step started")
        if self.recorder:
            self.recorder.step_started(node.name, node.type)
        runner = getattr(self, f"_run_{node.type.lower()}", None)
        metadata: dict[str, Any] = {}
        self._log = self._log_stream(node)
        try:
            if runner is None:
                raise StepFailed(f"local mode cannot run steps of type {node.type}")
            metadata = runner(node) or {}
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
        self._log = None
        if self.recorder:
            self.recorder.step_finished(node.name, status, metadata, reason)
        return status, metadata, reason

    def _started_job(self, node: StepNode) -> dict[str, Any]:
        """A failed step's metadata still names the job it started (as SageMaker's does), so its log is found."""
        kinds = {"Processing": ("ProcessingJob", "processing-job"), "Training": ("TrainingJob", "training-job"),
                 "Transform": ("TransformJob", "transform-job")}
        if node.type in kinds and node.name in self._jobs:
            key, kind = kinds[node.type]
            return {key: {"Arn": self._job_arn(kind, self._jobs[node.name])}}
        if node.type == "Lambda" and node.spec.get("FunctionArn"):
            return {"Lambda": {"Arn": node.spec["FunctionArn"]}}
        return {}

    def _job_name(self, node: StepNode) -> str:
        """The step's job name (one per step and execution, as SageMaker Pipelines names them)."""
        if node.name not in self._jobs:
            self._jobs[node.name] = f"pipelines-{self.execution_id}-{node.name}-{uuid.uuid4().hex[:6]}"[:63]
        return self._jobs[node.name]

    def _job_arn(self, kind: str, name: str) -> str:
        return sagemaker_arn(self.config.region, self.config.account_id, kind, name)

    # -- Processing --
    def _run_processing(self, node: StepNode) -> dict[str, Any]:
        args = resolve(node.spec["Arguments"], self)
        job = self._job_name(node)
        job_dir = self.work_dir / node.name
        if job_dir.exists():
            shutil.rmtree(job_dir)
        container = job_dir / "opt" / "ml"

        def local(path: str) -> str:
            # /opt/ml/... inside the container → this job's folder
            return str(container / path[len(CONTAINER_ROOT):]) if path.startswith(CONTAINER_ROOT) else path

        def rewrite(text: str) -> str:
            return re.sub(r"/opt/ml/[^\s:;,\"']*", lambda m: local(m.group(0)), text)

        for inp in args.get("ProcessingInputs", []):
            s3 = inp.get("S3Input")
            if not s3:
                raise StepFailed(f"input {inp.get('InputName')}: only S3 inputs run locally")
            self.download_prefix(s3["S3Uri"], Path(local(s3["LocalPath"])))
        outputs = args.get("ProcessingOutputConfig", {}).get("Outputs", [])
        for out in outputs:
            Path(local(out["S3Output"]["LocalPath"])).mkdir(parents=True, exist_ok=True)

        app = args["AppSpecification"]
        runtime = self._script_runtime(app.get("ImageUri", ""))
        entry = list(app.get("ContainerEntrypoint") or [])
        if not entry:
            raise StepFailed("AppSpecification.ContainerEntrypoint is empty; local mode runs scripts only")
        if Path(entry[0]).name not in runtime.entrypoint:
            # what the container answers when its entrypoint is not there
            raise StepFailed(f"ClientError: executable file not found in $PATH: {entry[0]!r} "
                             f"(image {runtime.name} has {', '.join(runtime.entrypoint) or 'no interpreter'})")
        entry[0] = sys.executable
        argv = [rewrite(str(a)) for a in entry + list(app.get("ContainerArguments") or [])]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update({k: rewrite(str(v)) for k, v in (args.get("Environment") or {}).items()})
        job_path = [Path(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        self._check_python(runtime, argv, container, job_path)
        # the container's imports: its Python's standard library, its modules and the job's own code
        guard = contract.write_guard(job_dir / "container-contract", runtime, [container])
        env["PYTHONPATH"] = os.pathsep.join([str(guard), *map(str, job_path)])
        log_path = job_dir / "job.log"
        timeout = args.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400)
        self.progress(f"[{node.name}] {' '.join(Path(a).name if a.startswith(str(job_dir)) else a for a in argv)}")
        stream = self._log or LogStream(self.config.data_dir, _LOG_GROUPS["Processing"], f"{job}/algo-1")
        with open(log_path, "wb") as log:
            returncode = run_logged(argv, cwd=job_dir, env=env, timeout_s=timeout, log_file=log, stream=stream)
        if returncode is None:
            raise StepFailed(f"ProcessingJob {job} ran past MaxRuntimeInSeconds={timeout}")
        if returncode != 0:
            tail = _tail(log_path)
            raise StepFailed(f"AlgorithmError: script exited with code {returncode}: {tail} "
                             f"(log: {log_path})")
        for out in outputs:
            self.upload_dir(Path(local(out["S3Output"]["LocalPath"])), out["S3Output"]["S3Uri"])
        props = dict(args)
        props.update({"ProcessingJobName": job, "ProcessingJobArn": self._job_arn("processing-job", job),
                      "ProcessingJobStatus": "Completed"})
        self.properties[node.name] = props
        self._load_property_files(node, outputs)
        return {"ProcessingJob": {"Arn": props["ProcessingJobArn"]}}

    def _script_runtime(self, image: str) -> Runtime:
        """The manifest of the image a processing job runs its script in (one AWS would run)."""
        try:
            runtime = runtime_for_image(image)
        except UnknownImage as exc:
            raise StepFailed(f"ClientError: {exc}") from None
        if runtime.kind != "script":
            raise StepFailed(f"ClientError: image {runtime.name} is a built-in algorithm; a processing job "
                             "needs an image that runs your script")
        mismatches = contract.version_mismatches(runtime)
        if mismatches and self._log is not None:
            # an import cannot tell versions apart: the job's log says where this machine differs from the image
            self._log.put("local mode: module versions differ from the image: " + "; ".join(mismatches))
        return runtime

    def _check_python(self, runtime: Runtime, argv: list[str], container: Path, job_path: list[Path]) -> None:
        """Fail the job as its container would when its code needs a newer Python than the image's.

        Locally the script runs on this interpreter, which may accept syntax and calls (``zip(strict=)``,
        ``X | Y`` types) the image's older Python rejects; so the job's own code is checked first.
        """
        assert runtime.python is not None
        if runtime.python >= sys.version_info[:2] or len(argv) < 2 or not argv[1].endswith(".py"):
            return
        roots = [p for p in job_path if p.resolve().is_relative_to(container.resolve())]
        problems = contract.python_violations(contract.job_code(Path(argv[1]), roots), runtime.python)
        if problems:
            shown = "; ".join(p.replace(str(container), "/opt/ml") for p in problems[:3])
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            raise StepFailed(f"AlgorithmError: the job's code needs a newer Python than image {runtime.name}'s "
                             f"{runtime.python[0]}.{runtime.python[1]}: {shown}{more}")

    def _load_property_files(self, node: StepNode, outputs: list[dict[str, Any]]) -> None:
        files: dict[str, Any] = {}
        for spec in node.spec.get("PropertyFiles", []):
            out = [o for o in outputs if o.get("OutputName") == spec["OutputName"]]
            if not out:
                raise StepFailed(f"property file {spec['PropertyFileName']}: no output named {spec['OutputName']}")
            uri = out[0]["S3Output"]["S3Uri"].rstrip("/") + "/" + spec["FilePath"]
            path = self.local_path(uri)
            if not path.is_file():
                raise StepFailed(f"property file {spec['PropertyFileName']}: the job wrote no {spec['FilePath']} "
                                 f"in output {spec['OutputName']} ({uri})")
            try:
                files[spec["PropertyFileName"]] = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise StepFailed(f"property file {spec['PropertyFileName']} ({uri}) is not JSON: {exc}") from exc
        self.property_files[node.name] = files

    # -- Training --
    def _run_training(self, node: StepNode) -> dict[str, Any]:
        args = resolve(node.spec["Arguments"], self)
        image = args.get("AlgorithmSpecification", {}).get("TrainingImage", "")
        try:
            algorithm = runtime_for_image(image).algorithm
        except UnknownImage as exc:
            raise StepFailed(f"ClientError: {exc}") from None
        if algorithm != "deepar":
            raise StepFailed(f"local mode trains only the built-in DeepAR image, not {image!r}")
        from infra.local.sagemaker import deepar

        job = self._job_name(node)
        job_dir = self.work_dir / node.name
        if job_dir.exists():
            shutil.rmtree(job_dir)
        channels: dict[str, Path] = {}
        for channel in args.get("InputDataConfig", []):
            src = channel["DataSource"]["S3DataSource"]["S3Uri"]
            dest = job_dir / "input" / "data" / channel["ChannelName"]
            self.download_prefix(src, dest)
            channels[channel["ChannelName"]] = dest
        model_dir = job_dir / "model"
        model_dir.mkdir(parents=True)
        hyperparameters = {k: str(v) for k, v in (args.get("HyperParameters") or {}).items()}
        self.progress(f"[{node.name}] GluonTS DeepAR, channels {', '.join(channels)}, "
                      + ", ".join(f"{k}={v}" for k, v in sorted(hyperparameters.items())))
        try:
            # the trainer's progress bar goes to stderr: stdout may carry a command's JSON result
            with contextlib.redirect_stdout(sys.stderr):
                metrics = deepar.train(hyperparameters, channels, model_dir, progress=self.show_progress)
        except deepar.AlgorithmError as exc:
            raise StepFailed(f"AlgorithmError: {exc}") from exc
        tar_path = job_dir / "model.tar.gz"
        with tarfile.open(tar_path, "w:gz") as tar:
            for path in sorted(model_dir.rglob("*")):
                tar.add(path, arcname=path.relative_to(model_dir).as_posix(), recursive=False)
        artifact = f"{args['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{job}/output/model.tar.gz"
        atomic_write_bytes(self.local_path(artifact), tar_path.read_bytes(), fsync=False)
        props = dict(args)
        props.update({
            "TrainingJobName": job, "TrainingJobArn": self._job_arn("training-job", job),
            "TrainingJobStatus": "Completed", "ModelArtifacts": {"S3ModelArtifacts": artifact},
            "FinalMetricDataList": [{"MetricName": k, "Value": float(v)} for k, v in sorted(metrics.items())],
        })
        self.properties[node.name] = props
        shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()) if isinstance(v, (int, float)))
        self.progress(f"[{node.name}] {shown}")
        return {"TrainingJob": {"Arn": props["TrainingJobArn"]}}

    # -- Tuning --
    def _run_tuning(self, node: StepNode) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        from infra.local.sagemaker.tuning import MAX_SUMMARIES, TERMINAL, _ranked

        if self.client is None:
            raise StepFailed("no SageMaker client to run the tuning job with")
        args = resolve(node.spec["Arguments"], self)
        name = f"{self.execution_id[:12]}-{uuid.uuid4().hex[:12]}"
        try:
            arn = self.client.create_hyper_parameter_tuning_job(HyperParameterTuningJobName=name,
                                                                **args)["HyperParameterTuningJobArn"]
        except ClientError as exc:
            error = exc.response["Error"]
            raise StepFailed(f"{error['Code']}: {error['Message']}") from None
        limits = args["HyperParameterTuningJobConfig"]["ResourceLimits"]
        self.progress(f"[{node.name}] tuning job {name}: up to {limits.get('MaxNumberOfTrainingJobs')} DeepAR "
                      f"training jobs, {limits['MaxParallelTrainingJobs']} at a time, "
                      f"{args['HyperParameterTuningJobConfig']['Strategy']} search")
        shown: set[str] = set()
        while True:
            desc = self.client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
            jobs = self._tuning_summaries(name)
            for job in jobs:
                if job["TrainingJobStatus"] in TERMINAL and job["TrainingJobName"] not in shown:
                    shown.add(job["TrainingJobName"])
                    metric = job.get("FinalHyperParameterTuningJobObjectiveMetric")
                    seconds = (job["TrainingEndTime"] - job["TrainingStartTime"]).total_seconds()
                    result = f"{metric['MetricName']}={metric['Value']:.4g}" if metric else job.get("FailureReason")
                    tuned = ", ".join(f"{k}={v}" for k, v in sorted(job["TunedHyperParameters"].items()))
                    self.progress(f"[{node.name}] {job['TrainingJobName']} {job['TrainingJobStatus']} in "
                                  f"{seconds:.0f} s: {result} ({tuned})")
            if desc["HyperParameterTuningJobStatus"] in TERMINAL:
                break
            time.sleep(1.0)
        if desc["HyperParameterTuningJobStatus"] != "Completed":
            raise StepFailed(f"tuning job {name} {desc['HyperParameterTuningJobStatus']}: "
                             f"{desc.get('FailureReason', '')}")
        best = desc.get("BestTrainingJob")
        if not best:
            raise StepFailed(f"tuning job {name} completed without a training job that reported its objective")
        props = dict(desc)
        props["TrainingJobSummaries"] = _ranked(self._tuning_summaries(name))[:MAX_SUMMARIES]
        self.properties[node.name] = props
        metric = best["FinalHyperParameterTuningJobObjectiveMetric"]
        self.progress(f"[{node.name}] best: {best['TrainingJobName']} {metric['MetricName']}={metric['Value']:.4g}")
        return {"TuningJob": {"Arn": arn}}

    def _tuning_summaries(self, name: str) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {"HyperParameterTuningJobName": name, "MaxResults": 100}
            if token:
                kwargs["NextToken"] = token
            page = self.client.list_training_jobs_for_hyper_parameter_tuning_job(**kwargs)
            jobs += page["TrainingJobSummaries"]
            token = page.get("NextToken")
            if not token:
                return jobs

    # -- CreateModel --
    def _run_model(self, node: StepNode) -> dict[str, Any]:
        args = resolve(node.spec["Arguments"], self)
        name = args.get("ModelName") or self._job_name(node)
        props = dict(args)
        props.update({"ModelName": name, "ModelArn": self._job_arn("model", name)})
        if not props.get("PrimaryContainer", {}).get("ModelDataUrl"):
            raise StepFailed("CreateModel: PrimaryContainer.ModelDataUrl is missing")
        self.properties[node.name] = props
        return {"Model": {"Arn": props["ModelArn"]}}

    # -- BatchForecast --
    def _run_transform(self, node: StepNode) -> dict[str, Any]:
        args = resolve(node.spec["Arguments"], self)
        models = [p for p in self.properties.values() if p.get("ModelName") == args["ModelName"] and "ModelArn" in p]
        if not models:
            raise StepFailed(f"Transform: model {args['ModelName']} was not created by this execution")
        container = models[0]["PrimaryContainer"]
        from infra.local.sagemaker import deepar, deepar_format

        job = self._job_name(node)
        job_dir = self.work_dir / node.name
        if job_dir.exists():
            shutil.rmtree(job_dir)
        model_dir = job_dir / "model"
        model_dir.mkdir(parents=True)
        with tarfile.open(self.local_path(container["ModelDataUrl"])) as tar:
            tar.extractall(model_dir, filter="data")
        env = {**(container.get("Environment") or {}), **(args.get("Environment") or {})}
        try:
            configuration = deepar_format.inference_config_from_env(env)
        except deepar_format.InvalidRequest as exc:
            raise StepFailed(f"ClientError: {exc}") from exc
        predictor = deepar.DeepARPredictor.load(model_dir)
        input_dir = job_dir / "input"
        src_uri = args["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
        self.download_prefix(src_uri, input_dir)
        out_uri = args["TransformOutput"]["S3OutputPath"].rstrip("/")
        lines_done = 0
        for path in sorted(p for p in input_dir.rglob("*") if p.is_file()):
            rel = path.relative_to(input_dir).as_posix()
            try:
                lines_done += deepar.batch_transform(predictor, path, self.local_path(f"{out_uri}/{rel}.out"),
                                                     configuration)
            except deepar_format.InvalidRequest as exc:
                raise StepFailed(f"ClientError: {rel}: {exc}") from exc
        self.progress(f"[{node.name}] {lines_done} forecasts written to {out_uri}")
        props = dict(args)
        props.update({"TransformJobName": job, "TransformJobArn": self._job_arn("transform-job", job),
                      "TransformJobStatus": "Completed"})
        self.properties[node.name] = props
        return {"TransformJob": {"Arn": props["TransformJobArn"]}}

    # -- QualityGate --
    def _run_condition(self, node: StepNode) -> dict[str, Any]:
        conditions = node.spec["Arguments"].get("Conditions", [])
        outcome = all(evaluate_condition(c, self) for c in conditions)
        self.outcomes[node.name] = outcome
        self.properties[node.name] = {"Outcome": outcome}
        self.progress(f"[{node.name}] outcome {outcome}")
        return {"Condition": {"Outcome": "True" if outcome else "False"}}

    def _run_fail(self, node: StepNode) -> dict[str, Any]:
        message = to_string(resolve(node.spec.get("Arguments", {}).get("ErrorMessage", ""), self))
        raise StepFailed(message or "Fail step reached")

    # -- RegisterModel --
    def _run_registermodel(self, node: StepNode) -> dict[str, Any]:
        args = resolve(node.spec["Arguments"], self)
        if self.client is None:
            raise StepFailed("no SageMaker client to register the model with")
        group = args.get("ModelPackageGroupName")
        if group:
            # SageMaker Pipelines creates the group on first registration
            try:
                self.client.describe_model_package_group(ModelPackageGroupName=group)
            except Exception:  # noqa: BLE001 - not found → create
                self.client.create_model_package_group(ModelPackageGroupName=group,
                                                       ModelPackageGroupDescription="aircast DeepAR forecasters")
        request = {k: v for k, v in args.items() if k not in ("SkipModelValidation",)}
        metrics = request.get("ModelMetrics")
        if metrics:
            request["ModelMetrics"] = {k: v for k, v in metrics.items() if v}
        arn = self.client.create_model_package(**request)["ModelPackageArn"]
        self.properties[node.name] = self.client.describe_model_package(ModelPackageName=arn)
        self.progress(f"[{node.name}] registered {arn} ({args.get('ModelApprovalStatus')})")
        return {"RegisterModel": {"Arn": arn}}

    # -- Deploy --
    def _run_lambda(self, node: StepNode) -> dict[str, Any]:
        from infra.local import awslambda
        from infra.local.core.errors import ServiceError

        payload = resolve(node.spec.get("Arguments", {}), self)
        arn = node.spec["FunctionArn"]
        name = awslambda.function_name_of(arn)
        functions = awslambda.LocalLambdaBackend(self.config.data_dir, self.config.region, self.config.account_id)
        try:
            # SageMaker invokes the step's function synchronously and waits for its result
            record = functions.run(arn, json.dumps(payload).encode(), invocation_type="RequestResponse")
        except ServiceError as exc:
            raise StepFailed(f"Lambda {name} could not be invoked: {exc.code}: {exc.message}") from exc
        if record.function_error:
            raise StepFailed(f"Lambda {name} failed: {record.error()}")
        result = record.result()
        result = result if isinstance(result, dict) else {"result": result}
        outputs = []
        for spec in node.spec.get("OutputParameters", []):
            name = spec["OutputName"]
            if name not in result:
                raise StepFailed(f"Lambda output {name!r} missing from the function's result {json.dumps(result)}")
            outputs.append({"Name": name, "Value": to_string(result[name]) if not isinstance(result[name], str)
                            else result[name]})
        self.properties[node.name] = {"OutputParameters": outputs}
        self.progress(f"[{node.name}] {json.dumps(result, default=str)}")
        return {"Lambda": {"Arn": arn, "OutputParameters": outputs}}


def _tail(path: Path, lines: int = 6, limit: int = 900) -> str:
    text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    out = " | ".join(t.strip() for t in text if t.strip())
    return out[-limit:]

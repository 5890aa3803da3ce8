"""The container jobs of a pipeline, run on this machine: processing (the step's script under its image's
contract), training (the built-in DeepAR image → GluonTS DeepAR) and batch transform (DeepAR forecasts).

Each job runs as SageMaker runs it: its inputs copied from S3 into the job's own ``/opt/ml`` folder, its
outputs uploaded after it succeeds, its log in CloudWatch Logs (``/aws/sagemaker/<Kind>Jobs``), its
failure reason in SageMaker's words (``ClientError``, ``AlgorithmError``).

- ``Processing``: the step's script in a subprocess; any argument, environment value or channel path
  under ``/opt/ml/`` is rewritten to the job's own folder. The script runs under its image's contract
  (:mod:`infra.local.runtimes`): an image without a manifest is refused, an import of a module the image
  lacks raises ``ModuleNotFoundError`` as in the container, and code that needs a newer Python than the
  image's fails the job before it starts.
- ``Training``: the built-in DeepAR image → :func:`infra.local.sagemaker.deepar.train` with the channels
  and hyperparameters; writes ``model.tar.gz``.
- ``Transform``: DeepAR batch transform, one output line per input line (``<file>.out``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.local.logs import LogStream, run_logged
from infra.local.runtimes import Runtime, UnknownImage, contract, runtime_for_image
from infra.local.s3 import atomic_write_bytes
from infra.local.sagemaker.expressions import resolve
from infra.local.sagemaker.pipeline_definition import StepNode
from infra.local.sagemaker.steps import StepFailed

if TYPE_CHECKING:
    from infra.local.sagemaker.executor import PipelineExecutor

CONTAINER_ROOT = "/opt/ml/"
#: CloudWatch Logs groups of SageMaker jobs, by pipeline step type
LOG_GROUPS = {"Processing": "/aws/sagemaker/ProcessingJobs", "Training": "/aws/sagemaker/TrainingJobs",
              "Transform": "/aws/sagemaker/TransformJobs"}


@dataclass(frozen=True)
class ContainerPaths:
    """A job's ``/opt/ml`` inside its container, played by a folder of the job's own."""

    root: Path

    def local(self, path: str) -> str:
        """``/opt/ml/...`` → the same path under the job's folder (other paths unchanged)."""
        return str(self.root / path[len(CONTAINER_ROOT):]) if path.startswith(CONTAINER_ROOT) else path

    def rewrite(self, text: str) -> str:
        """Every ``/opt/ml/...`` path in an argument or environment value → the job's folder."""
        return re.sub(r"/opt/ml/[^\s:;,\"']*", lambda m: self.local(m.group(0)), text)


def run_processing(ex: PipelineExecutor, node: StepNode) -> dict[str, Any]:
    """A processing job: its inputs in, the script run as its image runs it, its outputs and property files out."""
    args = resolve(node.spec["Arguments"], ex.ctx)
    job = ex.job_name(node)
    job_dir = _emptied(ex.work_dir / node.name)
    paths = ContainerPaths(job_dir / "opt" / "ml")
    for inp in args.get("ProcessingInputs", []):
        s3 = inp.get("S3Input")
        if not s3:
            raise StepFailed(f"input {inp.get('InputName')}: only S3 inputs run locally")
        ex.download_prefix(s3["S3Uri"], Path(paths.local(s3["LocalPath"])))
    outputs = args.get("ProcessingOutputConfig", {}).get("Outputs", [])
    for out in outputs:
        Path(paths.local(out["S3Output"]["LocalPath"])).mkdir(parents=True, exist_ok=True)
    app = args["AppSpecification"]
    runtime = _script_runtime(app.get("ImageUri", ""), ex.log)
    argv, env = _script_command(runtime, app, args.get("Environment") or {}, job_dir, paths)
    log_path = job_dir / "job.log"
    timeout = args.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 86400)
    ex.progress(f"[{node.name}] {' '.join(Path(a).name if a.startswith(str(job_dir)) else a for a in argv)}")
    stream = ex.log or LogStream(ex.config.data_dir, LOG_GROUPS["Processing"], f"{job}/algo-1")
    with open(log_path, "wb") as log:
        returncode = run_logged(argv, cwd=job_dir, env=env, timeout_s=timeout, log_file=log, stream=stream)
    if returncode is None:
        raise StepFailed(f"ProcessingJob {job} ran past MaxRuntimeInSeconds={timeout}")
    if returncode != 0:
        raise StepFailed(f"AlgorithmError: script exited with code {returncode}: {_tail(log_path)} "
                         f"(log: {log_path})")
    for out in outputs:
        ex.upload_dir(Path(paths.local(out["S3Output"]["LocalPath"])), out["S3Output"]["S3Uri"])
    props = dict(args)
    props.update({"ProcessingJobName": job, "ProcessingJobArn": ex.job_arn("processing-job", job),
                  "ProcessingJobStatus": "Completed"})
    ex.ctx.properties[node.name] = props
    _load_property_files(ex, node, outputs)
    return {"ProcessingJob": {"Arn": props["ProcessingJobArn"]}}


def _emptied(job_dir: Path) -> Path:
    """The job's folder, without what an earlier run of the step left there."""
    if job_dir.exists():
        shutil.rmtree(job_dir)
    return job_dir


def _script_runtime(image: str, log: LogStream | None) -> Runtime:
    """The manifest of the image a processing job runs its script in (one AWS would run)."""
    try:
        runtime = runtime_for_image(image)
    except UnknownImage as exc:
        raise StepFailed(f"ClientError: {exc}") from None
    if runtime.kind != "script":
        raise StepFailed(f"ClientError: image {runtime.name} is a built-in algorithm; a processing job "
                         "needs an image that runs your script")
    mismatches = contract.version_mismatches(runtime)
    if mismatches and log is not None:
        # an import cannot tell versions apart: the job's log says where this machine differs from the image
        log.put("local mode: module versions differ from the image: " + "; ".join(mismatches))
    return runtime


def _script_command(runtime: Runtime, app: dict[str, Any], environment: dict[str, Any], job_dir: Path,
                    paths: ContainerPaths) -> tuple[list[str], dict[str, str]]:
    """The processing job's command line and environment, as its image runs them: the image's interpreter,
    its modules only (:mod:`infra.local.runtimes`), ``/opt/ml`` paths in the job's folder."""
    entry = list(app.get("ContainerEntrypoint") or [])
    if not entry:
        raise StepFailed("AppSpecification.ContainerEntrypoint is empty; local mode runs scripts only")
    if Path(entry[0]).name not in runtime.entrypoint:
        # what the container answers when its entrypoint is not there
        raise StepFailed(f"ClientError: executable file not found in $PATH: {entry[0]!r} "
                         f"(image {runtime.name} has {', '.join(runtime.entrypoint) or 'no interpreter'})")
    entry[0] = sys.executable
    argv = [paths.rewrite(str(a)) for a in entry + list(app.get("ContainerArguments") or [])]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update({k: paths.rewrite(str(v)) for k, v in environment.items()})
    job_path = [Path(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    _check_python(runtime, argv, paths.root, job_path)
    # the container's imports: its Python's standard library, its modules and the job's own code
    guard = contract.write_guard(job_dir / "container-contract", runtime, [paths.root])
    env["PYTHONPATH"] = os.pathsep.join([str(guard), *map(str, job_path)])
    return argv, env


def _check_python(runtime: Runtime, argv: list[str], container: Path, job_path: list[Path]) -> None:
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


def _load_property_files(ex: PipelineExecutor, node: StepNode, outputs: list[dict[str, Any]]) -> None:
    files: dict[str, Any] = {}
    for spec in node.spec.get("PropertyFiles", []):
        out = [o for o in outputs if o.get("OutputName") == spec["OutputName"]]
        if not out:
            raise StepFailed(f"property file {spec['PropertyFileName']}: no output named {spec['OutputName']}")
        uri = out[0]["S3Output"]["S3Uri"].rstrip("/") + "/" + spec["FilePath"]
        path = ex.local_path(uri)
        if not path.is_file():
            raise StepFailed(f"property file {spec['PropertyFileName']}: the job wrote no {spec['FilePath']} "
                             f"in output {spec['OutputName']} ({uri})")
        try:
            files[spec["PropertyFileName"]] = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise StepFailed(f"property file {spec['PropertyFileName']} ({uri}) is not JSON: {exc}") from exc
    ex.ctx.property_files[node.name] = files


def run_training(ex: PipelineExecutor, node: StepNode) -> dict[str, Any]:
    args = resolve(node.spec["Arguments"], ex.ctx)
    image = args.get("AlgorithmSpecification", {}).get("TrainingImage", "")
    try:
        algorithm = runtime_for_image(image).algorithm
    except UnknownImage as exc:
        raise StepFailed(f"ClientError: {exc}") from None
    if algorithm != "deepar":
        raise StepFailed(f"local mode trains only the built-in DeepAR image, not {image!r}")
    from infra.local.sagemaker import deepar

    job = ex.job_name(node)
    job_dir = _emptied(ex.work_dir / node.name)
    channels: dict[str, Path] = {}
    for channel in args.get("InputDataConfig", []):
        src = channel["DataSource"]["S3DataSource"]["S3Uri"]
        dest = job_dir / "input" / "data" / channel["ChannelName"]
        ex.download_prefix(src, dest)
        channels[channel["ChannelName"]] = dest
    model_dir = job_dir / "model"
    model_dir.mkdir(parents=True)
    hyperparameters = {k: str(v) for k, v in (args.get("HyperParameters") or {}).items()}
    ex.progress(f"[{node.name}] GluonTS DeepAR, channels {', '.join(channels)}, "
                + ", ".join(f"{k}={v}" for k, v in sorted(hyperparameters.items())))
    try:
        # the trainer's progress bar goes to stderr: stdout may carry a command's JSON result
        with contextlib.redirect_stdout(sys.stderr):
            metrics = deepar.train(hyperparameters, channels, model_dir, progress=ex.show_progress)
    except deepar.AlgorithmError as exc:
        raise StepFailed(f"AlgorithmError: {exc}") from exc
    tar_path = job_dir / "model.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for path in sorted(model_dir.rglob("*")):
            tar.add(path, arcname=path.relative_to(model_dir).as_posix(), recursive=False)
    artifact = f"{args['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{job}/output/model.tar.gz"
    atomic_write_bytes(ex.local_path(artifact), tar_path.read_bytes(), fsync=False)
    props = dict(args)
    props.update({
        "TrainingJobName": job, "TrainingJobArn": ex.job_arn("training-job", job),
        "TrainingJobStatus": "Completed", "ModelArtifacts": {"S3ModelArtifacts": artifact},
        "FinalMetricDataList": [{"MetricName": k, "Value": float(v)} for k, v in sorted(metrics.items())],
    })
    ex.ctx.properties[node.name] = props
    shown = ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()) if isinstance(v, (int, float)))
    ex.progress(f"[{node.name}] {shown}")
    return {"TrainingJob": {"Arn": props["TrainingJobArn"]}}


def run_transform(ex: PipelineExecutor, node: StepNode) -> dict[str, Any]:
    args = resolve(node.spec["Arguments"], ex.ctx)
    models = [p for p in ex.ctx.properties.values() if p.get("ModelName") == args["ModelName"] and "ModelArn" in p]
    if not models:
        raise StepFailed(f"Transform: model {args['ModelName']} was not created by this execution")
    container = models[0]["PrimaryContainer"]
    from infra.local.sagemaker import deepar, deepar_format

    job = ex.job_name(node)
    job_dir = _emptied(ex.work_dir / node.name)
    model_dir = job_dir / "model"
    model_dir.mkdir(parents=True)
    with tarfile.open(ex.local_path(container["ModelDataUrl"])) as tar:
        tar.extractall(model_dir, filter="data")
    env = {**(container.get("Environment") or {}), **(args.get("Environment") or {})}
    try:
        configuration = deepar_format.inference_config_from_env(env)
    except deepar_format.InvalidRequest as exc:
        raise StepFailed(f"ClientError: {exc}") from exc
    predictor = deepar.DeepARPredictor.load(model_dir)
    input_dir = job_dir / "input"
    src_uri = args["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"]
    ex.download_prefix(src_uri, input_dir)
    out_uri = args["TransformOutput"]["S3OutputPath"].rstrip("/")
    lines_done = 0
    for path in sorted(p for p in input_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(input_dir).as_posix()
        try:
            lines_done += deepar.batch_transform(predictor, path, ex.local_path(f"{out_uri}/{rel}.out"),
                                                 configuration)
        except deepar_format.InvalidRequest as exc:
            raise StepFailed(f"ClientError: {rel}: {exc}") from exc
    ex.progress(f"[{node.name}] {lines_done} forecasts written to {out_uri}")
    props = dict(args)
    props.update({"TransformJobName": job, "TransformJobArn": ex.job_arn("transform-job", job),
                  "TransformJobStatus": "Completed"})
    ex.ctx.properties[node.name] = props
    return {"TransformJob": {"Arn": props["TransformJobArn"]}}


def _tail(path: Path, lines: int = 6, limit: int = 900) -> str:
    text = path.read_text(errors="replace").strip().splitlines()[-lines:]
    out = " | ".join(t.strip() for t in text if t.strip())
    return out[-limit:]

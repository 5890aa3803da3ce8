"""The pipeline steps that are not container jobs: ``Tuning`` (the local Automatic Model Tuning through the
SageMaker client: its properties are the describe response plus ``TrainingJobSummaries``, best first, at
most 50), ``Model`` (records the model), ``Condition`` / ``Fail`` (evaluated here), ``RegisterModel`` (the
local Model Registry) and ``Lambda`` (the local Lambda, synchronously)."""

from __future__ import annotations

import json
import math
import uuid
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from infra.local.core.errors import ServiceError
from infra.local.core.poll import poll_until
from infra.local.sagemaker.expressions import evaluate_condition, resolve, to_string
from infra.local.sagemaker.pipeline_definition import StepNode
from infra.local.sagemaker.tuning import MAX_SUMMARIES, TERMINAL, ranked

if TYPE_CHECKING:
    from infra.local.sagemaker.executor import PipelineExecutor

TUNING_POLL_S = 1.0


class StepFailed(RuntimeError):
    """A step failed; the message is its FailureReason."""


def run_tuning(ex: PipelineExecutor, node: StepNode) -> dict[str, Any]:
    if ex.client is None:
        raise StepFailed("no SageMaker client to run the tuning job with")
    args = resolve(node.spec["Arguments"], ex.ctx)
    name = f"{ex.execution_id[:12]}-{uuid.uuid4().hex[:12]}"
    try:
        arn = ex.client.create_hyper_parameter_tuning_job(HyperParameterTuningJobName=name,
                                                          **args)["HyperParameterTuningJobArn"]
    except ClientError as exc:
        error = exc.response["Error"]
        raise StepFailed(f"{error['Code']}: {error['Message']}") from None
    limits = args["HyperParameterTuningJobConfig"]["ResourceLimits"]
    ex.progress(f"[{node.name}] tuning job {name}: up to {limits.get('MaxNumberOfTrainingJobs')} DeepAR "
                f"training jobs, {limits['MaxParallelTrainingJobs']} at a time, "
                f"{args['HyperParameterTuningJobConfig']['Strategy']} search")
    shown: set[str] = set()

    def ended() -> dict[str, Any] | None:
        desc = ex.client.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        _report_trials(ex, node, _tuning_summaries(ex, name), shown)
        return desc if desc["HyperParameterTuningJobStatus"] in TERMINAL else None

    # the tuning job ends by itself (its MaxRuntimeInSeconds); this step waits as long as it runs
    desc = poll_until(ended, math.inf, TUNING_POLL_S, f"tuning job {name}")
    if desc["HyperParameterTuningJobStatus"] != "Completed":
        raise StepFailed(f"tuning job {name} {desc['HyperParameterTuningJobStatus']}: "
                         f"{desc.get('FailureReason', '')}")
    best = desc.get("BestTrainingJob")
    if not best:
        raise StepFailed(f"tuning job {name} completed without a training job that reported its objective")
    props = dict(desc)
    props["TrainingJobSummaries"] = ranked(_tuning_summaries(ex, name))[:MAX_SUMMARIES]
    ex.ctx.properties[node.name] = props
    metric = best["FinalHyperParameterTuningJobObjectiveMetric"]
    ex.progress(f"[{node.name}] best: {best['TrainingJobName']} {metric['MetricName']}={metric['Value']:.4g}")
    return {"TuningJob": {"Arn": arn}}


def _report_trials(ex: PipelineExecutor, node: StepNode, jobs: list[dict[str, Any]], shown: set[str]) -> None:
    """A progress line for each training job of the tuning job that ended since the last look."""
    for job in jobs:
        if job["TrainingJobStatus"] in TERMINAL and job["TrainingJobName"] not in shown:
            shown.add(job["TrainingJobName"])
            metric = job.get("FinalHyperParameterTuningJobObjectiveMetric")
            seconds = (job["TrainingEndTime"] - job["TrainingStartTime"]).total_seconds()
            result = f"{metric['MetricName']}={metric['Value']:.4g}" if metric else job.get("FailureReason")
            tuned = ", ".join(f"{k}={v}" for k, v in sorted(job["TunedHyperParameters"].items()))
            ex.progress(f"[{node.name}] {job['TrainingJobName']} {job['TrainingJobStatus']} in "
                        f"{seconds:.0f} s: {result} ({tuned})")


def _tuning_summaries(ex: PipelineExecutor, name: str) -> list[dict[str, Any]]:
    jobs: list[dict[str, Any]] = []
    token = None
    while True:
        kwargs: dict[str, Any] = {"HyperParameterTuningJobName": name, "MaxResults": 100}
        if token:
            kwargs["NextToken"] = token
        page = ex.client.list_training_jobs_for_hyper_parameter_tuning_job(**kwargs)
        jobs += page["TrainingJobSummaries"]
        token = page.get("NextToken")
        if not token:
            return jobs


def run_model(ex: PipelineExecutor, node: StepNode) -> dict[str, Any]:
    args = resolve(node.spec["Arguments"], ex.ctx)
    name = args.get("ModelName") or ex.job_name(node)
    props = dict(args)
    props.update({"ModelName": name, "ModelArn": ex.job_arn("model", name)})
    if not props.get("PrimaryContainer", {}).get("ModelDataUrl"):
        raise StepFailed("CreateModel: PrimaryContainer.ModelDataUrl is missing")
    ex.ctx.properties[node.name] = props
    return {"Model": {"Arn": props["ModelArn"]}}


def run_condition(ex: PipelineExecutor, node: StepNode) -> dict[str, Any]:
    conditions = node.spec["Arguments"].get("Conditions", [])
    outcome = all(evaluate_condition(c, ex.ctx) for c in conditions)
    ex.ctx.outcomes[node.name] = outcome
    ex.ctx.properties[node.name] = {"Outcome": outcome}
    ex.progress(f"[{node.name}] outcome {outcome}")
    return {"Condition": {"Outcome": "True" if outcome else "False"}}


def run_fail(ex: PipelineExecutor, node: StepNode) -> dict[str, Any]:
    message = to_string(resolve(node.spec.get("Arguments", {}).get("ErrorMessage", ""), ex.ctx))
    raise StepFailed(message or "Fail step reached")


def run_register_model(ex: PipelineExecutor, node: StepNode) -> dict[str, Any]:
    args = resolve(node.spec["Arguments"], ex.ctx)
    if ex.client is None:
        raise StepFailed("no SageMaker client to register the model with")
    group = args.get("ModelPackageGroupName")
    if group:
        # SageMaker Pipelines creates the group on first registration
        try:
            ex.client.describe_model_package_group(ModelPackageGroupName=group)
        except Exception:  # noqa: BLE001 - not found → create
            ex.client.create_model_package_group(ModelPackageGroupName=group,
                                                 ModelPackageGroupDescription="aircast DeepAR forecasters")
    request = {k: v for k, v in args.items() if k not in ("SkipModelValidation",)}
    metrics = request.get("ModelMetrics")
    if metrics:
        request["ModelMetrics"] = {k: v for k, v in metrics.items() if v}
    arn = ex.client.create_model_package(**request)["ModelPackageArn"]
    ex.ctx.properties[node.name] = ex.client.describe_model_package(ModelPackageName=arn)
    ex.progress(f"[{node.name}] registered {arn} ({args.get('ModelApprovalStatus')})")
    return {"RegisterModel": {"Arn": arn}}


def run_lambda(ex: PipelineExecutor, node: StepNode) -> dict[str, Any]:
    from infra.local import awslambda

    payload = resolve(node.spec.get("Arguments", {}), ex.ctx)
    arn = node.spec["FunctionArn"]
    name = awslambda.function_name_of(arn)
    functions = awslambda.LocalLambdaBackend(ex.config.data_dir, ex.config.region, ex.config.account_id)
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
    ex.ctx.properties[node.name] = {"OutputParameters": outputs}
    ex.progress(f"[{node.name}] {json.dumps(result, default=str)}")
    return {"Lambda": {"Arn": arn, "OutputParameters": outputs}}

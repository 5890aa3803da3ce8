"""Pipelines and their executions through any SageMaker client (boto3 on AWS, the local stand-in locally).

``upsert_pipeline`` creates or updates a pipeline, ``pipeline_parameters`` writes parameter overrides as
``StartPipelineExecution`` takes them, ``wait_for_execution`` polls an execution to its end and
``execution_summary`` is what the CLI, the demo and CI print of one execution.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aircast.poll import WaitTimeout, poll_until

#: a pipeline execution's statuses once it has ended
TERMINAL_STATUSES = ("Succeeded", "Failed", "Stopped")


def upsert_pipeline(client: Any, name: str, definition: str, role_arn: str, description: str = "",
                    tags: list[dict[str, str]] | None = None) -> str:
    """Create the pipeline or update its definition; return its ARN."""
    from botocore.exceptions import ClientError

    try:
        client.describe_pipeline(PipelineName=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("ResourceNotFound", "ValidationException"):
            raise
        kwargs: dict[str, Any] = {"PipelineName": name, "PipelineDefinition": definition, "RoleArn": role_arn,
                                  "PipelineDescription": description}
        if tags:
            kwargs["Tags"] = tags
        return client.create_pipeline(**kwargs)["PipelineArn"]
    return client.update_pipeline(PipelineName=name, PipelineDefinition=definition, RoleArn=role_arn,
                                  PipelineDescription=description)["PipelineArn"]


def pipeline_parameters(values: Mapping[str, Any]) -> list[dict[str, str]]:
    """Parameter overrides by name → ``PipelineParameters`` (values other than strings as JSON text)."""
    return [{"Name": k, "Value": v if isinstance(v, str) else json.dumps(v)} for k, v in values.items()]


def wait_for_execution(client: Any, execution_arn: str, timeout_s: float = 3600, poll_s: float = 2.0) -> dict[str, Any]:
    """Poll ``describe_pipeline_execution`` until the execution ends; return the last description."""
    last: dict[str, Any] = {}

    def ended() -> dict[str, Any] | None:
        last.clear()
        last.update(client.describe_pipeline_execution(PipelineExecutionArn=execution_arn))  # the latest answer only
        return last if last["PipelineExecutionStatus"] in TERMINAL_STATUSES else None

    try:
        return poll_until(ended, timeout_s, poll_s, f"execution {execution_arn}")
    except WaitTimeout:
        raise TimeoutError(f"execution {execution_arn} still {last['PipelineExecutionStatus']} after {timeout_s} s") \
            from None


def execution_summary(client: Any, execution_arn: str) -> dict[str, Any]:
    """Status, failure reason, steps (in run order) and the registered package of one execution."""
    desc = client.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
    steps = client.list_pipeline_execution_steps(PipelineExecutionArn=execution_arn, SortOrder="Ascending")
    rows = []
    package = None
    for s in steps["PipelineExecutionSteps"]:
        start, end = s.get("StartTime"), s.get("EndTime")
        meta = s.get("Metadata", {})
        if "RegisterModel" in meta:
            package = meta["RegisterModel"]["Arn"]
        rows.append({"step": s["StepName"], "status": s["StepStatus"],
                     "seconds": round((end - start).total_seconds(), 1) if start and end else None,
                     "detail": _step_detail(meta), "failure_reason": s.get("FailureReason")})
    return {"execution_arn": execution_arn, "status": desc["PipelineExecutionStatus"],
            "failure_reason": desc.get("FailureReason"), "model_package_arn": package, "steps": rows}


def _step_detail(meta: Mapping[str, Any]) -> str:
    if "Condition" in meta:
        return f"outcome {meta['Condition']['Outcome']}"
    if "Lambda" in meta:
        return ", ".join(f"{o['Name']}={o['Value']}" for o in meta["Lambda"].get("OutputParameters", []))
    for key, value in meta.items():
        if isinstance(value, dict) and "Arn" in value:
            return value["Arn"].rsplit("/", 1)[-1] if key != "RegisterModel" else value["Arn"]
    return ""

"""The EventBridge rules aircast relies on, installed idempotently through an ``events`` client.

The same rules exist on AWS in the CloudFormation template (``tests/aws/test_stack_moto.py``
checks they are identical); locally ``aircast local up``, the demo and ``aircast events defaults``
install them on the local bus through ``aircast.clients.get_client("events", ...)``, the same
boto3 calls that would install them on AWS.

- ``aircast-approval-deploy``: a model package of the group turns ``Approved`` →
  the deploy Lambda (``aircast-deploy``) deploys exactly that package.
- ``aircast-drift-retrain``: the drift monitor's ``Forecast Drift Detected`` event →
  a pipeline execution on fresh data.
- ``aircast-scheduled-retrain``: the retraining schedule (``settings.retrain_schedule``) →
  a pipeline execution.
- ``aircast-drift-check``: the drift check schedule (``settings.drift_check_schedule``) →
  the drift monitor Lambda (``aircast-drift-monitor``).
"""

from __future__ import annotations

import json
from typing import Any

from aircast.functions import DEPLOY_FUNCTION, DRIFT_MONITOR_FUNCTION, function_arn
from aircast.lake_paths import curated_uri
from aircast.settings import Settings

APPROVAL_RULE = "aircast-approval-deploy"
DRIFT_RULE = "aircast-drift-retrain"
SCHEDULED_RETRAIN_RULE = "aircast-scheduled-retrain"
DRIFT_CHECK_RULE = "aircast-drift-check"

MODEL_PACKAGE_SOURCE = "aws.sagemaker"
MODEL_PACKAGE_DETAIL_TYPE = "SageMaker Model Package State Change"
DRIFT_SOURCE = "aircast.monitoring"
DRIFT_DETAIL_TYPE = "Forecast Drift Detected"


def lambda_arn(settings: Settings, function_name: str) -> str:
    """The ARN a Lambda function of the project has in this region/account."""
    return function_arn(settings.region, settings.account_id, function_name)


def pipeline_arn(settings: Settings, pipeline_name: str) -> str:
    """The ARN of a SageMaker pipeline (SageMaker lower-cases pipeline names in ARNs)."""
    return f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:pipeline/{pipeline_name.lower()}"


def approval_pattern(settings: Settings) -> dict[str, Any]:
    """Approved packages of this project's group (a rejection or pending never matches)."""
    return {
        "source": [MODEL_PACKAGE_SOURCE],
        "detail-type": [MODEL_PACKAGE_DETAIL_TYPE],
        "detail": {"ModelPackageGroupName": [settings.model_package_group], "ModelApprovalStatus": ["Approved"]},
    }


def drift_pattern(settings: Settings) -> dict[str, Any]:
    """Drift events about this project's model group."""
    return {
        "source": [DRIFT_SOURCE],
        "detail-type": [DRIFT_DETAIL_TYPE],
        "detail": {"ModelPackageGroupName": [settings.model_package_group]},
    }


def retrain_parameters(settings: Settings) -> list[dict[str, str]]:
    """Pipeline parameters of a retraining run started by a rule.

    ``ModelApprovalStatus`` follows the auto-approve policy: ``Approved`` makes the
    registered package deploy through the approval rule at once; otherwise it waits for
    a person. The quality gate still runs first, so a worse model registers nothing.
    ``settings.retrain_pipeline_parameters`` (JSON) adds overrides such as ``{"Epochs": 5}``.
    """
    status = "Approved" if settings.retrain_auto_approve else "PendingManualApproval"
    # the same parameters the CloudFormation rules pass on AWS (infra/aws/aircast.yaml)
    params = {"ModelApprovalStatus": status, "InputDataUri": curated_uri(settings, "hourly"),
              "EndpointName": settings.endpoint_name}
    if settings.retrain_pipeline_parameters.strip():
        try:
            extra = json.loads(settings.retrain_pipeline_parameters)
        except json.JSONDecodeError as exc:
            raise ValueError(f"retrain_pipeline_parameters must be a JSON object like {{\"Epochs\": 5}}: {exc}") from exc
        if not isinstance(extra, dict):
            raise ValueError("retrain_pipeline_parameters must be a JSON object like {\"Epochs\": 5}")
        params.update({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()})
    return [{"Name": k, "Value": v} for k, v in params.items()]


def default_rules(settings: Settings) -> list[dict[str, Any]]:
    """The rule definitions (``put_rule`` kwargs plus ``Targets``) for these settings."""
    # drift and schedule start the same retraining run (the pipeline defines no "trigger" parameter)
    retrain = {"Id": "retrain", "Arn": pipeline_arn(settings, settings.pipeline_name), "RoleArn": settings.role_arn,
               "SageMakerPipelineParameters": {"PipelineParameterList": retrain_parameters(settings)}}
    return [
        {
            "Name": APPROVAL_RULE,
            "EventPattern": json.dumps(approval_pattern(settings)),
            "Description": "Deploy a model package when it is approved",
            "Targets": [{"Id": "deploy", "Arn": lambda_arn(settings, DEPLOY_FUNCTION)}],
        },
        {
            "Name": DRIFT_RULE,
            "EventPattern": json.dumps(drift_pattern(settings)),
            "Description": "Retrain on fresh data when the drift monitor declares drift",
            "Targets": [retrain],
        },
        {
            "Name": SCHEDULED_RETRAIN_RULE,
            "ScheduleExpression": settings.retrain_schedule,
            "Description": "Retrain on the latest data on a schedule",
            "Targets": [retrain],
        },
        {
            "Name": DRIFT_CHECK_RULE,
            "ScheduleExpression": settings.drift_check_schedule,
            "Description": "Compare served forecasts with actuals and emit drift events",
            "Targets": [{"Id": "monitor", "Arn": lambda_arn(settings, DRIFT_MONITOR_FUNCTION)}],
        },
    ]


def ensure_default_rules(settings: Settings, client: Any | None = None) -> list[str]:
    """Create or update aircast's rules and their targets; returns the rule names. Idempotent."""
    if client is None:
        from aircast.clients import get_client

        client = get_client("events", settings)
    names = []
    for rule in default_rules(settings):
        spec = {k: v for k, v in rule.items() if k != "Targets"}
        client.put_rule(State=_current_state(client, rule["Name"]), **spec)
        response = client.put_targets(Rule=rule["Name"], Targets=rule["Targets"])
        if response.get("FailedEntryCount"):
            raise ValueError(f"rule {rule['Name']}: targets rejected: {response['FailedEntries']}")
        names.append(rule["Name"])
    return names


def _current_state(client: Any, name: str) -> str:
    """Keep a rule someone disabled disabled; new rules start enabled."""
    try:
        return client.describe_rule(Name=name)["State"]
    except Exception as exc:  # noqa: BLE001 - boto3 and the local client both raise ClientError here
        if getattr(exc, "response", {}).get("Error", {}).get("Code") == "ResourceNotFoundException":
            return "ENABLED"
        raise

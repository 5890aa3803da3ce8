"""aircast's default rules on the local bus: approval → deploy handler, drift → pipeline."""

from __future__ import annotations

import json
from typing import Any

from aircast.clients import get_client
from aircast.event_rules import (
    APPROVAL_RULE,
    DRIFT_CHECK_RULE,
    DRIFT_RULE,
    SCHEDULED_RETRAIN_RULE,
    ensure_default_rules,
)
from aircast.settings import Settings
from infra.local.awslambda import register_function
from infra.local.eventbridge.client import LocalEventsClient
from tests.local.eventbridge import handlers as recorder


def _state_change(settings: Settings, status: str, group: str | None = None, version: int = 1) -> dict[str, Any]:
    group = group or settings.model_package_group
    arn = f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:model-package/{group}/{version}"
    return {"Source": "aws.sagemaker", "DetailType": "SageMaker Model Package State Change", "Resources": [arn],
            "Detail": json.dumps({"ModelPackageGroupName": group, "ModelPackageVersion": version,
                                  "ModelPackageArn": arn, "ModelApprovalStatus": status})}


def test_default_rules_are_installed_idempotently(settings: Settings) -> None:
    events = get_client("events", settings)
    names = ensure_default_rules(settings, events)
    assert set(names) == {APPROVAL_RULE, DRIFT_RULE, SCHEDULED_RETRAIN_RULE, DRIFT_CHECK_RULE}
    events.disable_rule(Name=SCHEDULED_RETRAIN_RULE)
    ensure_default_rules(settings, events)
    rules = {r["Name"]: r for r in events.list_rules()["Rules"]}
    assert len(rules) == 4 and rules[SCHEDULED_RETRAIN_RULE]["State"] == "DISABLED"  # a person's choice is kept
    assert rules[SCHEDULED_RETRAIN_RULE]["ScheduleExpression"] == settings.retrain_schedule
    (target,) = events.list_targets_by_rule(Rule=APPROVAL_RULE)["Targets"]
    assert target["Arn"].endswith(":function:aircast-deploy")
    (target,) = events.list_targets_by_rule(Rule=DRIFT_RULE)["Targets"]
    assert target["Arn"].endswith(f":pipeline/{settings.pipeline_name}")
    assert target["SageMakerPipelineParameters"]["PipelineParameterList"] == [
        {"Name": "ModelApprovalStatus", "Value": "PendingManualApproval"},
        {"Name": "InputDataUri", "Value": f"s3://{settings.lake_bucket}/curated/hourly/"},
        {"Name": "EndpointName", "Value": settings.endpoint_name}]
    auto = settings.replace(retrain_auto_approve=True)
    ensure_default_rules(auto, events)
    (target,) = events.list_targets_by_rule(Rule=DRIFT_RULE)["Targets"]
    assert target["SageMakerPipelineParameters"]["PipelineParameterList"][0]["Value"] == "Approved"


def test_approval_event_reaches_the_deploy_function_and_rejection_does_not(settings: Settings) -> None:
    # bus mechanics with a recording function standing in as aircast-deploy (the real handler is tested below)
    recorder.RECEIVED.clear()
    ensure_default_rules(settings)
    register_function(settings.data_dir, "aircast-deploy", recorder.recording_handler)
    bus = LocalEventsClient(settings)
    # SageMaker's own events (aws.sagemaker) reach the bus through the service path, as the registry emits them
    bus.put_service_events([_state_change(settings, "Rejected", version=1),
                            _state_change(settings, "PendingManualApproval", version=2),
                            _state_change(settings, "Approved", group="someone-else", version=3),
                            _state_change(settings, "Approved", version=4)])
    assert [e["detail"]["ModelPackageVersion"] for e in recorder.RECEIVED] == [4]
    assert recorder.RECEIVED[0]["detail"]["ModelPackageArn"].endswith(f"/{settings.model_package_group}/4")
    matched = [h for h in bus.history() if h["matched_rules"]]
    assert len(matched) == 1 and matched[0]["invocations"][0]["status"] == "succeeded"


def test_a_forged_approval_event_is_refused(settings: Settings) -> None:
    """A PutEvents caller (anyone holding the token) cannot impersonate SageMaker to redeploy a package."""
    recorder.RECEIVED.clear()
    ensure_default_rules(settings)
    events = get_client("events", settings)
    register_function(settings.data_dir, "aircast-deploy", recorder.recording_handler)
    resp = events.put_events(Entries=[_state_change(settings, "Approved", version=4)])
    assert resp["FailedEntryCount"] == 1
    assert resp["Entries"][0]["ErrorCode"] == "NotAuthorizedForSourceException"
    assert recorder.RECEIVED == [] and LocalEventsClient(settings).history() == []


def test_registry_approval_goes_through_the_bus_to_the_real_deploy_handler(settings: Settings) -> None:
    """Registry status change → event on the bus → approval rule → deployment/handler.py deploys that package."""
    events = LocalEventsClient(settings)
    ensure_default_rules(settings)
    sm = get_client("sagemaker", settings)
    sm.create_model_package_group(ModelPackageGroupName=settings.model_package_group)
    # CreateModel checks that the model data exists (no host loads it here)
    get_client("s3", settings).put_object(Bucket=settings.artifacts_bucket, Key="m/model.tar.gz", Body=b"placeholder")
    spec = {"Containers": [{"Image": "deepar", "ModelDataUrl": f"s3://{settings.artifacts_bucket}/m/model.tar.gz"}],
            "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]}
    first = sm.create_model_package(ModelPackageGroupName=settings.model_package_group,
                                    InferenceSpecification=spec)["ModelPackageArn"]
    second = sm.create_model_package(ModelPackageGroupName=settings.model_package_group,
                                     InferenceSpecification=spec)["ModelPackageArn"]
    sm.update_model_package(ModelPackageArn=second, ModelApprovalStatus="Rejected")
    assert events.history(rule=APPROVAL_RULE) == []  # pending and rejected never reach the deploy function
    sm.update_model_package(ModelPackageArn=first, ModelApprovalStatus="Approved")
    (entry,) = events.history(rule=APPROVAL_RULE)
    (inv,) = entry["invocations"]
    assert inv["status"] == "succeeded", inv["error"]
    assert inv["result"]["model_package_arn"] == first  # exactly the approved package, not "the latest"
    assert inv["result"]["endpoint_name"] == settings.endpoint_name


def test_approval_event_for_an_unknown_package_deploys_nothing(settings: Settings) -> None:
    """The real handler refuses a package the registry does not hold; the bus records it and carries on."""
    ensure_default_rules(settings)
    bus = LocalEventsClient(settings)
    resp = bus.put_service_events([_state_change(settings, "Approved", version=99)])
    assert resp["FailedEntryCount"] == 0
    (entry,) = bus.history(rule=APPROVAL_RULE)
    (inv,) = entry["invocations"]
    assert inv["target_id"] == "deploy" and inv["status"] == "succeeded", inv["error"]
    assert inv["result"]["status"] == "refused" and "not found" in inv["result"]["reason"]
    assert get_client("sagemaker", settings).list_endpoints()["Endpoints"] == []

"""Approval-driven deployment: approve → the exact package deploys (EventBridge rule → deploy Lambda),
reject → nothing changes, pending → nothing changes; the pipeline's direct invocation waits for approval."""

from __future__ import annotations

import json
import time

import pytest

from aircast.event_rules import ensure_default_rules
from deployment.deploy import DeploymentError, deploy_model_package, wait_for_endpoint
from deployment.handler import handle, lambda_handler
from deployment.policy import DeploymentPolicy
from tests.deploy.conftest import request_body

pytestmark = pytest.mark.slow

GROUP = "approval-flow"
ENDPOINT = "approval-forecast"


@pytest.fixture(scope="module")
def deploy_env(host_settings, host, sm, model_url):
    """Environment of the deploy Lambda (it reads its settings from AIRCAST_*), rules and a package group."""
    mp = pytest.MonkeyPatch()
    env = {"AIRCAST_DATA_DIR": str(host_settings.data_dir), "AIRCAST_BACKEND": "local",
           "AIRCAST_ENDPOINT_PORT": str(host_settings.endpoint_port),
           "AIRCAST_EVENTBUS_PORT": str(host_settings.eventbus_port), "AIRCAST_MQTT_PORT": str(host_settings.mqtt_port),
           "AIRCAST_MODEL_PACKAGE_GROUP": GROUP, "AIRCAST_ENDPOINT_NAME": ENDPOINT,
           "AIRCAST_CLOCK_SCALE": str(host_settings.clock_scale), "AIRCAST_DEPLOY_STRATEGY": "canary",
           "AIRCAST_DEPLOY_WAIT_SECONDS": "100", "AIRCAST_DEPLOY_TERMINATION_WAIT_SECONDS": "0",
           "AIRCAST_DEPLOY_MAX_TIMEOUT_SECONDS": "1200"}
    for key, value in env.items():
        mp.setenv(key, value)
    settings = host_settings.replace(model_package_group=GROUP, endpoint_name=ENDPOINT)
    ensure_default_rules(settings)
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    yield settings
    mp.undo()


def _register(sm, model_url: str, status: str = "PendingManualApproval") -> str:
    return sm.create_model_package(
        ModelPackageGroupName=GROUP, ModelApprovalStatus=status,
        InferenceSpecification={"Containers": [{"Image": "local/deepar:1", "ModelDataUrl": model_url}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]})["ModelPackageArn"]


def _event(arn: str, status: str) -> dict:
    version = int(arn.rsplit("/", 1)[1])
    return {"version": "0", "id": "test", "source": "aws.sagemaker",
            "detail-type": "SageMaker Model Package State Change", "resources": [arn],
            "detail": {"ModelPackageGroupName": GROUP, "ModelPackageVersion": version, "ModelPackageArn": arn,
                       "ModelApprovalStatus": status}}


def _endpoint_state(sm) -> tuple[str, str] | None:
    try:
        desc = sm.describe_endpoint(EndpointName=ENDPOINT)
    except Exception:
        return None
    return desc["EndpointConfigName"], desc["EndpointStatus"]


def test_pending_rejected_and_approved_packages(deploy_env, sm, model_url):
    v1 = _register(sm, model_url)
    # the pipeline's Deploy step on a pending package: waits for approval, deploys nothing
    out = lambda_handler({"model_package_arn": v1, "endpoint_name": ENDPOINT}, None)
    assert out["status"] == "awaiting approval" and out["model_approval_status"] == "PendingManualApproval"
    assert handle(_event(v1, "PendingManualApproval"), deploy_env)["status"] == "ignored"
    assert _endpoint_state(sm) is None

    # approving fires the rule → the deploy Lambda creates the endpoint with exactly v1
    sm.update_model_package(ModelPackageArn=v1, ModelApprovalStatus="Approved")
    deadline = time.monotonic() + 10
    while _endpoint_state(sm) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    desc = wait_for_endpoint(sm, ENDPOINT, 60)
    assert desc["EndpointStatus"] == "InService"
    assert "-v1-" in desc["EndpointConfigName"]
    model_name = sm.describe_endpoint_config(EndpointConfigName=desc["EndpointConfigName"])["ProductionVariants"][0]["ModelName"]
    assert sm.describe_model(ModelName=model_name)["PrimaryContainer"]["ModelPackageName"] == v1
    before = _endpoint_state(sm)

    # a new pending package and a rejected one change nothing
    v2 = _register(sm, model_url)
    sm.update_model_package(ModelPackageArn=v2, ModelApprovalStatus="Rejected")
    assert handle(_event(v2, "Rejected"), deploy_env)["status"] == "ignored"
    time.sleep(0.5)
    assert _endpoint_state(sm) == before
    out = lambda_handler({"model_package_arn": v2, "endpoint_name": ENDPOINT}, None)
    assert out["status"] == "awaiting approval" and out["model_approval_status"] == "Rejected"
    assert _endpoint_state(sm) == before

    # approving v3 runs a canary blue/green update to exactly v3
    v3 = _register(sm, model_url)
    sm.update_model_package(ModelPackageArn=v3, ModelApprovalStatus="Approved")
    desc = sm.describe_endpoint(EndpointName=ENDPOINT)
    assert desc["EndpointStatus"] == "Updating"
    assert "-v3-" in desc["PendingDeploymentSummary"]["EndpointConfigName"]
    # the pipeline's Deploy step (or a re-delivered event) for the package being deployed changes nothing
    again = lambda_handler({"model_package_arn": v3, "endpoint_name": ENDPOINT}, None)
    assert again["action"] == "in progress", again
    desc = wait_for_endpoint(sm, ENDPOINT, 60)
    assert desc["EndpointStatus"] == "InService" and "-v3-" in desc["EndpointConfigName"], desc
    assert desc["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "CANARY"
    assert [a["AlarmName"] for a in desc["LastDeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]] == \
        [f"{ENDPOINT}-AllTraffic-error-rate", f"{ENDPOINT}-AllTraffic-model-latency-p99"]

    again = handle(_event(v3, "Approved"), deploy_env)
    assert again["status"] == "deployed" and again["action"] == "unchanged"
    assert sm.describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"] == desc["EndpointConfigName"]

    # the capture records name the package that answered
    from aircast.clients import get_client

    runtime = get_client("sagemaker-runtime", deploy_env)
    runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=request_body(num_samples=5), ContentType="application/json")
    time.sleep(0.5)
    root = deploy_env.s3_root / deploy_env.artifacts_bucket / "datacapture" / ENDPOINT / "AllTraffic"
    records = [json.loads(line) for f in sorted(root.rglob("*.jsonl")) for line in f.read_text().splitlines()]
    assert records[-1]["eventMetadata"]["modelPackageArn"] == v3


def test_deploy_refuses_latest_unapproved_and_busy(deploy_env, sm, model_url):
    policy = DeploymentPolicy()
    with pytest.raises(DeploymentError, match="latest"):
        deploy_model_package(sm, "latest", "x", policy, role_arn=deploy_env.role_arn)
    pending = _register(sm, model_url)
    with pytest.raises(DeploymentError, match="not Approved"):
        deploy_model_package(sm, pending, "x", policy, role_arn=deploy_env.role_arn)
    version = pending.rsplit("/", 1)[1]
    with pytest.raises(DeploymentError, match="PendingManualApproval"):
        deploy_model_package(sm, version, "x", policy, role_arn=deploy_env.role_arn, model_package_group=GROUP)
    refused = lambda_handler({"model_package_arn": "latest"}, None)
    assert refused["status"] == "refused" and "latest" in refused["reason"]
    with pytest.raises(ValueError, match="unrecognised event"):
        lambda_handler({"hello": "world"}, None)


def test_cli_deploy_of_a_faulty_package_rolls_back(deploy_env, sm, model_url, capsys):
    from aircast.cli import main
    from tests.deploy.helpers import LoadClient

    arn = _register(sm, model_url, status="Approved")
    # registering as Approved fires the approval rule too: let that deployment finish first
    before = wait_for_endpoint(sm, ENDPOINT, 60)["EndpointConfigName"]
    with LoadClient(deploy_env.endpoint_port, ENDPOINT, request_body(num_samples=5), threads=2) as load:
        rc = main(["endpoint", "deploy", "--model-package", arn.rsplit("/", 1)[1], "--endpoint", ENDPOINT,
                   "--strategy", "canary", "--step-percent", "50", "--wait-seconds", "300",
                   "--termination-wait-seconds", "0", "--max-timeout-seconds", "1200",
                   "--latency-p99-ms", "60000", "--fault-injection", "error", "--wait", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 3 and out["status"] == "rolled back", out
    assert out["endpoint_config_name"] == before
    assert "error-rate went into ALARM" in out["failure_reason"]
    assert load.failures() and len(load.failures()) < len(load.results)

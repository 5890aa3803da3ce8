"""Approval-driven deployment: approve → the exact package deploys (EventBridge rule → deploy Lambda),
reject → nothing changes, pending → nothing changes; the pipeline's direct invocation waits for approval."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from aircast.event_rules import APPROVAL_RULE, ensure_default_rules
from aircast.monitoring import packages_for
from deployment.deploy import DeploymentError, config_package, deploy_model_package, wait_for_endpoint
from deployment.handler import handle, lambda_handler
from deployment.policy import DeploymentPolicy
from evaluation.drift import capture_origin, parse_capture_records
from evaluation.drift_monitor import read_capture
from infra.local.eventbridge.client import LocalEventsClient
from tests.helpers import wait_until
from tests.local.sagemaker.host_fixtures import request_body

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
           "AIRCAST_DEPLOY_INSTANCE_COUNT": "2",  # a canary needs 2+ instances (nominal locally)
           "AIRCAST_DEPLOY_WAIT_SECONDS": "100", "AIRCAST_DEPLOY_TERMINATION_WAIT_SECONDS": "0",
           "AIRCAST_DEPLOY_MAX_TIMEOUT_SECONDS": "1200"}
    for key, value in env.items():
        mp.setenv(key, value)
    settings = host_settings.replace(model_package_group=GROUP, endpoint_name=ENDPOINT, deploy_strategy="canary",
                                     deploy_instance_count=2)
    ensure_default_rules(settings)
    sm.create_model_package_group(ModelPackageGroupName=GROUP)
    yield settings
    mp.undo()


def _register(sm, model_url: str, status: str = "PendingManualApproval", group: str = GROUP) -> str:
    return sm.create_model_package(
        ModelPackageGroupName=group, ModelApprovalStatus=status,
        InferenceSpecification={"Containers": [{"Image": "local/deepar:1", "ModelDataUrl": model_url}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]})["ModelPackageArn"]


def _event(arn: str, status: str) -> dict:
    version = int(arn.rsplit("/", 1)[1])
    return {"version": "0", "id": "test", "source": "aws.sagemaker",
            "detail-type": "SageMaker Model Package State Change", "resources": [arn],
            "detail": {"ModelPackageGroupName": GROUP, "ModelPackageVersion": version, "ModelPackageArn": arn,
                       "ModelApprovalStatus": status}}


def _endpoint_state(sm, endpoint: str = ENDPOINT) -> tuple[str, str] | None:
    try:
        desc = sm.describe_endpoint(EndpointName=endpoint)
    except sm.exceptions.ClientError:
        return None
    return desc["EndpointConfigName"], desc["EndpointStatus"]


def _handled_event(settings, arn: str, status: str) -> dict[str, Any] | None:
    """The bus's record of the state-change event of ``arn`` to ``status`` (its matched rules, invocations)."""
    for entry in LocalEventsClient(settings).history(source="aws.sagemaker", limit=200):
        detail = entry["event"]["detail"]
        if detail.get("ModelPackageArn") == arn and detail.get("ModelApprovalStatus") == status:
            return entry
    return None


def test_pending_rejected_and_approved_packages(deploy_env, sm, model_url):
    v1 = _register(sm, model_url)
    # the pipeline's Deploy step on a pending package: waits for approval, deploys nothing
    out = lambda_handler({"model_package_arn": v1, "endpoint_name": ENDPOINT}, None)
    assert out["status"] == "awaiting approval" and out["model_approval_status"] == "PendingManualApproval"
    assert handle(_event(v1, "PendingManualApproval"), deploy_env)["status"] == "ignored"
    assert _endpoint_state(sm) is None

    # approving fires the rule → the deploy Lambda creates the endpoint with exactly v1
    sm.update_model_package(ModelPackageArn=v1, ModelApprovalStatus="Approved")
    wait_until(lambda: _endpoint_state(sm), 10, what="the approval to create the endpoint")
    desc = wait_for_endpoint(sm, ENDPOINT, 60)
    assert desc["EndpointStatus"] == "InService"
    assert "-v1-" in desc["EndpointConfigName"]
    model_name = sm.describe_endpoint_config(EndpointConfigName=desc["EndpointConfigName"])["ProductionVariants"][0]["ModelName"]
    assert sm.describe_model(ModelName=model_name)["PrimaryContainer"]["ModelPackageName"] == v1
    before = _endpoint_state(sm)

    # a new pending package and a rejected one change nothing
    v2 = _register(sm, model_url)
    sm.update_model_package(ModelPackageArn=v2, ModelApprovalStatus="Rejected")
    # the bus has handled the rejection (it matched no rule, so nothing was invoked) ...
    rejected = wait_until(lambda: _handled_event(deploy_env, v2, "Rejected"), 10, what="the rejection event on the bus")
    assert APPROVAL_RULE not in rejected["matched_rules"] and rejected["invocations"] == []
    assert handle(_event(v2, "Rejected"), deploy_env)["status"] == "ignored"
    # ... and the endpoint is as it was
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

    # Finding 3: the records carry only AWS's members, and the drift monitor still knows v3 answered
    # them, from the endpoint config whose capture destination holds them
    from aircast.clients import get_client

    runtime = get_client("sagemaker-runtime", deploy_env)
    runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=request_body(num_samples=5), ContentType="application/json")
    root = deploy_env.s3_root / deploy_env.artifacts_bucket / "datacapture" / ENDPOINT
    mine = f"{desc['EndpointConfigName']}/{ENDPOINT}/AllTraffic/"
    records = wait_until(lambda: [(k, r) for k, r in read_capture(root) if k.startswith(mine)], 10,
                         what="the v3 fleet's capture record")
    assert set(records[-1][1]["eventMetadata"]) == {"eventId", "inferenceTime"}
    assert capture_origin(records[-1][0]) == (desc["EndpointConfigName"], ENDPOINT, "AllTraffic")
    packages = packages_for(deploy_env, [k for k, _ in records])
    assert packages == {desc["EndpointConfigName"]: v3} == {desc["EndpointConfigName"]:
                                                            config_package(sm, desc["EndpointConfigName"])}
    forecasts, problems = parse_capture_records(records, packages)
    assert not problems and {f.model_package_arn for f in forecasts} == {v3}


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


def test_cli_deploy_of_a_faulty_package_rolls_back(deploy_env, host, sm, model_url, capsys):
    from aircast.cli import main
    from tests.local.sagemaker.helpers import LoadClient

    arn = _register(sm, model_url, status="Approved")
    # registering as Approved fires the approval rule too: let that deployment finish first
    before = wait_for_endpoint(sm, ENDPOINT, 60)["EndpointConfigName"]
    with LoadClient(host.port, ENDPOINT, request_body(num_samples=5), threads=2) as load:
        rc = main(["endpoint", "deploy", "--model-package", arn.rsplit("/", 1)[1], "--endpoint", ENDPOINT,
                   "--strategy", "canary", "--step-percent", "50", "--instance-count", "2", "--wait-seconds", "300",
                   "--termination-wait-seconds", "0", "--max-timeout-seconds", "1200",
                   "--latency-p99-ms", "60000", "--fault-injection", "error", "--wait", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 3 and out["status"] == "rolled back", out
    assert out["endpoint_config_name"] == before
    assert "error-rate went into ALARM" in out["failure_reason"]
    assert load.failures() and len(load.failures()) < len(load.results)


class _Overlap:
    """Wraps a SageMaker client so that two deploys both read the endpoint before either changes it:
    each thread's first ``describe_endpoint`` waits for the other's (the race the approval rule and the
    pipeline's Deploy step run when a package registers as Approved)."""

    def __init__(self, client: Any, barrier: threading.Barrier) -> None:
        self._client, self._barrier, self._seen = client, barrier, threading.local()

    def describe_endpoint(self, **kwargs: Any) -> Any:
        try:
            return self._client.describe_endpoint(**kwargs)
        finally:
            if not getattr(self._seen, "done", False):
                self._seen.done = True
                self._barrier.wait(timeout=30)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _overlapping(monkeypatch, settings, events: list[dict[str, Any]]) -> list[Any]:
    """Run the deploy handler on each event at once, the two deploys overlapping; their results (or errors)."""
    import deployment.handler as handler_module
    from aircast.clients import get_client

    barrier = threading.Barrier(len(events))
    real = get_client("sagemaker", settings)
    wrapped = _Overlap(real, barrier)
    monkeypatch.setattr(handler_module, "clients", lambda s: (wrapped, get_client("cloudwatch", s)))
    results: list[Any] = [None] * len(events)

    def run(i: int) -> None:
        try:
            results[i] = handle(events[i], settings)
        except Exception as exc:  # noqa: BLE001 - the test reports what each deploy ended with
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(events))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


def test_overlapping_deploys_of_one_package_are_safe(deploy_env, sm, model_url, monkeypatch):
    """Finding 5: the approval rule and the pipeline's Deploy step deploy the same package within seconds.
    Both overlapping deploys succeed, name one model and one endpoint config, and the endpoint serves it:
    first when they create the endpoint, then when they update it."""
    endpoint = "race-forecast"
    settings = deploy_env.replace(endpoint_name=endpoint)
    sm.create_model_package_group(ModelPackageGroupName="race-group")  # no approval rule: the test fires the events
    for step, action in (("create", "created"), ("update", "updating")):
        arn = _register(sm, model_url, status="Approved", group="race-group")
        results = _overlapping(monkeypatch, settings, [
            _event(arn, "Approved"), {"model_package_arn": arn, "endpoint_name": endpoint}])
        assert not [r for r in results if isinstance(r, Exception)], results
        assert {r["status"] for r in results} <= {"deployed", "deploying"}, results
        assert sorted(r["action"] for r in results) == sorted([action, "in progress"]), results
        version = arn.rsplit("/", 1)[1]
        models = [m["ModelName"] for m in sm.list_models()["Models"] if m["ModelName"].startswith(f"{endpoint}-v{version}-")]
        configs = [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]
                   if c["EndpointConfigName"].startswith(f"{endpoint}-v{version}-")]
        assert len(models) == 1 and len(configs) == 1, (step, models, configs)  # no orphans
        desc = wait_for_endpoint(sm, endpoint, 60)
        assert desc["EndpointStatus"] == "InService" and desc["EndpointConfigName"] == configs[0], desc
        assert config_package(sm, configs[0]) == arn


def test_default_policy_on_a_one_instance_endpoint(deploy_env, sm, model_url, monkeypatch):
    """Finding 7: with the default settings (strategy auto, one instance) an update is what SageMaker
    accepts for one instance: ALL_AT_ONCE, baked with the rollback alarms watching."""
    from aircast.clients import get_client

    endpoint = "one-instance"
    settings = deploy_env.replace(endpoint_name=endpoint)
    policy = DeploymentPolicy(wait_seconds=100, termination_wait_seconds=0, max_timeout_seconds=1200)
    assert policy.strategy == "auto" and policy.instance_count == 1
    cw = get_client("cloudwatch", settings)
    sm.create_model_package_group(ModelPackageGroupName="one-instance-group")
    for step in ("create", "update"):
        arn = _register(sm, model_url, status="Approved", group="one-instance-group")
        deploy_model_package(sm, arn, endpoint, policy, role_arn=settings.role_arn, cw_client=cw)
        desc = wait_for_endpoint(sm, endpoint, 60)
        assert desc["EndpointStatus"] == "InService" and config_package(sm, desc["EndpointConfigName"]) == arn, step
    routing = desc["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 100}
    assert len(desc["LastDeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]) == 2

"""Blue/green deployments on a real endpoint host under bounded loopback load:
good models complete with zero failed requests, faulty ones (errors, slow) roll back on the
alarms with failures confined to the green share."""

from __future__ import annotations

import time
from typing import Any

import pytest

from aircast.clients import deployment_history
from deployment.deploy import wait_for_endpoint
from deployment.policy import DeploymentPolicy, deployment_config
from infra.local.sagemaker.cloudwatch import LocalCloudWatchClient
from tests.local.sagemaker.helpers import LoadClient, create_endpoint, create_model_and_config, has_sample, scrape
from tests.local.sagemaker.host_fixtures import request_body

pytestmark = pytest.mark.slow

BODY = request_body(num_samples=10)


def _policy(strategy: str, step: int = 20, wait: int = 300, latency_p99_ms: float = 10_000) -> DeploymentPolicy:
    # the latency alarm of the good-model runs is far above a contended CI machine's latencies;
    # steps move whole instances, so the green fleet has as many as a step needs (nominal locally)
    instances = 1 if strategy == "all-at-once" else round(100 / step)
    return DeploymentPolicy(strategy=strategy, step_percent=step, wait_seconds=wait, termination_wait_seconds=100,
                            max_timeout_seconds=6000, error_rate_threshold=0.05, latency_p99_ms=latency_p99_ms,
                            instance_count=instances)


def _alarms(host_settings, name: str, policy: DeploymentPolicy) -> list[str]:
    from deployment.deploy import ensure_rollback_alarms

    return ensure_rollback_alarms(LocalCloudWatchClient(host_settings.local_config()), policy, name)


def _deploy(sm, host_settings, host, name: str, model_url: str, policy: DeploymentPolicy,
            environment: dict[str, str] | None = None) -> tuple[dict[str, Any], LoadClient, float]:
    create_endpoint(sm, name, model_url)
    green = create_model_and_config(sm, name + "-green", model_url, environment, instance_count=policy.instance_count)
    config = deployment_config(policy, _alarms(host_settings, name, policy))
    with LoadClient(host.port, name, BODY, threads=2) as load:
        time.sleep(0.5)  # blue serving under load before the update
        sm.update_endpoint(EndpointName=name, EndpointConfigName=green, DeploymentConfig=config)
        assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Updating"
        desc = wait_for_endpoint(sm, name, timeout_s=90)
        finished = time.time()
        time.sleep(0.5)  # and after it
    return desc, load, finished


@pytest.mark.parametrize("strategy,step,wait", [("canary", 20, 300), ("linear", 50, 200), ("all-at-once", 20, 200)])
def test_good_model_completes_with_zero_failed_requests(sm, host_settings, host, model_url, strategy, step, wait):
    name = f"good-{strategy}"
    desc, load, _ = _deploy(sm, host_settings, host, name, model_url, _policy(strategy, step, wait))
    assert desc["EndpointStatus"] == "InService", desc
    assert desc["EndpointConfigName"] == name + "-green", desc.get("FailureReason")
    assert "FailureReason" not in desc
    assert "PendingDeploymentSummary" not in desc
    assert desc["ProductionVariants"][0]["CurrentWeight"] == 1.0
    assert desc["LastDeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == \
        {"canary": "CANARY", "linear": "LINEAR", "all-at-once": "ALL_AT_ONCE"}[strategy]
    history = " | ".join(h["Message"] for h in deployment_history(host_settings, name))
    assert "deployment complete" in history
    steps = {"canary": 2, "linear": 2, "all-at-once": 1}[strategy]
    assert history.count("ActivatingTraffic") == steps, history
    assert len(load.results) >= 4
    assert load.failures() == [], load.failures()[:3]
    assert {r.variant for r in load.results} == {"AllTraffic"}


@pytest.mark.parametrize("strategy,fault,alarm", [
    ("canary", "error", "error-rate"),
    ("canary", "latency_ms=2500", "model-latency-p99"),
    ("linear", "error", "error-rate"),
    ("all-at-once", "error_rate=0.5", "error-rate"),
])
def test_faulty_model_rolls_back_with_failures_confined_to_green(sm, host_settings, host, model_url, strategy,
                                                                  fault, alarm):
    name = f"bad-{strategy}-{alarm}"
    # a long bake costs nothing here (the rollback ends it) and keeps the fault inside the first step
    # even when a busy machine serves few requests per second
    policy = _policy(strategy, 20 if strategy == "canary" else 25, 1000,
                     latency_p99_ms=1500 if "latency" in fault else 10_000)
    desc, load, finished = _deploy(sm, host_settings, host, name, model_url, policy,
                                   {"AIRCAST_FAULT_INJECTION": fault})
    assert desc["EndpointStatus"] == "InService"
    assert desc["EndpointConfigName"] == name + "-blue"  # rolled back to blue
    assert "rolled back" in desc["FailureReason"] and f"{name}-AllTraffic-{alarm}" in desc["FailureReason"]
    history = " | ".join(h["Message"] for h in deployment_history(host_settings, name))
    assert "RollingBack" in history and "rollback complete" in history
    # the first step only: the alarm fired during the first bake
    assert history.count("ActivatingTraffic") == 1, history
    failures = load.failures()
    if "error" in fault:
        assert failures, "the faulty green fleet should have failed some requests before the rollback"
        assert all(f.status == 424 and b"injected fault" in f.body for f in failures)
        share = 1.0 if strategy == "all-at-once" else (0.2 if strategy == "canary" else 0.25)
        expected = share * (0.5 if "0.5" in fault else 1.0)
        during = [r for r in load.results if r.time <= finished]
        assert len(failures) / len(during) <= expected + 0.1, (len(failures), len(during))
        # after the rollback, blue serves everything
        assert all(f.time <= finished + 0.05 for f in failures)
    else:
        assert failures == []  # slow is not failing: blue and green both answered
    # the host's metrics show the green fleet's invocations
    assert has_sample(scrape(host.url), "aircast_endpoint_invocations_total", endpoint=name, variant="AllTraffic",
                      endpoint_config=f"{name}-green")


def test_green_fleet_that_fails_to_load_is_rolled_back(sm, host_settings, host, model_url):
    name = "bad-load"
    create_endpoint(sm, name, model_url)
    green = create_model_and_config(sm, name + "-green", model_url, {"AIRCAST_FAULT_INJECTION": "load_failure"})
    sm.update_endpoint(EndpointName=name, EndpointConfigName=green)
    desc = wait_for_endpoint(sm, name, timeout_s=60)
    assert desc["EndpointStatus"] == "InService" and desc["EndpointConfigName"] == name + "-blue"
    assert "failed to provision" in desc["FailureReason"] and "health check" in desc["FailureReason"]

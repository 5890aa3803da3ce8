"""What aircast registers with the local emulator (aircast/local_wiring.py): its Lambda functions as the
CloudFormation stack defines them, its pipeline starter for buses that were not handed one, and the
stack's services in start order."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from aircast import local_wiring
from aircast.clients import get_client
from aircast.event_rules import pipeline_arn
from aircast.functions import FUNCTIONS
from aircast.settings import Settings
from infra.local.awslambda import registered_functions
from infra.local.eventbridge.client import LocalEventsClient
from tests.conftest import REPO_ROOT

TRIVIAL_PIPELINE = {
    "Version": "2020-12-01",
    "Parameters": [{"Name": "ModelApprovalStatus", "Type": "String", "DefaultValue": "PendingManualApproval"}],
    "Steps": [{"Name": "Stop", "Type": "Fail", "Arguments": {"ErrorMessage": "nothing to do"}}],
}


def _template_functions() -> dict[str, dict[str, Any]]:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)  # CloudFormation's !Ref, !Sub...
    template = yaml.load((REPO_ROOT / "infra/aws/aircast.yaml").read_text(), Loader)
    return {r["Properties"]["Handler"]: r["Properties"] for r in template["Resources"].values()
            if r["Type"] == "AWS::Lambda::Function"}


def test_aircast_functions_are_registered_as_the_stack_defines_them(settings: Settings) -> None:
    get_client("lambda", settings)  # what a local client does first
    registered = registered_functions(settings.data_dir)
    template = _template_functions()
    assert set(registered) == set(FUNCTIONS)
    for name, spec in FUNCTIONS.items():
        props = template[spec.handler]
        assert (registered[name].handler, registered[name].timeout_s, registered[name].memory_mb) == (
            props["Handler"], props["Timeout"], props["MemorySize"])


def _retrain_rule(settings: Settings, events: Any) -> None:
    from pipelines.executions import upsert_pipeline

    upsert_pipeline(get_client("sagemaker", settings), "retrain-me", json.dumps(TRIVIAL_PIPELINE), settings.role_arn)
    events.put_rule(Name="retrain", EventPattern=json.dumps({"source": ["aircast.monitoring"]}))
    events.put_targets(Rule="retrain", Targets=[{"Id": "p", "Arn": pipeline_arn(settings, "retrain-me"),
                                                 "RoleArn": settings.role_arn}])


def test_a_bus_without_a_pipeline_starter_uses_the_one_aircast_registered(settings: Settings) -> None:
    """The bus process and the Model Registry's events make a bus of their own: it starts pipelines
    through the starter aircast registered for the data dir, as the in-process bus does."""
    _retrain_rule(settings, get_client("events", settings))  # a local client registers aircast's things
    bus = LocalEventsClient(settings.local_config())  # no starter handed in
    bus.put_events(Entries=[{"Source": "aircast.monitoring", "DetailType": "Drift", "Detail": "{}"}])
    (inv,) = bus.history(rule="retrain")[0]["invocations"]
    assert inv["status"] == "succeeded", inv["error"]
    execution = inv["result"]["PipelineExecutionArn"]
    assert execution.startswith(pipeline_arn(settings, "retrain-me") + "/execution/")


def test_without_a_registered_starter_a_pipeline_target_fails_clearly(settings: Settings) -> None:
    from infra.local.eventbridge.targets import PIPELINE_STARTER_PATH

    _retrain_rule(settings, get_client("events", settings))
    (settings.data_dir / PIPELINE_STARTER_PATH).unlink()
    bus = LocalEventsClient(settings.local_config())
    bus.put_events(Entries=[{"Source": "aircast.monitoring", "DetailType": "Drift", "Detail": "{}"}])
    (inv,) = bus.history(rule="retrain")[0]["invocations"]
    assert inv["status"] == "failed" and "no local SageMaker starts pipelines" in inv["error"]


def test_stack_services_run_in_start_order_and_unknown_names_are_refused(settings: Settings) -> None:
    specs = local_wiring.stack_services(settings)
    assert [s.name for s in specs] == list(local_wiring.LOCAL_SERVICES)
    assert [s.name for s in local_wiring.stack_services(settings, ["console", "iot_core"])] == ["iot_core", "console"]
    by_name = {s.name: s for s in specs}
    assert by_name["iot_core"].port == settings.mqtt_port and by_name["firehose"].port is None
    assert by_name["eventbridge"].port == settings.eventbus_port == 0  # the test settings: any free port
    # every child process gets these settings (aircast's handlers in the bus process read them)
    assert all(s.env["AIRCAST_DATA_DIR"] == str(settings.data_dir) for s in specs)
    with pytest.raises(ValueError, match="unknown service"):
        local_wiring.stack_services(settings, ["nonsense"])

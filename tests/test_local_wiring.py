"""What aircast registers with the local emulator (aircast/local_wiring.py): its Lambda functions as the
CloudFormation stack defines them, and the stack's services in start order."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from aircast import local_wiring
from aircast.clients import get_client
from aircast.functions import FUNCTIONS
from aircast.settings import Settings
from infra.local.awslambda import registered_functions
from tests.conftest import REPO_ROOT


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


def test_stack_service_runs_the_endpoint_host_on_the_emulators_config(settings: Settings) -> None:
    assert "sagemaker-endpoints" in local_wiring.LOCAL_SERVICES
    (spec,) = local_wiring.stack_services(settings, ["sagemaker-endpoints"])
    assert spec.port == settings.endpoint_port == 0  # the test settings: any free port, reported back
    assert spec.argv[1:3] == ["-m", "infra.local.sagemaker.host"]
    # the host takes the emulator's configuration on its command line, never aircast's settings
    assert spec.argv[3:] == [*settings.local_config().argv(), "--port", "0", "--bind", settings.endpoint_host]

"""``aircast endpoint``: list, describe and invoke a local endpoint through the CLI (the endpoint host the
stack runs), and the CLI's one-line refusals."""

from __future__ import annotations

import json

import pytest

from tests.local.sagemaker.helpers import create_endpoint
from tests.local.sagemaker.host_fixtures import PREDICTION_LENGTH, request_body

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cli_endpoint(sm, host, model_url) -> str:
    create_endpoint(sm, "cli", model_url)
    return "cli"


@pytest.fixture
def cli_env(host_settings, monkeypatch):
    monkeypatch.setenv("AIRCAST_DATA_DIR", str(host_settings.data_dir))
    monkeypatch.setenv("AIRCAST_ENDPOINT_PORT", str(host_settings.endpoint_port))
    monkeypatch.setenv("AIRCAST_BACKEND", "local")


def test_cli_list_describe_invoke(cli_endpoint, cli_env, tmp_path, capsys):
    from aircast.cli import main

    assert main(["endpoint", "list", "--json"]) == 0
    assert "cli" in [e["EndpointName"] for e in json.loads(capsys.readouterr().out)]
    assert main(["endpoint", "describe", "cli", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["EndpointStatus"] == "InService"
    assert main(["endpoint", "describe", "cli"]) == 0
    assert "AllTraffic" in capsys.readouterr().out
    request = tmp_path / "request.json"
    request.write_bytes(request_body(num_samples=5))
    assert main(["endpoint", "invoke", "cli", "--file", str(request)]) == 0
    predictions = json.loads(capsys.readouterr().out)
    assert len(predictions[0]["mean"]) == PREDICTION_LENGTH
    request.write_text('{"instances": []}')
    assert main(["endpoint", "invoke", "cli", "--file", str(request)]) == 1
    assert "instances" in capsys.readouterr().err
    assert main(["endpoint", "invoke", "nope", "--file", str(request)]) == 1
    assert "not found" in capsys.readouterr().err
    assert main(["endpoint", "describe", "nope"]) == 1
    assert main(["endpoint", "deploy", "--model-package", "latest"]) == 1
    assert "latest" in capsys.readouterr().err

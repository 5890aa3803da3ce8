"""``aircast models``: the Model Registry's packages listed, approved and rejected through the CLI (local backend)."""

from __future__ import annotations

import json

import pytest

from infra.local.sagemaker.client import LocalSageMakerClient
from tests.local.sagemaker.test_registry import register_package


def test_models_cli(settings, capsys: pytest.CaptureFixture[str]) -> None:
    from aircast.cli import main

    client = LocalSageMakerClient(settings.local_config())
    client.create_model_package_group(ModelPackageGroupName=settings.model_package_group)
    register_package(client, wql="0.42")
    assert main(["models", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["version"] == 1 and rows[0]["mean_wQL"] == 0.42 and rows[0]["status"] == "PendingManualApproval"
    assert main(["models", "approve", "1"]) == 0
    assert "PendingManualApproval → Approved" in capsys.readouterr().out
    assert main(["models", "reject", "7"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["models", "approve", "latest"]) == 2  # usage
    assert "version number" in capsys.readouterr().err

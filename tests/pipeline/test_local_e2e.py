"""Local mode end to end: tiny curated hourly data → the pipeline's own definition executed here
with the real job code (preprocess, GluonTS DeepAR, batch transform, evaluate) → the registry."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.pipeline.conftest import write_curated_hourly

# tiny and fast: a few short series, one epoch of a small network, one training job
FAST = {"Epochs": 1, "NumEvalWindows": 2, "NumValidationWindows": 2, "ContextLength": 24, "NumCells": 8,
        "NumLayers": 1, "MiniBatchSize": 8, "DropoutRate": 0.0, "MaxTuningJobs": 1, "MaxParallelTuningJobs": 1}


def execution_dir(settings, summary: dict) -> Path:
    """Where the local pipeline wrote one execution's artifacts (its steps' outputs)."""
    return (settings.s3_root / settings.artifacts_bucket / "pipelines" / settings.pipeline_name
            / summary["execution_arn"].rsplit("/", 1)[-1])


@pytest.mark.slow
def test_pipeline_registers_a_package_and_a_failing_gate_registers_nothing(settings, capsys) -> None:
    from aircast.cli import main
    from aircast.local_wiring import run_local_pipeline
    from infra.local.sagemaker.client import LocalSageMakerClient

    write_curated_hourly(settings.s3_root, things=("station-a", "station-b"), pollutants=("pm2_5", "pm10"), days=10)

    # 1) a gate the tiny model can pass → a registered package with its metrics, Deploy consulted
    passing = run_local_pipeline(settings, {**FAST, "MaxRelativeWQL": 100.0, "MaxMeanWQL": 100.0}, progress=False)
    assert passing["status"] == "Succeeded", passing["failure_reason"]
    assert [s["step"] for s in passing["steps"]] == ["Preprocess", "TuneDeepAR", "CreateModel", "BatchForecast",
                                                     "Evaluate", "QualityGate", "RegisterModel", "Deploy"]
    arn = passing["model_package_arn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:000000000000:model-package/{settings.model_package_group}/1"
    client = LocalSageMakerClient(settings.local_config())
    pkg = client.describe_model_package(ModelPackageName=arn)
    assert pkg["ModelApprovalStatus"] == "PendingManualApproval"
    container = pkg["InferenceSpecification"]["Containers"][0]
    assert "forecasting-deepar" in container["Image"]
    model_tar = settings.s3_root / container["ModelDataUrl"][len("s3://"):]
    assert model_tar.is_file() and model_tar.name == "model.tar.gz"
    stats_uri = pkg["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    report = json.loads((settings.s3_root / stats_uri[len("s3://"):]).read_text())
    wql = report["forecast_metrics"]["mean_wQuantileLoss"]["value"]
    assert 0 < wql < 100 and report["evaluation"]["windows"] == 2
    assert float(pkg["CustomerMetadataProperties"]["mean_wQuantileLoss"]) == pytest.approx(wql)
    assert pkg["CustomerMetadataProperties"]["pipeline_execution_id"] == passing["execution_arn"].rsplit("/", 1)[-1]
    # batch forecast: one prediction line per evaluation window
    lines = (execution_dir(settings, passing) / "batch-forecast" / "windows.jsonl.out").read_text().splitlines()
    assert len(lines) == report["evaluation"]["series"] * 2 and "quantiles" in json.loads(lines[0])

    # 2) an impossible threshold: the gate fails, nothing is registered, and the execution says so
    failing = run_local_pipeline(settings, {**FAST, "MaxMeanWQL": 1e-9}, progress=False)
    assert failing["status"] == "Failed"
    assert failing["steps"][-1]["step"] == "QualityGateFailed"
    assert "quality gate failed" in failing["failure_reason"] and "nothing registered" in failing["failure_reason"]
    # the reason names the best candidate and the best baseline with both figures
    reason = failing["failure_reason"]
    assert "best candidate DeepAR training job " in reason and "-001-" in reason and " mean wQL 0." in reason
    assert re.search(r"vs best baseline (seasonal_naive|autotheta)\S* mean wQL \d", reason), reason
    assert "RegisterModel" not in [s["step"] for s in failing["steps"]]
    versions = client.list_model_packages(ModelPackageGroupName=settings.model_package_group)
    assert [p["ModelPackageVersion"] for p in versions["ModelPackageSummaryList"]] == [1]

    # the CLI shows both executions and the failed one's steps
    capsys.readouterr()
    assert main(["pipeline", "executions", "--json"]) == 0
    executions = json.loads(capsys.readouterr().out)
    assert [e["PipelineExecutionStatus"] for e in executions] == ["Failed", "Succeeded"]
    assert main(["pipeline", "steps"]) == 0
    text = capsys.readouterr().out
    assert "QualityGateFailed" in text and "no model package was registered" in text


@pytest.mark.slow
def test_bad_hyperparameter_value_fails_training_with_its_name(settings, capsys) -> None:
    from aircast.cli import main

    write_curated_hourly(settings.s3_root, days=6)
    rc = main(["pipeline", "run", "--local", "--json", "--param", "Likelihood=poisson",
               *[f"--param={k}={v}" for k, v in FAST.items()]])
    summary = json.loads(capsys.readouterr().out)
    assert rc == 1 and summary["status"] == "Failed"
    assert summary["steps"][-1]["step"] == "TuneDeepAR"
    # AWS refuses the tuning job up front: the static likelihood is not a value DeepAR accepts
    assert "ValidationException" in summary["failure_reason"]
    assert "hyperparameter likelihood='poisson'" in summary["failure_reason"]


def test_unknown_param_is_a_clear_cli_error(settings, capsys) -> None:
    from aircast.cli import main

    assert main(["pipeline", "run", "--param", "Epochz=3"]) == 2  # usage
    err = capsys.readouterr().err
    assert "unknown pipeline parameter(s): Epochz; accepted:" in err and "Epochs" in err
    assert main(["pipeline", "run", "--param", "Epochs"]) == 2
    assert "NAME=VALUE" in capsys.readouterr().err


@pytest.mark.slow
def test_an_awkward_fleet_runs_through_with_its_newcomer_set_aside(settings) -> None:
    """What a user's first fleet often looks like: readings below zero, a sensor stuck on one value, and a
    sensor installed 40 hours before the end. The pipeline trains on what it can (a likelihood that reaches below
    zero), sets the newcomer aside with its reason, and the gate judges finite figures."""
    from aircast.local_wiring import run_local_pipeline
    from bench.forecast import write_curated

    rng = np.random.default_rng(1)
    hours = pd.date_range("2025-01-01", periods=24 * 10, freq="h")
    daily = np.sin(2 * np.pi * hours.hour / 24)
    series = {"frost-1": -3 + 4 * daily + rng.normal(0, 0.5, len(hours)),
              "frost-2": 1 + 3 * daily + rng.normal(0, 0.5, len(hours)),
              "stuck": np.full(len(hours), 4.0),
              "new": np.r_[np.full(len(hours) - 40, np.nan), 2 + rng.normal(0, 0.5, 40)]}
    write_curated(pd.DataFrame([{"thing_name": thing, "pollutant": "temperature", "hour": hour, "mean": value}
                                for thing, values in series.items() for hour, value in zip(hours, values, strict=True)
                                if np.isfinite(value)]), settings.s3_root)

    summary = run_local_pipeline(settings, {**FAST, "MaxRelativeWQL": 1e9, "MaxMeanWQL": 1e9}, progress=False)
    assert summary["status"] == "Succeeded", summary["failure_reason"]
    run = execution_dir(settings, summary)
    metadata = json.loads(next(run.rglob("metadata/metadata.json")).read_text())
    assert [s["thing_name"] for s in metadata["series"]] == ["frost-1", "frost-2", "stuck"]
    assert [(s["thing_name"], s["reason"].split(":")[0]) for s in metadata["skipped"]] == [("new", "too short")]
    assert metadata["profile"]["hyperparameters"]["likelihood"] == "student-T"
    report = json.loads(next(run.rglob("evaluation.json")).read_text())
    assert report["evaluation"]["series"] == 3
    assert set(report["baseline_metrics"]) == {"seasonal_naive", "autotheta"}  # ten days: no weekly season yet
    figures = [report["forecast_metrics"]["mean_wQuantileLoss"]["value"],
               *(b["mean_wQuantileLoss"]["value"] for b in report["baseline_metrics"].values())]
    assert all(np.isfinite(figures)), figures
    # the sensors read below zero at night, and so do their forecasts (a count likelihood could not)
    forecasts = [json.loads(line) for line in (run / "batch-forecast" / "windows.jsonl.out").read_text().splitlines()]
    assert min(min(f["quantiles"]["0.1"]) for f in forecasts) < 0

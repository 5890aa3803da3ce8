"""The demo's chain at small scale, on real components: mosquitto + awsiotsdk, the delivery
stream, the Glue service's warm Spark session, the pipeline definition executed locally with real (tiny) DeepAR training,
the registry → event bus → deploy Lambda → endpoint host, boto3's sagemaker-runtime client."""

from __future__ import annotations

import json
import os

import pytest

from aircast.cli import main
from aircast.demo import Demo, DemoOptions, DemoReport, count_raw_records, demo_lock
from aircast.output import CommandError
from aircast.settings import settings_env


def small_options(**overrides) -> DemoOptions:
    base = dict(days=12, fresh_days=3, sim_sensors=1, epochs=1, context_length=24, eval_windows=2,
                validation_windows=2, tuning_jobs=1, parallel_tuning_jobs=1,
                clock_scale=0.02, deploy_wait_seconds=60,
                # one tiny epoch cannot be expected to beat the baseline; the gate itself is tested elsewhere
                pipeline_parameters={"MaxRelativeWQL": 100.0, "MaxMeanWQL": 100.0})
    base.update(overrides)
    return DemoOptions(**base)


def run_demo(settings, options: DemoOptions, monkeypatch: pytest.MonkeyPatch) -> DemoReport:
    """The demo as ``aircast demo`` runs it: its settings in ``AIRCAST_*`` for the deploy Lambda that the
    approval invokes in this process (the CLI exports them; the demo leaves the environment alone)."""
    demo = Demo(settings, options)
    for name, value in settings_env(demo.settings).items():
        monkeypatch.setenv(name, value)
    return demo.run()


@pytest.mark.slow
def test_demo_chain_first_run_and_blue_green_rerun(settings, tmp_path, monkeypatch):
    plot = tmp_path / "forecast.png"
    report = run_demo(settings, small_options(plot_path=plot), monkeypatch)

    # every stage ran and was timed
    assert [s.name.split(":")[0] for s in report.stages][:3] == ["Local stack", "Devices", "Lake"]
    assert len(report.stages) == 7
    # records in the lake equal records published, and all of them became readings
    assert report.published > 0 and report.failed == 0
    assert report.lake_records == report.published == count_raw_records(settings)
    assert report.etl["read"] == report.published
    assert report.etl["written"] == report.published and report.etl["quarantined"] == 0
    # a registered package with its evaluation
    assert report.model_package_arn and report.model_package_arn.endswith("/1")
    assert "mean_wQuantileLoss" in report.evaluation["forecast_metrics"]
    assert report.deployment["status"] == "InService" and report.deployment["strategy"] == "create"
    # the endpoint answered a DeepAR request with 24 hours of quantiles
    rows = report.forecast["rows"]
    assert len(rows) == 24
    assert all(r["p10"] <= r["p50"] <= r["p90"] for r in rows)
    assert plot.is_file() and plot.stat().st_size > 10_000

    # rerun: fresh data, a new version deployed blue/green over the old one while serving
    report2 = run_demo(settings, small_options(plot_path=plot), monkeypatch)
    assert report2.model_package_arn.endswith("/2")
    assert report2.lake_records == report.published + report2.published
    assert report2.etl["read"] == report2.published  # the bookmark: only the new objects
    dep = report2.deployment
    assert dep["strategy"] == "canary" and dep["status"] == "InService"
    assert dep["requests_during_update"]["ok"] > 0
    assert dep["requests_during_update"]["failed"] == 0, dep["requests_during_update"]["errors"]
    state = json.loads((settings.data_dir / "demo-state.json").read_text())
    assert state["next_start"] > state["first_start"]


def test_second_demo_on_the_same_data_dir_refuses(settings):
    with demo_lock(settings):
        with pytest.raises(CommandError, match="another aircast demo is already running"):
            with demo_lock(settings):
                pass


def test_the_demo_command_exports_the_demo_settings_and_the_demo_leaves_the_environment_alone(
        settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """``aircast demo`` deploys with its own policy (a canary on two instances, waits on a scaled clock); the
    deploy Lambda its approval invokes in the same process reads its settings from the environment, so the CLI
    exports the demo's settings for the whole command, and the demo itself changes no environment variable."""
    seen: list[tuple[dict[str, str], object]] = []

    def record(self: Demo) -> DemoReport:
        seen.append((dict(os.environ), self.settings))
        return DemoReport()

    monkeypatch.setattr(Demo, "run", record)
    before = dict(os.environ)
    assert main(["demo", "--days", "30", "--sim-sensors", "0"]) == 0
    (env, demo_settings), = seen
    assert settings_env(demo_settings).items() <= env.items()
    assert (env["AIRCAST_DEPLOY_STRATEGY"], env["AIRCAST_DEPLOY_INSTANCE_COUNT"]) == ("canary", "2")
    assert dict(os.environ) == before


def test_the_forecast_request_s_cat_is_the_served_package_s_not_the_newest_execution_s(settings):
    """A rerun with the stack kept up failed every request: a pipeline execution the stack started
    meanwhile (drift, with all pollutants) wrote newer preprocess metadata, and the demo took pm2_5's
    index from it (4) for a model trained on pm2_5 alone (cardinality 1)."""
    from aircast.clients import get_client
    from aircast.demo import deepar_cat
    from tests.helpers import register_package

    s3 = get_client("s3", settings)
    root = f"pipelines/{settings.pipeline_name}"
    things = {"beijing-us-embassy": 0, "sim-sensor-001": 1}
    for execution, pollutants in (("served", {"pm2_5": 0}), ("newer", {"ozone": 0, "pm10": 1, "pm2_5": 2})):
        metadata = {"cat_maps": {"pollutant": pollutants, "thing_name": things},
                    "cardinality": [len(pollutants), len(things)]}
        s3.put_object(Bucket=settings.artifacts_bucket, Key=f"{root}/{execution}/preprocess/metadata/metadata.json",
                      Body=json.dumps(metadata).encode())
    s3.put_object(Bucket=settings.artifacts_bucket, Key=f"{root}/served/evaluation/evaluation.json", Body=b"{}")
    arn = register_package(get_client("sagemaker", settings), settings.model_package_group,
                           f"s3://{settings.artifacts_bucket}/{root}/served/evaluation/evaluation.json", "Approved")

    assert deepar_cat(settings, "beijing-us-embassy", "pm2_5", arn) == [0, 0]
    assert deepar_cat(settings, "sim-sensor-001", "ozone", arn) is None  # not a series this model knows
    assert deepar_cat(settings, "beijing-us-embassy", "pm2_5", None) is None

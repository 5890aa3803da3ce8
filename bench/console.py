"""Console page latency with 50 executions and 20 packages (goal: every page's p50 under 300 ms).

``python -m bench.console [--executions 50] [--packages 20] [--requests 30]`` seeds a temporary data
dir through the local stand-ins' own APIs: ``--executions`` executions of a small pipeline (a real
processing job that logs, a quality gate, a registration or a failure), ``--packages`` packages with
their evaluation.json and forecast plot, an endpoint with an hour of invocation metrics, a curated
lake (20 things × 60 days of readings, a quarantine) and a drift report. It then serves the console
on a free port and requests each page ``--requests`` times over HTTP, interleaved with the baseline:
the same page's data read straight through the clients (``aircast.console.data``), without HTTP or
rendering (the console caches what did not change: evaluation.json of registered packages, the lake
summary while no parquet file changed, the drift report while its objects did not). Writes ``bench/out/console.png`` and prints, last, one JSON object: per page
``p50_ms``/``p99_ms``, ``data_p50_ms`` and ``ratio_p50`` (page / data). Exits 1 when a page's p50
is over 300 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import socket
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import pyplot

REPO_ROOT = Path(__file__).resolve().parents[1]
GOAL_MS = 300.0

SCRIPT = textwrap.dedent("""
    import json, pathlib, sys
    score = float(sys.argv[1])
    print(f"scoring with {score}")
    # the container path comes as an argument (local mode maps it to the job's folder; a literal would be the host's)
    out = pathlib.Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps({"score": {"value": score}}))
    print("report written")
""")


def _log(message: str) -> None:
    print(f"[bench.console] {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PROCESSING_IMAGE_URI = "763104351884.dkr.ecr.us-east-1.amazonaws.com/autogluon-training:1.4.0-cpu-py311"


def _definition() -> dict[str, Any]:
    report = {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.Report"}, "Path": "score.value"}}
    out = {"Std:Join": {"On": "/", "Values": ["s3://aircast-artifacts/bench", {"Get": "Execution.PipelineExecutionId"}]}}
    return {"Version": "2020-12-01",
            "Parameters": [{"Name": "Score", "Type": "Float", "DefaultValue": 0.3},
                           {"Name": "Threshold", "Type": "Float", "DefaultValue": 0.5}],
            "Steps": [
                {"Name": "Evaluate", "Type": "Processing", "Arguments": {
                    "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                                                              "VolumeSizeInGB": 30}},
                    # the pipeline's processing image: local mode runs a job only in an image it has a manifest for
                    "AppSpecification": {"ImageUri": PROCESSING_IMAGE_URI, "ContainerEntrypoint": [
                        "python3", "/opt/ml/processing/input/code/job.py"],
                        "ContainerArguments": [{"Std:Join": {"On": "", "Values": [{"Get": "Parameters.Score"}]}},
                                               "/opt/ml/processing/output/report"]},
                    "RoleArn": "arn:aws:iam::000000000000:role/r",
                    "ProcessingInputs": [{"InputName": "code", "S3Input": {
                        "S3Uri": "s3://aircast-artifacts/bench-code/job.py", "LocalPath": "/opt/ml/processing/input/code",
                        "S3DataType": "S3Prefix", "S3InputMode": "File"}}],
                    "ProcessingOutputConfig": {"Outputs": [{"OutputName": "report", "S3Output": {
                        "S3Uri": out, "LocalPath": "/opt/ml/processing/output/report", "S3UploadMode": "EndOfJob"}}]}},
                 "PropertyFiles": [{"PropertyFileName": "Report", "OutputName": "report", "FilePath": "report.json"}]},
                {"Name": "QualityGate", "Type": "Condition", "Arguments": {
                    "Conditions": [{"Type": "LessThanOrEqualTo", "LeftValue": report,
                                    "RightValue": {"Get": "Parameters.Threshold"}}],
                    "IfSteps": [{"Name": "Approve", "Type": "Fail", "Arguments": {"ErrorMessage": "stand-in end"}}],
                    "ElseSteps": [{"Name": "QualityGateFailed", "Type": "Fail", "Arguments": {"ErrorMessage": {
                        "Std:Join": {"On": "", "Values": ["score ", report, " above ", {"Get": "Parameters.Threshold"}]}}}}],
                }}]}


def _evaluation(rng: np.random.Generator) -> dict[str, Any]:
    wql, naive = float(rng.uniform(0.3, 0.6)), float(rng.uniform(0.5, 0.8))
    return {"forecast_metrics": {"mean_wQuantileLoss": {"value": wql}, "RMSE": {"value": float(rng.uniform(20, 40))},
                                 "MASE": {"value": float(rng.uniform(0.6, 1.2))},
                                 "coverage[0.1,0.9]": {"value": float(rng.uniform(0.7, 0.9))},
                                 **{f"wQuantileLoss[{q}]": {"value": float(rng.uniform(0.2, 0.7))}
                                    for q in ("0.1", "0.5", "0.9")}},
            "baseline_metrics": {"seasonal_naive": {"mean_wQuantileLoss": {"value": naive},
                                                    "RMSE": {"value": float(rng.uniform(25, 45))},
                                                    "MASE": {"value": float(rng.uniform(0.9, 1.4))},
                                                    "coverage[0.1,0.9]": {"value": float(rng.uniform(0.7, 0.9))}}},
            "relative_mean_wQuantileLoss": {"value": wql / naive},
            "evaluation": {"series": 12, "windows": 7, "prediction_length": 24, "quantiles": [0.1, 0.5, 0.9]}}


def seed(settings: Any, executions: int, packages: int) -> dict[str, Any]:
    """Fill the data dir through the stand-ins' APIs; returns ids the pages need."""
    from aircast.clients import get_client
    from aircast.lake_paths import local_curated_dir
    from infra.local.sagemaker.client import LocalSageMakerClient
    from infra.local.sagemaker.cloudwatch import write_minutes
    from infra.local.sagemaker.endpoints import EndpointStore
    from infra.local.sagemaker.pipelines import run_execution
    from pipelines.executions import upsert_pipeline

    rng = np.random.default_rng(0)
    s3, sm = get_client("s3", settings), get_client("sagemaker", settings)
    s3.put_object(Bucket=settings.artifacts_bucket, Key="bench-code/job.py", Body=SCRIPT.encode())
    upsert_pipeline(sm, settings.pipeline_name, json.dumps(_definition()), settings.role_arn)
    t0 = time.monotonic()
    ids = []
    for i in range(executions):
        arn = LocalSageMakerClient(settings.local_config()).create_pipeline_execution_record(settings.pipeline_name, [
            {"Name": "Score", "Value": str(round(float(rng.uniform(0.1, 0.8)), 3))}])
        run_execution(settings.local_config(), arn)
        ids.append(arn.rsplit("/", 1)[-1])
        if (i + 1) % 10 == 0:
            _log(f"{i + 1}/{executions} executions ({time.monotonic() - t0:.0f} s)")
    sm.create_model_package_group(ModelPackageGroupName=settings.model_package_group)
    plot = (REPO_ROOT / "docs" / "forecast.png").read_bytes()
    for v in range(1, packages + 1):
        prefix = f"bench/eval/{v}"
        s3.put_object(Bucket=settings.artifacts_bucket, Key=f"{prefix}/evaluation.json",
                      Body=json.dumps(_evaluation(rng)).encode())
        s3.put_object(Bucket=settings.artifacts_bucket, Key=f"{prefix}/forecast.png", Body=plot)
        # CreateModel checks that the model data exists (no host loads it here)
        s3.put_object(Bucket=settings.artifacts_bucket, Key=f"{prefix}/model.tar.gz", Body=b"placeholder")
        model_url = f"s3://{settings.artifacts_bucket}/{prefix}/model.tar.gz"
        sm.create_model_package(
            ModelPackageGroupName=settings.model_package_group,
            ModelApprovalStatus="Approved" if v < packages else "PendingManualApproval",
            InferenceSpecification={"Containers": [{"Image": "deepar", "ModelDataUrl": model_url}],
                                    "SupportedContentTypes": ["application/json"],
                                    "SupportedResponseMIMETypes": ["application/json"]},
            ModelMetrics={"ModelQuality": {"Statistics": {
                "ContentType": "application/json", "S3Uri": f"s3://{settings.artifacts_bucket}/{prefix}/evaluation.json"}}},
            CustomerMetadataProperties={"pipeline_execution_id": ids[v % len(ids)] if ids else ""})
    # an endpoint serving the last approved version, with an hour of per-minute invocations
    name = "bench-model"
    sm.create_model(ModelName=name, PrimaryContainer={
        "ModelPackageName": f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:model-package/"
                            f"{settings.model_package_group}/{packages - 1}"},
        ExecutionRoleArn=settings.role_arn)
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1, "InitialVariantWeight": 1.0}])
    sm.create_endpoint(EndpointName=settings.endpoint_name, EndpointConfigName=name)
    now = int(time.time() // 60 * 60)
    write_minutes(EndpointStore(settings.data_dir), {
        (settings.endpoint_name, "AllTraffic", now - 60 * m): {"n": 600, "ok": 597, "5xx": 3, "lat_sum": 6e7,
                                                              "lat_min": 5e4, "lat_max": 3e5} for m in range(60)})
    # a lake of 20 things × 60 days, and a quarantine
    for d in pd.date_range("2024-01-01", periods=60, freq="D"):
        folder = local_curated_dir(settings, "readings") / f"dt={d.date()}"
        folder.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"thing_name": np.repeat([f"sensor-{i:02d}" for i in range(20)], 24),
                      "timestamp": pd.Timestamp(d, tz="UTC"), "pm2_5": rng.uniform(5, 80, 480)}).to_parquet(
            folder / "part-0.parquet", index=False)
    folder = local_curated_dir(settings, "quarantine") / "dt=2024-01-01"
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"raw": ["x"] * 30, "reason": ["bad_seq"] * 20 + ["unparsable_json"] * 10}).to_parquet(
        folder / "part-0.parquet", index=False)
    # a drift report: 20 series, one forecast every 3 hours for 20 days
    from aircast.monitoring import REPORT_PREFIX

    arn = f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:model-package/{settings.model_package_group}/1"
    starts = pd.date_range("2024-02-01", periods=160, freq="3h", tz="UTC")
    scores = pd.DataFrame([{"thing_name": f"sensor-{i:02d}", "pollutant": "pm2_5", "model_package_arn": arn,
                            "forecast_start": s.isoformat(), "wql": float(rng.uniform(0.2, 0.6))}
                           for i in range(20) for s in starts])
    report = {"endpoint_name": settings.endpoint_name, "thresholds": {"error_ratio": 1.5, "window_hours": 24},
              "baselines": {arn: {"mean_wql": 0.4, "mase": 1.0}}, "served_forecasts": len(scores),
              "scored_forecasts": len(scores), "latest_actual_hour": "2024-02-21 00:00:00",
              "generated_at": dt.datetime.now(dt.UTC).isoformat(),
              "decision": {"drift": False, "reason": "no series stayed above 1.5× the evaluation wQL for 24 h",
                           "series": []},
              "drift_events": [], "model_switches": [{"model_package_arn": arn,
                                                      "first_forecast_hour": starts[0].isoformat()}]}
    prefix = REPORT_PREFIX.format(endpoint=settings.endpoint_name)
    s3.put_object(Bucket=settings.artifacts_bucket, Key=f"{prefix}/drift_report.json", Body=json.dumps(report).encode())
    s3.put_object(Bucket=settings.artifacts_bucket, Key=f"{prefix}/scores.csv", Body=scores.to_csv(index=False).encode())
    return {"execution": ids[0], "package": packages}


def baselines(settings: Any, ids: dict[str, Any]) -> dict[str, Any]:
    """Each page's data read straight through the clients (what the CLI would print)."""
    from aircast.clients import get_client
    from aircast.commands.lake import curated_views, run_query
    from aircast.console import data as views
    from aircast.monitoring import REPORT_PREFIX
    from aircast.reads import package_arn, pipeline_executions, read_s3_bytes, read_s3_json

    sm, s3 = get_client("sagemaker", settings), get_client("s3", settings)
    logs, cw = get_client("logs", settings), get_client("cloudwatch", settings)
    cache: dict[str, Any] = {}
    monitor = f"s3://{settings.artifacts_bucket}/{REPORT_PREFIX.format(endpoint=settings.endpoint_name)}"

    def execution() -> Any:
        arn = next(s["PipelineExecutionArn"] for s in pipeline_executions(sm, settings.pipeline_name)
                   if s["PipelineExecutionArn"].endswith(ids["execution"]))
        return views.execution_detail(sm, logs, arn)

    return {
        "/pipelines": lambda: views.execution_rows(sm, settings.pipeline_name),
        f"/pipelines/executions/{ids['execution']}": execution,
        "/models": lambda: (views.package_rows(sm, s3, settings.model_package_group, cache=cache),
                            views.serving_state(sm, settings.endpoint_name)),
        f"/models/{ids['package']}": lambda: views.package_detail(
            sm, s3, package_arn(settings, str(ids["package"])), settings.endpoint_name, cache=cache),
        "/endpoints": lambda: views.endpoint_rows(sm, cw),
        "/data": lambda: (views.lake_summary(lambda sql: run_query(settings, sql), curated_views(settings)),
                          views.drift_view(read_s3_json(s3, f"{monitor}/drift_report.json"),
                                           read_s3_bytes(s3, f"{monitor}/scores.csv").decode())),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=50)
    parser.add_argument("--packages", type=int, default=20)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--plot", type=Path, default=REPO_ROOT / "bench" / "out" / "console.png")
    args = parser.parse_args(argv)

    import httpx
    import uvicorn

    from aircast.console.app import create_app
    from aircast.settings import load_settings

    tmp = Path(tempfile.mkdtemp(prefix="aircast-bench-console-"))
    try:
        port = _free_port()
        settings = load_settings(data_dir=tmp / "data", console_port=port)
        _log(f"seeding {args.executions} executions and {args.packages} packages in {settings.data_dir}")
        ids = seed(settings, args.executions, args.packages)
        server = uvicorn.Server(uvicorn.Config(create_app(settings, "bench-token"), host="127.0.0.1", port=port,
                                               log_level="warning", access_log=False))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        data = baselines(settings, ids)
        pages: dict[str, list[float]] = {p: [] for p in data}
        reads: dict[str, list[float]] = {p: [] for p in data}
        with httpx.Client(base_url=settings.console_url, timeout=30) as client:
            for path in data:  # warm: imports, first connections, caches a running console has
                assert client.get(path).status_code == 200, path
                data[path]()
            for _ in range(args.requests):
                for path, read in data.items():
                    t = time.perf_counter()
                    resp = client.get(path)
                    pages[path].append((time.perf_counter() - t) * 1000)
                    if resp.status_code != 200:
                        raise SystemExit(f"{path} answered {resp.status_code}: {resp.text[:300]}")
                    t = time.perf_counter()
                    read()
                    reads[path].append((time.perf_counter() - t) * 1000)
        server.should_exit = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    result: dict[str, Any] = {"executions": args.executions, "packages": args.packages, "requests": args.requests,
                              "goal_p50_ms": GOAL_MS, "pages": {}}
    for path in pages:
        p50, p99 = float(np.percentile(pages[path], 50)), float(np.percentile(pages[path], 99))
        base = float(np.percentile(reads[path], 50))
        key = path.split("/")[1] + ("/detail" if path.count("/") > 1 else "")
        result["pages"][key] = {"p50_ms": round(p50, 1), "p99_ms": round(p99, 1), "data_p50_ms": round(base, 1),
                                "ratio_p50": round(p50 / base, 2) if base > 0 else None}
        _log(f"{path:32s} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  data only p50 {base:7.1f} ms")
    worst = max(v["p50_ms"] for v in result["pages"].values())
    result["worst_p50_ms"] = worst
    result["goal_met"] = worst <= GOAL_MS

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 4))
    names = list(result["pages"])
    x = np.arange(len(names))
    ax.bar(x - 0.27, [result["pages"][n]["data_p50_ms"] for n in names], 0.27, label="data through the clients, p50")
    ax.bar(x, [result["pages"][n]["p50_ms"] for n in names], 0.27, label="page over HTTP, p50")
    ax.bar(x + 0.27, [result["pages"][n]["p99_ms"] for n in names], 0.27, label="page over HTTP, p99")
    ax.axhline(GOAL_MS, color="red", ls="--", lw=1, label=f"goal {GOAL_MS:.0f} ms")
    ax.set_xticks(x, names, rotation=15)
    ax.set_ylabel("ms")
    ax.set_title(f"console pages with {args.executions} executions and {args.packages} packages")
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.plot.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.plot, dpi=100)
    _log(f"plot: {args.plot}")
    print(json.dumps(result), flush=True)
    return 0 if result["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Running the drift monitor for this deployment: where its inputs are, which baselines apply.

The monitor job itself (:mod:`evaluation.drift_monitor`) only knows folders. Here the settings
decide the folders: locally the data dir's S3 (``s3://<artifacts>/datacapture/<endpoint>/``, the
curated hourly lake); on AWS the same prefixes are downloaded first. The evaluation baseline of
each model that served comes from the Model Registry: the package's
``ModelMetrics.ModelQuality.Statistics.S3Uri`` (the Evaluate step's ``evaluation.json``). Which model
served a record is what AWS gives on both backends: the endpoint config whose capture destination
holds it, and that config's model (``DescribeEndpointConfig`` → ``DescribeModel`` → ``ModelPackageName``).

``lambda_handler`` is the local Lambda ``aircast-drift-monitor`` that the scheduled
``aircast-drift-check`` rule invokes.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from aircast.clients import get_client
from aircast.settings import Settings, load_settings
from deployment.deploy import config_package
from evaluation.drift import Baseline, baseline_from_evaluation, capture_origin, parse_capture_records
from evaluation.drift_monitor import MonitorConfig, read_capture, run_monitor

STATE_KEY = "monitoring/{endpoint}/state.json"
REPORT_PREFIX = "monitoring/{endpoint}/latest"


def capture_uri(settings: Settings) -> str:
    """Where the endpoint's Data Capture lines land."""
    return f"s3://{settings.artifacts_bucket}/datacapture/{settings.endpoint_name}/"


def hourly_uri(settings: Settings) -> str:
    """The curated hourly lake prefix (the actuals)."""
    return f"s3://{settings.lake_bucket}/curated/hourly/"


def report_dir(settings: Settings) -> Path:
    """Local folder of the latest monitor outputs (report, scores, timeline, plot)."""
    return settings.s3_root / settings.artifacts_bucket / REPORT_PREFIX.format(endpoint=settings.endpoint_name)


def state_path(settings: Settings) -> Path:
    """Which drift events were already sent (so one drift is announced once)."""
    return settings.s3_root / settings.artifacts_bucket / STATE_KEY.format(endpoint=settings.endpoint_name)


def _read_s3_json(s3: Any, uri: str) -> dict[str, Any]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def baselines_for(settings: Settings, model_package_arns: set[str]) -> tuple[dict[str, Baseline], list[str]]:
    """Evaluation baselines of the given model packages from the registry; notes for those without one."""
    sagemaker = get_client("sagemaker", settings)
    s3 = get_client("s3", settings)
    out: dict[str, Baseline] = {}
    notes = []
    for arn in sorted(model_package_arns):
        if ":model-package/" not in arn:
            notes.append(f"{arn}: served without a model package ARN; cannot find its evaluation")
            continue
        try:
            desc = sagemaker.describe_model_package(ModelPackageName=arn)
            uri = desc["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
            out[arn] = baseline_from_evaluation(_read_s3_json(s3, uri))
        except Exception as exc:  # noqa: BLE001 - one model without metrics must not stop the check
            notes.append(f"{arn}: no usable evaluation.json ({type(exc).__name__}: {exc})")
    return out, notes


def packages_for(settings: Settings, keys: Any) -> dict[str, str]:
    """Endpoint config → model package ARN for the configs that captured the records under ``keys``."""
    sagemaker = get_client("sagemaker", settings)
    configs = {capture_origin(key)[0] for key in keys} - {None}
    return {config: arn for config in sorted(configs) if (arn := config_package(sagemaker, config))}


def _download_prefix(s3: Any, uri: str, dest: Path) -> Path:
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    token = None
    while True:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if token:
            kwargs["ContinuationToken"] = token
        page = s3.list_objects_v2(**kwargs)
        for obj in page.get("Contents", []):
            target = dest / obj["Key"][len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            s3.download_file(bucket, obj["Key"], str(target))
        if not page.get("IsTruncated"):
            return dest
        token = page.get("NextContinuationToken")


def monitor_inputs(settings: Settings, workdir: Path) -> tuple[Path, Path]:
    """Local folders holding the Data Capture lines and the curated hourly lake."""
    if settings.backend == "local":
        root = settings.s3_root
        return (root / settings.artifacts_bucket / "datacapture" / settings.endpoint_name,
                root / settings.lake_bucket / "curated" / "hourly")
    s3 = get_client("s3", settings)
    return (_download_prefix(s3, capture_uri(settings), workdir / "datacapture"),
            _download_prefix(s3, hourly_uri(settings), workdir / "hourly"))


def run_monitor_for(settings: Settings, emit: bool = True, events_client: Any | None = None,
                    plot: bool = True) -> dict[str, Any]:
    """One drift check for the configured endpoint; emits the drift event (when new) unless ``emit`` is false.

    With ``plot`` the error timeline PNG is (re)drawn in :func:`report_dir`."""
    on_aws = settings.backend == "aws"
    with tempfile.TemporaryDirectory(prefix="aircast-monitor-") as tmp:
        capture, hourly = monitor_inputs(settings, Path(tmp))
        records = read_capture(capture)
        packages = packages_for(settings, {key for key, _ in records})
        forecasts, _ = parse_capture_records(records, packages)
        baselines, notes = baselines_for(settings, {f.model_package_arn for f in forecasts})
        # on AWS the report and the sent-events state live in S3 (a Lambda's disk does not last)
        output = Path(tmp) / "report" if on_aws else report_dir(settings)
        state = Path(tmp) / "state.json" if on_aws else state_path(settings)
        s3 = get_client("s3", settings) if on_aws else None
        state_key = STATE_KEY.format(endpoint=settings.endpoint_name)
        if s3 is not None:
            try:
                s3.download_file(settings.artifacts_bucket, state_key, str(state))
            except Exception:  # noqa: BLE001 - no state yet: nothing was announced
                pass
        config = MonitorConfig(
            datacapture=capture, hourly=hourly, output=output, baselines=baselines,
            model_package_group=settings.model_package_group, endpoint_name=settings.endpoint_name,
            error_ratio=settings.drift_error_ratio, window_hours=settings.drift_window_hours,
            state=state, emit=emit, plot=plot, packages=packages)
        events = events_client if events_client is not None else (get_client("events", settings) if emit else None)
        report = run_monitor(config, events)
        if s3 is not None:
            if state.is_file():
                s3.upload_file(str(state), settings.artifacts_bucket, state_key)
            prefix = REPORT_PREFIX.format(endpoint=settings.endpoint_name)
            for path in sorted(p for p in output.rglob("*") if p.is_file()):
                s3.upload_file(str(path), settings.artifacts_bucket, f"{prefix}/{path.relative_to(output).as_posix()}")
    report["baseline_notes"] = notes
    return report


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The scheduled drift check (local Lambda ``aircast-drift-monitor``): run the monitor, emit on drift."""
    settings = load_settings()
    print(f"drift check triggered by {event.get('source', '?')} {event.get('detail-type', '')}", file=sys.stderr)
    # no matplotlib in the Lambda runtime: the plot is drawn where the CLI runs (aircast monitor plot)
    report = run_monitor_for(settings, emit=True, plot=settings.backend != "aws")
    return {"drift": report["decision"]["drift"], "reason": report["decision"]["reason"],
            "event_sent": report["event_sent"], "scored_forecasts": report["scored_forecasts"]}

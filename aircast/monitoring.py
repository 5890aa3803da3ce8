"""Running the drift monitor for this deployment: where its inputs are, which baselines apply.

The monitor job itself (:mod:`evaluation.drift_monitor`) only knows folders. Here the settings
decide the folders: locally the data dir's S3 (``s3://<artifacts>/datacapture/<endpoint>/``, the
curated hourly lake), read in place; on AWS (the drift Lambda) only the window one check scores is
downloaded to its ``/tmp``: the Data Capture objects of the last ``drift_lookback_hours`` capture
hours (SageMaker writes them under ``<endpoint>/<variant>/yyyy/mm/dd/hh/``, the hour of the
invocation), then the curated ``hourly/dt=`` partitions those forecasts and their input-drift
reference need. The evaluation baseline of each model that served comes from the Model Registry:
the package's ``ModelMetrics.ModelQuality.Statistics.S3Uri`` (the Evaluate step's ``evaluation.json``).
Which model served a record is what AWS gives on both backends: the endpoint config whose capture
destination holds it, and that config's model (``DescribeEndpointConfig`` → ``DescribeModel`` →
``ModelPackageName``).

``lambda_handler`` is the local Lambda ``aircast-drift-monitor`` that the scheduled
``aircast-drift-check`` rule invokes.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from aircast.clients import get_client
from aircast.lake_paths import curated_uri, local_curated_dir
from aircast.settings import Settings, load_settings
from deployment.deploy import config_package
from evaluation.drift import Baseline, baseline_from_evaluation, capture_origin, parse_capture_records
from evaluation.drift_monitor import MonitorConfig, read_capture, run_monitor

STATE_KEY = "monitoring/{endpoint}/state.json"
REPORT_PREFIX = "monitoring/{endpoint}/latest"


def capture_uri(settings: Settings) -> str:
    """Where the endpoint's Data Capture lines land."""
    return f"s3://{settings.artifacts_bucket}/datacapture/{settings.endpoint_name}/"


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


# ---------------------------------------------------------------------------- the window one check reads
_CAPTURE_HOUR = re.compile(r"^(?:[^/]+/)+?(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+\.jsonl$")
_YEAR = re.compile(r"\d{4}/")
_HOURLY_DAY = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})/")


def capture_window(now: dt.datetime, lookback_hours: int) -> tuple[dt.datetime, dt.datetime]:
    """First and last capture hour (UTC, inclusive) of the ``lookback_hours`` hours ending with ``now``'s hour."""
    if lookback_hours < 1:
        raise ValueError(f"drift_lookback_hours must be at least 1, got {lookback_hours}")
    last = now.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return last - dt.timedelta(hours=lookback_hours - 1), last


def capture_hour(relative_key: str) -> dt.datetime | None:
    """The capture hour of a Data Capture key relative to ``<prefix>/<endpoint>/``
    (``<config>/<endpoint>/<variant>/yyyy/mm/dd/hh/f.jsonl``, or ``<variant>/yyyy/...`` for older captures)."""
    m = _CAPTURE_HOUR.match(relative_key)
    if not m:
        return None
    year, month, day, hour = map(int, m.groups())
    try:
        return dt.datetime(year, month, day, hour, tzinfo=dt.UTC)
    except ValueError:  # not a date: not a capture folder
        return None


def hourly_days(forecasts: Sequence[Any], reference_hours: int) -> tuple[dt.date, dt.date] | None:
    """First and last ``dt=`` day of the curated hourly lake that scoring ``forecasts`` reads.

    From ``reference_hours`` before the first forecast (the history that identifies each series and
    the input-drift reference) to the end of the last forecast's horizon. None without forecasts.
    """
    if not forecasts:
        return None
    first = min(f.forecast_start for f in forecasts) - dt.timedelta(hours=reference_hours)
    last = max(f.forecast_start + dt.timedelta(hours=max(f.horizon, 1) - 1) for f in forecasts)
    return first.date(), last.date()


def _listed(s3: Any, bucket: str, prefix: str, start_after: str | None = None) -> Iterator[str]:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
    if start_after:
        kwargs["StartAfter"] = start_after  # keys come in UTF-8 order: skip straight to the window
    for page in s3.get_paginator("list_objects_v2").paginate(**kwargs):
        for obj in page.get("Contents", []):
            yield obj["Key"]


def _hour_roots(s3: Any, bucket: str, prefix: str, depth: int = 4) -> list[str]:
    """The folders under ``prefix`` that hold SageMaker's ``yyyy/mm/dd/hh/`` capture folders: a config's
    ``<config>/<endpoint>/<variant>/`` (each endpoint config captures to its own destination), or an older
    ``<variant>/``. Found by listing with a delimiter, a level at a time."""
    roots, frontier = [], [prefix]
    for _ in range(depth):
        deeper = []
        for folder in frontier:
            children = [cp["Prefix"] for page in s3.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=folder, Delimiter="/") for cp in page.get("CommonPrefixes", [])]
            if any(_YEAR.fullmatch(child[len(folder):]) for child in children):
                roots.append(folder)
            deeper += [child for child in children if not _YEAR.fullmatch(child[len(folder):])]
        frontier = deeper
    return roots


def capture_keys_in_window(s3: Any, bucket: str, prefix: str, first: dt.datetime, last: dt.datetime) -> list[str]:
    """Data Capture keys under ``prefix`` (``.../datacapture/<endpoint>/``) captured from hour ``first`` to ``last``."""
    keys = []
    for root in _hour_roots(s3, bucket, prefix):
        for key in _listed(s3, bucket, root, start_after=f"{root}{first:%Y/%m/%d/%H}"):
            hour = capture_hour(key[len(prefix):])
            if hour is None:
                continue
            if hour > last:
                break
            if hour >= first:
                keys.append(key)
    return keys


def hourly_keys_for_days(s3: Any, bucket: str, prefix: str, first: dt.date, last: dt.date) -> list[str]:
    """Curated hourly parquet keys under ``prefix`` (``.../curated/hourly/``) of the days ``first``..``last``."""
    keys = []
    for key in _listed(s3, bucket, f"{prefix}dt=", start_after=f"{prefix}dt={first.isoformat()}"):
        m = _HOURLY_DAY.match(key[len(prefix):])
        if m is None:
            continue
        if m.group(1) > last.isoformat():
            break
        if key.endswith(".parquet"):
            keys.append(key)
    return keys


def download_keys(s3: Any, bucket: str, prefix: str, keys: Sequence[str], dest: Path) -> Path:
    """Download ``keys`` (all under ``prefix``) to ``dest``, keeping their paths below the prefix."""
    dest.mkdir(parents=True, exist_ok=True)
    for key in keys:
        target = dest / key[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
    return dest


def capture_input(settings: Settings, workdir: Path, now: dt.datetime) -> Path:
    """The folder of Data Capture lines one check reads: in place locally, the window's objects on AWS."""
    if settings.backend == "local":
        return settings.s3_root / settings.artifacts_bucket / "datacapture" / settings.endpoint_name
    bucket, _, prefix = capture_uri(settings)[len("s3://"):].partition("/")
    first, last = capture_window(now, settings.drift_lookback_hours)
    s3 = get_client("s3", settings)
    return download_keys(s3, bucket, prefix, capture_keys_in_window(s3, bucket, prefix, first, last),
                         workdir / "datacapture")


def hourly_input(settings: Settings, workdir: Path, forecasts: Sequence[Any]) -> Path:
    """The folder of curated hourly parquet one check reads: in place locally, the days ``forecasts`` need on AWS."""
    if settings.backend == "local":
        return local_curated_dir(settings, "hourly")
    dest = workdir / "hourly"
    days = hourly_days(forecasts, MonitorConfig.reference_hours)
    if days is None:
        return dest
    bucket, _, prefix = curated_uri(settings, "hourly")[len("s3://"):].partition("/")
    s3 = get_client("s3", settings)
    return download_keys(s3, bucket, prefix, hourly_keys_for_days(s3, bucket, prefix, *days), dest)


def run_monitor_for(settings: Settings, emit: bool = True, events_client: Any | None = None,
                    plot: bool = True, now: dt.datetime | None = None) -> dict[str, Any]:
    """One drift check for the configured endpoint; emits the drift event (when new) unless ``emit`` is false.

    With ``plot`` the error timeline PNG is (re)drawn in :func:`report_dir`. ``now`` ends the window of
    Data Capture hours read on AWS (default: the current time)."""
    on_aws = settings.backend == "aws"
    with tempfile.TemporaryDirectory(prefix="aircast-monitor-") as tmp:
        capture = capture_input(settings, Path(tmp), now or dt.datetime.now(dt.UTC))
        records = read_capture(capture)
        packages = packages_for(settings, {key for key, _ in records})
        forecasts, _ = parse_capture_records(records, packages)
        hourly = hourly_input(settings, Path(tmp), forecasts)
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

"""The one settings object of aircast.

Values come, in increasing priority, from the defaults below, an optional TOML
config file (``AIRCAST_CONFIG`` or ``aircast.toml`` in the working directory),
``AIRCAST_*`` environment variables, and explicit overrides (CLI flags).
The backend (``local`` or ``aws``) decides which clients the code gets; the
project code is the same for both.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.local.core.config import LocalConfig

BACKENDS = ("local", "aws")
GLUE_JIT = ("c1", "tiered")


@dataclass(frozen=True)
class Settings:
    """Configuration for one aircast process (see module docstring for sources)."""

    data_dir: Path = Path(".aircast")
    backend: str = "local"
    region: str = "us-east-1"
    account_id: str = "000000000000"
    # S3 (local: <data_dir>/s3/<bucket>/<key>)
    lake_bucket: str = "aircast-lake"
    artifacts_bucket: str = "aircast-artifacts"
    # IoT Core / MQTT
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 8883
    iot_endpoint: str = ""  # AWS IoT data endpoint (aws backend)
    mqtt_autosave_seconds: int = 30  # local broker: save sessions and queued messages this often
    # Firehose
    delivery_stream: str = "aircast-telemetry"
    firehose_buffer_mib: float = 5.0
    firehose_buffer_seconds: float = 300.0
    # Glue
    glue_database: str = "aircast"
    glue_job_name: str = "aircast-etl"
    glue_port: int = 8093  # the local Glue service (warm Spark session) on 127.0.0.1
    glue_heap_mib: int = 2048  # the local Glue service's Spark heap (-Xmx)
    glue_etl_schedule: str = "cron(15 * * * ? *)"  # the ETL job's scheduled trigger (the stack's EtlSchedule)
    #: the Glue service warms its session up (the job script twice over sample lines, as soon as the session
    #: has started unless a run came first; a run that arrives stops it and finds what it compiled so far);
    #: off: the first run compiles as it goes (the test suite)
    glue_warmup: bool = True
    #: the Glue service JVM's JIT: "c1" (HotSpot's quick compiler only: a cold service's first run of the
    #: demo's 11k records 27 → 13 s, a 1M-record run ~35 % slower) or "tiered" (HotSpot's default: peak
    #: speed for big backfills after a longer warm-up). In-process runs always use "tiered".
    glue_jit: str = "c1"
    # SageMaker
    role_arn: str = "arn:aws:iam::000000000000:role/aircast-sagemaker-execution"
    pipeline_name: str = "aircast-deepar"
    model_package_group: str = "aircast-deepar"
    endpoint_name: str = "aircast-forecast"
    # the stack's DeployFunctionArn output; empty: aircast-deploy in the role's partition, account and region
    deploy_function_arn: str = ""
    endpoint_host: str = "127.0.0.1"
    endpoint_port: int = 8080
    # Deployment policy of approval-driven deploys (deployment/): blue/green strategy and rollback alarms
    # auto: canary when the variant has the 2+ instances a canary needs (SageMaker shifts whole instances,
    # a step is at most 50% of them), else all at once with the baking period | canary | linear | all-at-once
    deploy_strategy: str = "auto"
    deploy_step_percent: int = 20  # canary size / linear step, % of the variant's instances (rounded up)
    deploy_wait_seconds: int = 300  # baking period after each traffic shift
    deploy_termination_wait_seconds: int = 120  # all traffic on green, blue kept this long
    deploy_max_timeout_seconds: int = 3600  # whole deployment; then rolled back
    deploy_error_rate_threshold: float = 0.05  # rollback alarm: Invocation5XXErrors average above this
    deploy_latency_p99_ms: float = 2000.0  # rollback alarm: ModelLatency p99 above this
    deploy_instance_type: str = "ml.m5.large"
    deploy_instance_count: int = 1  # one instance: deployments shift all at once (see deploy_strategy)
    # EventBridge
    eventbus_port: int = 8090  # 0: the bus binds a free port and reports it in <data_dir>/run/eventbridge.port
    # the console for reviewers (aircast console): pipelines, registry approval, endpoints, data and drift
    console_port: int = 8070
    # Model freshness: scheduled retraining and drift-triggered retraining (EventBridge rules)
    retrain_schedule: str = "cron(0 3 ? * SUN *)"  # weekly retrain, Sunday 03:00 UTC
    drift_check_schedule: str = "rate(1 hour)"
    retrain_auto_approve: bool = False  # retrained packages register Approved (deploy at once) instead of pending
    retrain_pipeline_parameters: str = ""  # JSON object of extra pipeline parameters for retraining runs
    drift_error_ratio: float = 1.5  # rolling wQL / evaluation wQL above this counts as degraded
    drift_window_hours: int = 24  # error beyond the ratio for (nearly) all of this many hours → drift
    # Data Capture hours one drift check on AWS reads: the window judged (24 h) + the forecast horizon
    # (24 h) + a day for actuals to reach the curated lake; older captures were judged by earlier checks
    drift_lookback_hours: int = 72
    # Local clock scale for wait intervals (1.0 = real time)
    clock_scale: float = 1.0

    # ---- derived locations (the emulator's data dir layout, defined once in LocalConfig) ---------
    @property
    def s3_root(self) -> Path:
        """Folder that plays S3 locally: ``<data_dir>/s3/<bucket>/<key>``."""
        return self.local_config().s3_root

    @property
    def run_dir(self) -> Path:
        """PID files, bound ports and logs of the local stack's processes."""
        return self.local_config().run_dir

    @property
    def pki_dir(self) -> Path:
        """CA, server and thing certificates of the local IoT Core."""
        return self.local_config().pki_dir

    @property
    def console_url(self) -> str:
        """Base URL of the local console (always loopback)."""
        return f"http://127.0.0.1:{self.console_port}"

    @property
    def lake_uri(self) -> str:
        return f"s3://{self.lake_bucket}"

    @property
    def artifacts_uri(self) -> str:
        return f"s3://{self.artifacts_bucket}"

    @property
    def endpoint_url(self) -> str:
        """Base URL of the local SageMaker Runtime stand-in."""
        return f"http://{self.endpoint_host}:{self.endpoint_port}"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def local_config(self) -> LocalConfig:
        """The local emulator's configuration for these settings (data dir, region, account, clock scale)."""
        from infra.local.core.config import LocalConfig

        return LocalConfig(self.data_dir, self.region, self.account_id, self.clock_scale)


def settings_env(settings: Settings) -> dict[str, str]:
    """``AIRCAST_*`` variables that give a child process exactly these settings."""
    return {f"AIRCAST_{f.name.upper()}": str(getattr(settings, f.name)) for f in dataclasses.fields(settings)}


def _coerce(name: str, raw: Any, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            return str(raw).lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(raw)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"setting {name}={raw!r} is not a valid {type(default).__name__}") from exc


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, config file, ``AIRCAST_*`` env vars and overrides.

    ``None`` overrides are ignored so CLI flags that were not given fall through.
    """
    base = Settings()
    values: dict[str, Any] = {}
    path = config_file or os.environ.get("AIRCAST_CONFIG")
    if path is None and Path("aircast.toml").is_file():
        path = "aircast.toml"
    if path is not None:
        if Path(path).is_dir():
            raise ValueError(f"config file {path} is a folder; give a TOML file (--config or AIRCAST_CONFIG)")
        if not Path(path).is_file():
            raise FileNotFoundError(f"config file {path} does not exist (--config or AIRCAST_CONFIG)")
        with open(path, "rb") as fh:
            values.update(tomllib.load(fh))
    for f in fields(Settings):
        env = os.environ.get(f"AIRCAST_{f.name.upper()}")
        if env is not None and env != "":
            values[f.name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name: getattr(base, f.name) for f in fields(Settings)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    coerced = {k: _coerce(k, v, known[k]) for k, v in values.items()}
    if "region" not in coerced and os.environ.get("AWS_DEFAULT_REGION"):
        coerced["region"] = os.environ["AWS_DEFAULT_REGION"]
    settings = dataclasses.replace(base, **coerced)
    if settings.glue_jit not in GLUE_JIT:
        raise ValueError(f"glue_jit must be one of {GLUE_JIT}, got {settings.glue_jit!r} (AIRCAST_GLUE_JIT)")
    if settings.backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {settings.backend!r} (AIRCAST_BACKEND)")
    return settings.replace(data_dir=settings.data_dir.expanduser().absolute())


def number_in_range(kind: type, low: float, high: float | None = None, *,
                    low_open: bool = False) -> Callable[[str], Any]:
    """An argparse type: a whole number (``kind=int``) or finite number (``float``) in [low, high]
    ((low, high] with ``low_open``); a bad value is refused by argparse, in one line, before any work."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if kind is int else ''}number") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if value < low or (low_open and value == low) or (high is not None and value > high):
            wanted = f"above {low:g}" if low_open else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: give a {'whole ' if kind is int else ''}"
                                             f"number {wanted}" + (f" and at most {high:g}" if high is not None else ""))
        return value

    parse.__name__ = "whole number" if kind is int else "number"
    return parse

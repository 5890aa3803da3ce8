"""The one settings object of aircast.

Values come, in increasing priority, from the defaults below, an optional TOML
config file (``AIRCAST_CONFIG`` or ``aircast.toml`` in the working directory),
``AIRCAST_*`` environment variables, and explicit overrides (CLI flags).
The backend (``local`` or ``aws``) decides which clients the code gets; the
project code is the same for both.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

BACKENDS = ("local", "aws")


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
    # SageMaker
    role_arn: str = "arn:aws:iam::000000000000:role/aircast-sagemaker-execution"
    pipeline_name: str = "aircast-deepar"
    model_package_group: str = "aircast-deepar"
    endpoint_name: str = "aircast-forecast"
    endpoint_host: str = "127.0.0.1"
    endpoint_port: int = 8080
    # Deployment policy of approval-driven deploys (deployment/): blue/green strategy and rollback alarms
    deploy_strategy: str = "canary"  # canary | linear | all-at-once
    deploy_step_percent: int = 20  # canary size / linear step, % of the green fleet
    deploy_wait_seconds: int = 300  # baking period after each traffic shift
    deploy_termination_wait_seconds: int = 120  # all traffic on green, blue kept this long
    deploy_max_timeout_seconds: int = 3600  # whole deployment; then rolled back
    deploy_error_rate_threshold: float = 0.05  # rollback alarm: Invocation5XXErrors average above this
    deploy_latency_p99_ms: float = 2000.0  # rollback alarm: ModelLatency p99 above this
    deploy_instance_type: str = "ml.m5.large"
    deploy_instance_count: int = 1
    # EventBridge
    eventbus_port: int = 8090
    # the console for reviewers (aircast console): pipelines, registry approval, endpoints, data and drift
    console_port: int = 8070
    # Model freshness: scheduled retraining and drift-triggered retraining (EventBridge rules)
    retrain_schedule: str = "cron(0 3 ? * SUN *)"  # weekly retrain, Sunday 03:00 UTC
    drift_check_schedule: str = "rate(1 hour)"
    retrain_auto_approve: bool = False  # retrained packages register Approved (deploy at once) instead of pending
    retrain_pipeline_parameters: str = ""  # JSON object of extra pipeline parameters for retraining runs
    drift_error_ratio: float = 1.5  # rolling wQL / evaluation wQL above this counts as degraded
    drift_window_hours: int = 24  # error beyond the ratio for (nearly) all of this many hours → drift
    # Local clock scale for wait intervals (1.0 = real time)
    clock_scale: float = 1.0

    # ---- derived locations -------------------------------------------------
    @property
    def s3_root(self) -> Path:
        """Folder that plays S3 locally: ``<data_dir>/s3/<bucket>/<key>``."""
        return self.data_dir / "s3"

    @property
    def run_dir(self) -> Path:
        """PID files and logs of the local stack's processes."""
        return self.data_dir / "run"

    @property
    def pki_dir(self) -> Path:
        """CA, server and thing certificates of the local IoT Core."""
        return self.data_dir / "pki"

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
        if not Path(path).is_file():
            raise FileNotFoundError(f"config file {path} does not exist (AIRCAST_CONFIG)")
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
    if settings.backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {settings.backend!r} (AIRCAST_BACKEND)")
    return settings.replace(data_dir=settings.data_dir.expanduser().absolute())


def prepare_sdk_environment(settings: Settings | None = None) -> None:
    """Environment the SageMaker SDK v3 needs to import offline without AWS calls."""
    region = settings.region if settings else "us-east-1"
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")
    os.environ.setdefault("SAGEMAKER_TELEMETRY_OPT_OUT", "true")
    os.environ.setdefault("SAGEMAKER_DISABLE_TELEMETRY", "true")

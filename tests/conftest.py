"""Fixtures shared by every test module: an isolated data dir, settings on free ports
(``tests.helpers.make_settings``), and the environment the SageMaker SDK needs offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")
os.environ.setdefault("SAGEMAKER_TELEMETRY_OPT_OUT", "true")
os.environ.setdefault("SAGEMAKER_DISABLE_TELEMETRY", "true")
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
# Never reach a real AWS account from tests.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.pop("AWS_PROFILE", None)
# Local stand-ins answer only in shapes AWS returns (infra/local/core/botoclient.py).
os.environ["AIRCAST_STRICT_RESPONSES"] = "1"

from aircast.settings import Settings  # noqa: E402
from tests.helpers import free_port, make_settings  # noqa: E402

# the endpoint host and its tiny model, once per session for every directory that uses them
from tests.local.sagemaker.host_fixtures import host, host_settings, model_tarball, model_url, sm  # noqa: E402, F401

__all__ = ["BEIJING_CSV", "REPO_ROOT", "free_port", "make_settings"]

REPO_ROOT = Path(__file__).resolve().parents[1]
BEIJING_CSV = REPO_ROOT / "data" / "beijing_pm25_hourly.csv"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "aircast-data"
    d.mkdir()
    return d


@pytest.fixture
def settings(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings on an empty data dir with free ports (never the defaults)."""
    for key in list(os.environ):
        if key.startswith("AIRCAST_") and key != "AIRCAST_STRICT_RESPONSES":
            monkeypatch.delenv(key)
    s = make_settings(data_dir, glue_heap_mib=1024)
    monkeypatch.setenv("AIRCAST_DATA_DIR", str(data_dir))
    monkeypatch.setenv("AIRCAST_MQTT_PORT", str(s.mqtt_port))
    monkeypatch.setenv("AIRCAST_ENDPOINT_PORT", str(s.endpoint_port))
    monkeypatch.setenv("AIRCAST_EVENTBUS_PORT", str(s.eventbus_port))
    monkeypatch.setenv("AIRCAST_CONSOLE_PORT", str(s.console_port))
    monkeypatch.setenv("AIRCAST_GLUE_PORT", str(s.glue_port))
    monkeypatch.setenv("AIRCAST_GLUE_HEAP_MIB", str(s.glue_heap_mib))
    monkeypatch.setenv("AIRCAST_GLUE_WARMUP", str(s.glue_warmup))
    return s


@pytest.fixture(scope="session")
def spark():
    """One quiet local Spark session for the whole test run (``infra.local.glue.get_spark``)."""
    from infra.local.glue.session import get_spark

    session = get_spark(app_name="aircast-tests")
    yield session
    session.stop()

"""Fixtures shared by every test module: an isolated data dir, free ports,
settings that point at them, and the environment the SageMaker SDK needs offline."""

from __future__ import annotations

import os
import socket
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

from aircast.settings import Settings, load_settings  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
BEIJING_CSV = REPO_ROOT / "data" / "beijing_pm25_hourly.csv"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "aircast-data"
    d.mkdir()
    return d


@pytest.fixture
def settings(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings on an empty data dir with free ports (never the defaults)."""
    for key in list(os.environ):
        if key.startswith("AIRCAST_"):
            monkeypatch.delenv(key)
    s = load_settings(data_dir=data_dir, mqtt_port=free_port(), endpoint_port=free_port(), eventbus_port=free_port(),
                      console_port=free_port(), glue_port=free_port(), glue_heap_mib=1024)
    monkeypatch.setenv("AIRCAST_DATA_DIR", str(data_dir))
    monkeypatch.setenv("AIRCAST_MQTT_PORT", str(s.mqtt_port))
    monkeypatch.setenv("AIRCAST_ENDPOINT_PORT", str(s.endpoint_port))
    monkeypatch.setenv("AIRCAST_EVENTBUS_PORT", str(s.eventbus_port))
    monkeypatch.setenv("AIRCAST_CONSOLE_PORT", str(s.console_port))
    monkeypatch.setenv("AIRCAST_GLUE_PORT", str(s.glue_port))
    monkeypatch.setenv("AIRCAST_GLUE_HEAP_MIB", str(s.glue_heap_mib))
    return s


@pytest.fixture(scope="session")
def spark():
    """One quiet local Spark session for the whole test run (``infra.local.glue.get_spark``)."""
    from infra.local.glue.session import get_spark

    session = get_spark(app_name="aircast-tests")
    yield session
    session.stop()

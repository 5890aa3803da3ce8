"""Fixtures of the endpoint tests (the emulator's and aircast's deployment tests share them; tests/conftest.py
registers them once per session): one tiny DeepAR model trained per session, and a real endpoint host process
started by the stack as ``aircast local up`` starts it, on the port it bound, with a scaled clock."""

from __future__ import annotations

import json
import math
import tarfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from aircast.local_wiring import stack_services
from aircast.settings import Settings
from infra.local import stack
from infra.local.sagemaker.service import NAME as SERVICE
from tests.helpers import make_settings, wait_until

PREDICTION_LENGTH = 6
CLOCK_SCALE = 0.01  # a 300 s wait interval takes 3 s


def tiny_series(n: int = 3, length: int = 96) -> list[dict]:
    """A few hourly sinusoid series with categories, like (thing, pollutant) series."""
    series = []
    for i in range(n):
        target = [round(50 + 20 * math.sin(2 * math.pi * (t + 3 * i) / 24) + i * 5, 3) for t in range(length)]
        series.append({"start": "2024-01-01 00:00:00", "target": target, "cat": [i]})
    return series


@pytest.fixture(scope="session")
def model_tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``model.tar.gz`` of a DeepAR model trained for one tiny epoch (once per session)."""
    from infra.local.sagemaker.deepar import train

    root = tmp_path_factory.mktemp("tiny-deepar")
    train_dir = root / "train"
    train_dir.mkdir()
    with open(train_dir / "train.json", "w") as fh:
        for s in tiny_series():
            fh.write(json.dumps(s) + "\n")
    model_dir = root / "model"
    train({"time_freq": "H", "context_length": "12", "prediction_length": str(PREDICTION_LENGTH), "epochs": "1",
           "num_cells": "8", "num_layers": "1", "mini_batch_size": "16", "cardinality": "auto",
           "num_eval_samples": "20"},
          {"train": train_dir}, model_dir, progress=False)
    tarball = root / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)
    return tarball


def request_body(num_samples: int = 20, output_types: tuple[str, ...] = ("mean", "quantiles"),
                 series: int = 0) -> bytes:
    inst = tiny_series()[series]
    return json.dumps({"instances": [{"start": inst["start"], "target": inst["target"][:48], "cat": inst["cat"]}],
                       "configuration": {"num_samples": num_samples, "output_types": list(output_types),
                                         "quantiles": ["0.1", "0.5", "0.9"]}}).encode()


def put_model(settings: Settings, tarball: Path, key: str) -> str:
    """Copy the model into the local S3 artifacts bucket; returns its s3:// URI."""
    dest = settings.s3_root / settings.artifacts_bucket / key
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(tarball.read_bytes())
    return f"s3://{settings.artifacts_bucket}/{key}"


@dataclass(frozen=True)
class RunningHost:
    """The endpoint host the stack started for the endpoint tests: the port it bound and reported."""

    settings: Settings
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        return (self.settings.run_dir / f"{SERVICE}.log").read_text(errors="replace")[-3000:]


@pytest.fixture(scope="session")
def host_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of the endpoint tests' data dir; the host binds port 0 and reports the port it got."""
    return make_settings(tmp_path_factory.mktemp("endpoint-data"), clock_scale=CLOCK_SCALE)


@pytest.fixture(scope="session")
def host(host_settings: Settings) -> Iterator[RunningHost]:
    """The endpoint host shared by the endpoint tests, started as ``aircast local up`` starts it (stopped at
    the end of the session)."""
    (spec,) = stack_services(host_settings, [SERVICE])
    config = host_settings.local_config()
    started = stack.start_service(spec, config)
    try:
        port = stack.bound_port(config, SERVICE)
        assert port is not None and started["port"] == port > 0, started
        running = RunningHost(host_settings, port)
        wait_until(lambda: _pings(running.url), 30, what="the endpoint host's /ping")
        yield running
    finally:
        stack.stop_service(spec, config)


def _pings(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def model_url(host_settings: Settings, model_tarball: Path) -> str:
    """The tiny model in the host's local S3."""
    return put_model(host_settings, model_tarball, "models/tiny/model.tar.gz")


@pytest.fixture(scope="session")
def sm(host_settings: Settings) -> Any:
    from aircast.clients import get_client

    return get_client("sagemaker", host_settings)

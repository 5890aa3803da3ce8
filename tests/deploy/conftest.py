"""Fixtures of the endpoint tests: one tiny DeepAR model trained per session, and a real
endpoint host process on a free port with a scaled clock."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aircast.settings import Settings, load_settings
from tests.conftest import REPO_ROOT, free_port

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


class HostProcess:
    """``python -m infra.local.sagemaker.host`` as a child process of the test."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        log = open(settings.data_dir / "host.log", "wb")
        env = {**os.environ, "AIRCAST_DATA_DIR": str(settings.data_dir),
               "AIRCAST_ENDPOINT_PORT": str(settings.endpoint_port), "AIRCAST_CLOCK_SCALE": str(settings.clock_scale)}
        self.proc = subprocess.Popen([sys.executable, "-m", "infra.local.sagemaker.host"], cwd=REPO_ROOT, env=env,
                                     stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"endpoint host exited: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{settings.endpoint_url}/ping", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"endpoint host did not answer /ping: {self.log_tail()}")

    def log_tail(self) -> str:
        return (self.settings.data_dir / "host.log").read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="session")
def host_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir = tmp_path_factory.mktemp("endpoint-data")
    return load_settings(data_dir=data_dir, endpoint_port=free_port(), mqtt_port=free_port(),
                         eventbus_port=free_port(), clock_scale=CLOCK_SCALE)


@pytest.fixture(scope="session")
def host(host_settings: Settings) -> Iterator[HostProcess]:
    """A running endpoint host shared by the endpoint tests (stopped at the end of the session)."""
    proc = HostProcess(host_settings)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def model_url(host_settings: Settings, model_tarball: Path) -> str:
    """The tiny model in the host's local S3."""
    return put_model(host_settings, model_tarball, "models/tiny/model.tar.gz")


@pytest.fixture(scope="session")
def sm(host_settings: Settings) -> Any:
    from aircast.clients import get_client

    return get_client("sagemaker", host_settings)

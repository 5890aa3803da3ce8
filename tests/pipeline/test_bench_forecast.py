"""``bench.forecast`` runs the local pipeline in a throw-away data dir: every step of it, the Deploy
step's in-process Lambda included, works in that data dir and nowhere else."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.pipeline.test_local_e2e import FAST


@pytest.mark.slow
def test_the_bench_pipeline_deploys_from_its_own_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from bench.forecast import run_pipeline

    monkeypatch.chdir(tmp_path)  # the default data dir (.aircast) would land here
    for key in [k for k in os.environ if k.startswith("AIRCAST_")]:
        monkeypatch.delenv(key)
    hours = pd.date_range("2024-01-01", periods=24 * 10, freq="h")
    rng = np.random.default_rng(0)
    frame = pd.concat([pd.DataFrame({"thing_name": thing, "pollutant": "pm2_5", "hour": hours,
                                     "mean": 40 + 20 * np.sin(2 * np.pi * np.arange(len(hours)) / 24)
                                     + rng.normal(0, 4, len(hours))}) for thing in ("site-a", "site-b")])

    run = run_pipeline(frame, FAST)

    assert set(run["steps"]) >= {"RegisterModel", "Deploy"}
    err = capsys.readouterr().err
    # the deploy Lambda found the package the pipeline had just registered (not refused: "not found")
    assert '[Deploy] {"status": "awaiting approval"' in err, err[-3000:]
    assert not (tmp_path / ".aircast").exists()

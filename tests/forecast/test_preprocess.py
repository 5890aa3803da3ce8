"""Preprocess: curated hourly rows → DeepAR channels, windows never trained on, skipped series."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from processing.preprocess import PreprocessError, build_dataset, main, normalise_hourly

PL, CTX, K = 4, 6, 3


def rows(thing: str, pollutant: str, start: str, hours: int, drop: tuple[int, ...] = (), base: float = 10.0) -> pd.DataFrame:
    hour = pd.date_range(start, periods=hours, freq="h", tz="UTC")
    frame = pd.DataFrame({"thing_name": thing, "pollutant": pollutant, "hour": hour,
                          "mean": base + np.arange(hours, dtype=float), "count": 6,
                          "min": 0.0, "max": 99.0})
    return frame.drop(index=list(drop)).reset_index(drop=True)


def curated() -> pd.DataFrame:
    return pd.concat(
        [
            rows("sensor-b", "pm2_5", "2021-01-01 00:00", 40, drop=(3, 4, 30)),  # gaps, one inside the windows
            rows("sensor-a", "pm2_5", "2021-01-01 02:00", 38),
            rows("sensor-a", "ozone", "2021-01-01 00:00", 40, base=100.0),
            rows("sensor-c", "ozone", "2021-01-02 10:00", 6),  # too short
        ],
        ignore_index=True,
    )


def test_series_cats_gaps_and_windows() -> None:
    data = build_dataset(normalise_hourly(curated()), PL, CTX, K)
    meta = data.metadata
    assert meta["cat_maps"] == {"pollutant": {"ozone": 0, "pm2_5": 1}, "thing_name": {"sensor-a": 0, "sensor-b": 1}}
    assert meta["cardinality"] == [2, 2]
    assert [(s["thing_name"], s["pollutant"], s["cat"]) for s in meta["series"]] == [
        ("sensor-a", "ozone", [0, 0]), ("sensor-a", "pm2_5", [1, 0]), ("sensor-b", "pm2_5", [1, 1])]
    # One skipped, with a reason that says why.
    assert [(s["thing_name"], s["pollutant"]) for s in meta["skipped"]] == [("sensor-c", "ozone")]
    assert "too short" in meta["skipped"][0]["reason"] and "6 hours" in meta["skipped"][0]["reason"]
    # Missing hours are "NaN", never dropped: sensor-b keeps 40 hourly slots.
    b_test = data.test[2]
    assert b_test["start"] == "2021-01-01 00:00:00" and len(b_test["target"]) == 40
    assert b_test["target"][3] == "NaN" and b_test["target"][4] == "NaN" and b_test["target"][5] == 15.0
    # sensor-a/pm2_5 starts at its first reading and runs to the common end.
    assert data.test[1]["start"] == "2021-01-01 02:00:00" and len(data.test[1]["target"]) == 38
    assert meta["end"] == "2021-01-02 15:00:00" and meta["first_window_start"] == "2021-01-02 04:00:00"


def test_train_channel_ends_before_the_first_evaluation_window() -> None:
    data = build_dataset(normalise_hourly(curated()), PL, CTX, K)
    assert len(data.windows) == len(data.actuals) == 3 * K
    for i, (train, test) in enumerate(zip(data.train, data.test, strict=True)):
        assert len(train["target"]) == len(test["target"]) - K * PL
        assert train["target"] == test["target"][: len(train["target"])]
        assert train["cat"] == test["cat"]
        mine = [a for a in data.actuals if a["series"] == i]
        assert [a["window"] for a in mine] == list(range(K))
        train_end = pd.Timestamp(train["start"]) + pd.Timedelta(hours=len(train["target"]))
        for k, actual in enumerate(mine):
            # Window k starts where the train cut is, plus k windows; never inside the train part.
            assert pd.Timestamp(actual["start"]) == train_end + pd.Timedelta(hours=k * PL)
            assert len(actual["target"]) == PL
    # windows.jsonl lines are DeepAR instances: the history up to the window start, with cat.
    first = data.windows[0]
    assert set(first) == {"start", "target", "cat"} and len(first["target"]) == len(data.train[0]["target"])
    # sensor-b's missing hour 30 falls inside its windows: a NaN actual, to be masked in scoring.
    b_actuals = [a for a in data.actuals if a["series"] == 2]
    assert sum(v == "NaN" for a in b_actuals for v in a["target"]) == 1


def test_duplicate_hours_are_merged_by_count_and_timezones_normalised() -> None:
    frame = pd.DataFrame({"thing_name": ["t", "t"], "pollutant": ["pm10", "pm10"],
                          "hour": [pd.Timestamp("2021-01-01 01:00", tz="UTC"), pd.Timestamp("2021-01-01 02:30", tz="Europe/Paris")],
                          "mean": [10.0, 40.0], "count": [3, 1]})
    out = normalise_hourly(frame)
    assert len(out) == 1 and out["mean"].iloc[0] == pytest.approx(17.5)
    assert out["hour"].iloc[0] == pd.Timestamp("2021-01-01 01:00")  # 02:30 Paris = 01:30 UTC, floored to the hour


def test_no_usable_series_is_a_clear_error() -> None:
    df = normalise_hourly(rows("x", "pm2_5", "2021-01-01", 10))
    with pytest.raises(PreprocessError, match="no usable series .*too short"):
        build_dataset(df, PL, CTX, K)
    with pytest.raises(PreprocessError, match="only hourly"):
        build_dataset(df, PL, CTX, K, freq="D")
    with pytest.raises(PreprocessError, match="lacks column"):
        normalise_hourly(pd.DataFrame({"thing_name": ["x"]}))


def write_partitions(frame: pd.DataFrame, root: Path) -> None:
    for day, part in frame.groupby(frame["hour"].dt.strftime("%Y-%m-%d")):
        folder = root / f"dt={day}"
        folder.mkdir(parents=True)
        part.to_parquet(folder / "part-00000.parquet", index=False)


def test_main_reads_partitions_and_writes_the_layout(tmp_path: Path) -> None:
    write_partitions(curated(), tmp_path / "in")
    rc = main(["--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "out"),
               "--prediction-length", str(PL), "--context-length", str(CTX), "--num-windows", str(K)])
    assert rc == 0
    out = tmp_path / "out"
    train = [json.loads(line) for line in (out / "train" / "train.json").read_text().splitlines()]
    actuals = [json.loads(line) for line in (out / "evaluation" / "actuals.jsonl").read_text().splitlines()]
    windows = (out / "evaluation" / "windows.jsonl").read_text().splitlines()
    meta = json.loads((out / "metadata" / "metadata.json").read_text())
    assert len(train) == 3 and len(windows) == len(actuals) == 9 and meta["num_windows"] == K
    assert (out / "test" / "test.json").is_file()
    assert all(isinstance(v, float) or v == "NaN" for v in train[2]["target"])
    assert not any(isinstance(v, float) and math.isnan(v) for a in actuals for v in a["target"])

    # Only one pollutant kept; no input at all → non-zero exit with the reason.
    assert main(["--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "o2"), "--pollutants", "ozone",
                 "--prediction-length", str(PL), "--context-length", str(CTX), "--num-windows", str(K)]) == 0
    assert json.loads((tmp_path / "o2" / "metadata" / "metadata.json").read_text())["cardinality"] == [1, 1]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--input-dir", str(empty), "--output-dir", str(tmp_path / "o3")]) == 2
    assert main(["--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "o4")]) == 2  # defaults: too short

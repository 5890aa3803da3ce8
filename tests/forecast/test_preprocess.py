"""Preprocess: curated hourly rows → DeepAR channels, windows never trained on, skipped series."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from processing.preprocess import PreprocessError, build_dataset, main, normalise_hourly

PL, CTX, K, V = 4, 6, 3, 2


def rows(thing: str, pollutant: str, start: str, hours: int, drop: tuple[int, ...] = (), base: float = 10.0) -> pd.DataFrame:
    hour = pd.date_range(start, periods=hours, freq="h", tz="UTC")
    frame = pd.DataFrame({"thing_name": thing, "pollutant": pollutant, "hour": hour,
                          "mean": base + np.arange(hours, dtype=float), "count": 6,
                          "min": 0.0, "max": 99.0})
    return frame.drop(index=list(drop)).reset_index(drop=True)


def curated() -> pd.DataFrame:
    return pd.concat(
        [
            rows("sensor-b", "pm2_5", "2021-01-01 00:00", 48, drop=(3, 4, 38)),  # gaps, one inside the windows
            rows("sensor-a", "pm2_5", "2021-01-01 02:00", 46),
            rows("sensor-a", "ozone", "2021-01-01 00:00", 48, base=100.0),
            rows("sensor-c", "ozone", "2021-01-02 10:00", 6),  # too short
        ],
        ignore_index=True,
    )


def test_series_cats_gaps_and_windows() -> None:
    data = build_dataset(normalise_hourly(curated()), PL, CTX, K, num_validation_windows=V)
    meta = data.metadata
    assert meta["cat_maps"] == {"pollutant": {"ozone": 0, "pm2_5": 1}, "thing_name": {"sensor-a": 0, "sensor-b": 1}}
    assert meta["cardinality"] == [2, 2]
    assert [(s["thing_name"], s["pollutant"], s["cat"]) for s in meta["series"]] == [
        ("sensor-a", "ozone", [0, 0]), ("sensor-a", "pm2_5", [1, 0]), ("sensor-b", "pm2_5", [1, 1])]
    # One skipped, with a reason that says why.
    assert [(s["thing_name"], s["pollutant"]) for s in meta["skipped"]] == [("sensor-c", "ozone")]
    assert "too short" in meta["skipped"][0]["reason"] and "14 hours" in meta["skipped"][0]["reason"]
    # Missing hours are "NaN", never dropped: sensor-b keeps its hourly slots.
    b_train = data.train[2]
    assert b_train["start"] == "2021-01-01 00:00:00" and len(b_train["target"]) == 48 - (K + V) * PL
    assert b_train["target"][3] == "NaN" and b_train["target"][4] == "NaN" and b_train["target"][5] == 15.0
    # sensor-a/pm2_5 starts at its first reading and runs to the common end.
    assert data.train[1]["start"] == "2021-01-01 02:00:00" and len(data.train[1]["target"]) == 46 - (K + V) * PL
    assert meta["end"] == "2021-01-02 23:00:00" and meta["first_window_start"] == "2021-01-02 12:00:00"


def test_three_disjoint_periods_in_order() -> None:
    data = build_dataset(normalise_hourly(curated()), PL, CTX, K, num_validation_windows=V)
    periods = data.metadata["periods"]
    assert periods["validation"] == {"start": "2021-01-02 04:00:00", "end": "2021-01-02 11:00:00", "hours": V * PL}
    assert periods["evaluation"] == {"start": "2021-01-02 12:00:00", "end": "2021-01-02 23:00:00", "hours": K * PL}
    assert periods["train"]["start"] == "2021-01-01 00:00:00" and periods["train"]["end"] == "2021-01-02 03:00:00"
    assert len(data.windows) == len(data.actuals) == 3 * K
    assert len(data.validation_windows) == len(data.validation_actuals) == len(data.test) == 3 * V
    for i, (train, full) in enumerate(zip(data.train, data.test[V - 1::V], strict=True)):
        train_end = pd.Timestamp(train["start"]) + pd.Timedelta(hours=len(train["target"]))
        assert train_end == pd.Timestamp(periods["validation"]["start"])  # training stops where validation starts
        assert full["target"][: len(train["target"])] == train["target"] and train["cat"] == full["cat"]
        # DeepAR's test channel (tuning's objective) ends each series at the end of a validation window:
        # its scored last prediction_length points are validation hours, never evaluation hours
        ends = [pd.Timestamp(t["start"]) + pd.Timedelta(hours=len(t["target"]) - 1) for t in data.test[i * V:(i + 1) * V]]
        assert all(pd.Timestamp(periods["validation"]["start"]) <= e <= pd.Timestamp(periods["validation"]["end"])
                   for e in ends)
        mine = [a for a in data.actuals if a["series"] == i]
        assert [a["window"] for a in mine] == list(range(K))
        for k, actual in enumerate(mine):
            assert pd.Timestamp(actual["start"]) == pd.Timestamp(periods["evaluation"]["start"]) + pd.Timedelta(
                hours=k * PL)
            assert len(actual["target"]) == PL
    # windows.jsonl lines are DeepAR instances: the history up to the window start, with cat.
    first = data.windows[0]
    assert set(first) == {"start", "target", "cat"} and len(first["target"]) == len(data.train[0]["target"]) + V * PL
    # sensor-b's missing hour 38 falls inside its evaluation windows: a NaN actual, to be masked in scoring.
    b_actuals = [a for a in data.actuals if a["series"] == 2]
    assert sum(v == "NaN" for a in b_actuals for v in a["target"]) == 1


def test_no_evaluation_hour_is_used_for_any_choice() -> None:
    """Whatever the evaluation hours hold, nothing a choice is made from changes."""
    frame = normalise_hourly(pd.concat([rows("s", "pm2_5", "2021-01-01", 24 * 30, base=5.0),
                                        rows("t", "pm2_5", "2021-01-01", 24 * 30, base=9.0)]))
    periods = build_dataset(frame, 24, 0, 3, num_validation_windows=3).metadata["periods"]
    evaluation_hours = frame["hour"] >= pd.Timestamp(periods["evaluation"]["start"])
    wrecked = frame.copy()
    wrecked.loc[evaluation_hours, "mean"] = -1e6 * np.arange(evaluation_hours.sum())  # negative: another likelihood
    a = build_dataset(frame, 24, 0, 3, num_validation_windows=3)
    b = build_dataset(wrecked, 24, 0, 3, num_validation_windows=3)
    assert a.hyperparameters == b.hyperparameters  # starting values and tuning ranges
    assert a.metadata["profile"] == b.metadata["profile"]
    assert (a.train, a.test, a.validation_windows, a.validation_actuals) == \
        (b.train, b.test, b.validation_windows, b.validation_actuals)
    assert a.actuals != b.actuals  # the evaluation windows did change
    assert a.hyperparameters["start"]["likelihood"] == "negative-binomial"


def test_starting_values_from_the_data() -> None:
    hours = pd.date_range("2024-01-01", periods=24 * 7 * 6, freq="h")
    weekly = 100 + 80 * (hours.dayofweek >= 5) + 10 * np.sin(hours.hour / 24 * 2 * np.pi)
    temps = 15 + 5 * np.sin(hours.hour / 24 * 2 * np.pi) - 20  # continuous readings, negative
    frame = pd.concat([pd.DataFrame({"thing_name": "a", "pollutant": "visits", "hour": hours, "mean": np.round(weekly)}),
                       pd.DataFrame({"thing_name": "b", "pollutant": "temperature", "hour": hours, "mean": temps})])
    counts = build_dataset(normalise_hourly(frame[frame["pollutant"] == "visits"]), 24, 0, 7)
    assert counts.metadata["profile"]["dominant_season"] == 168
    assert counts.hyperparameters["start"]["context_length"] == "168"
    assert counts.hyperparameters["start"]["likelihood"] == "negative-binomial"
    readings = build_dataset(normalise_hourly(frame[frame["pollutant"] == "temperature"]), 24, 0, 7)
    assert readings.hyperparameters["start"]["likelihood"] == "student-T"
    assert readings.metadata["profile"]["dominant_season"] == 24
    assert readings.hyperparameters["start"]["context_length"] == "72"
    # the ranges are centred on the start (geometric centre for Logarithmic), so one trial trains the start
    from infra.local.sagemaker.tuning import centre, parameter_space

    ranges = counts.hyperparameters["ranges"]
    space = parameter_space({"IntegerParameterRanges": [{"Name": k, **v} for k, v in ranges.items()
                                                        if k != "learning_rate" and k != "dropout_rate"],
                             "ContinuousParameterRanges": [{"Name": k, **v} for k, v in ranges.items()
                                                           if k in ("learning_rate", "dropout_rate")]})
    assert {p["name"]: str(centre(p)) for p in space} == {k: v for k, v in counts.hyperparameters["start"].items()
                                                          if k != "likelihood"}
    # explicit starting values win
    fixed = build_dataset(normalise_hourly(frame[frame["pollutant"] == "visits"]), 24, 48, 7, likelihood="gaussian",
                          start={"epochs": 3})
    assert (fixed.hyperparameters["start"]["context_length"], fixed.hyperparameters["start"]["likelihood"],
            fixed.hyperparameters["start"]["epochs"]) == ("48", "gaussian", "3")


def test_starting_epochs_from_the_training_history() -> None:
    """Half a year of training history or more (median over series) starts from 30 epochs, less from
    15 (bench/epochs.py); an explicit value wins, 0 means "from the data", and a negative one is a
    clear error."""
    from processing.data_profile import LONG_HISTORY_HOURS

    def series(thing: str, hours: int) -> pd.DataFrame:
        index = pd.date_range("2024-01-01", periods=hours, freq="h")
        return pd.DataFrame({"thing_name": thing, "pollutant": "pm2_5", "hour": index,
                             "mean": 20 + 5 * np.sin(index.hour / 24 * 2 * np.pi)})

    held_back = 14 * 24  # the validation and evaluation weeks
    short = build_dataset(normalise_hourly(series("a", LONG_HISTORY_HOURS - 1 + held_back)), 24, 0, 7)
    long = build_dataset(normalise_hourly(series("a", LONG_HISTORY_HOURS + held_back)), 24, 0, 7)
    assert (short.hyperparameters["start"]["epochs"], long.hyperparameters["start"]["epochs"]) == ("15", "30")
    assert long.metadata["profile"]["training_hours_median"] == LONG_HISTORY_HOURS
    # the median series decides: two long sensors and one new one train as a long history
    fleet = pd.concat([series("a", LONG_HISTORY_HOURS + held_back), series("b", LONG_HISTORY_HOURS + held_back),
                       series("c", 8 * 7 * 24).assign(hour=lambda f: f["hour"] + pd.Timedelta(weeks=20))])
    assert build_dataset(normalise_hourly(fleet), 24, 0, 7).hyperparameters["start"]["epochs"] == "30"
    assert build_dataset(normalise_hourly(fleet), 24, 0, 7, start={"epochs": 0}).hyperparameters["start"]["epochs"] \
        == "30"
    assert build_dataset(normalise_hourly(fleet), 24, 0, 7, start={"epochs": 4}).hyperparameters["start"]["epochs"] \
        == "4"
    with pytest.raises(PreprocessError, match="epochs -1: must be >= 1"):
        build_dataset(normalise_hourly(fleet), 24, 0, 7, start={"epochs": -1})


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
        build_dataset(df, PL, CTX, K, num_validation_windows=V)
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
               "--prediction-length", str(PL), "--context-length", str(CTX), "--num-windows", str(K),
               "--validation-windows", str(V)])
    assert rc == 0
    out = tmp_path / "out"
    train = [json.loads(line) for line in (out / "train" / "train.json").read_text().splitlines()]
    actuals = [json.loads(line) for line in (out / "evaluation" / "actuals.jsonl").read_text().splitlines()]
    windows = (out / "evaluation" / "windows.jsonl").read_text().splitlines()
    meta = json.loads((out / "metadata" / "metadata.json").read_text())
    assert len(train) == 3 and len(windows) == len(actuals) == 9 and meta["num_windows"] == K
    assert len((out / "test" / "test.json").read_text().splitlines()) == 3 * V
    assert len((out / "validation" / "actuals.jsonl").read_text().splitlines()) == 3 * V
    hyper = json.loads((out / "metadata" / "hyperparameters.json").read_text())
    assert hyper["start"]["context_length"] == str(CTX) and set(hyper["ranges"]) == {
        "context_length", "epochs", "learning_rate", "num_cells", "num_layers", "mini_batch_size", "dropout_rate",
        "embedding_dimension"}
    assert all(isinstance(v, float) or v == "NaN" for v in train[2]["target"])
    assert not any(isinstance(v, float) and math.isnan(v) for a in actuals for v in a["target"])

    # Only one pollutant kept; no input at all → non-zero exit with the reason.
    assert main(["--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "o2"), "--pollutants", "ozone",
                 "--prediction-length", str(PL), "--context-length", str(CTX), "--num-windows", str(K),
                 "--validation-windows", str(V)]) == 0
    assert json.loads((tmp_path / "o2" / "metadata" / "metadata.json").read_text())["cardinality"] == [1, 1]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["--input-dir", str(empty), "--output-dir", str(tmp_path / "o3")]) == 2
    assert main(["--input-dir", str(tmp_path / "in"), "--output-dir", str(tmp_path / "o4")]) == 2  # defaults: too short

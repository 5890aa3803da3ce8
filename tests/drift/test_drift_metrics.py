"""Drift metrics: capture parsing, series matching, wQL/MASE, the windowed drift rule, input drift."""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pandas as pd
import pytest

from evaluation.drift import (
    Baseline,
    baseline_from_evaluation,
    capture_origin,
    decide,
    hourly_errors,
    hourly_matrix,
    identify_series,
    ks_statistic,
    parse_capture_records,
    population_stability_index,
    score_forecasts,
)
from tests.drift.replay import T0, ProfileModel, Scenario, hourly_frame

ARN = "arn:aws:sagemaker:us-east-1:000000000000:model-package/aircast-deepar/1"
CONFIG = "aircast-forecast-v1-0a1b2c3d4e"
#: where SageMaker writes the records of the config's fleet: <destination>/<endpoint>/<variant>/YYYY/MM/DD/HH/
KEY = f"{CONFIG}/aircast-forecast/AllTraffic/2026/06/01/00/00-00-1a2b.jsonl"
PACKAGES = {CONFIG: ARN}


def _record(instances: list, predictions: list, when: str = "2026-06-01T00:00:00Z", b64: bool = False) -> tuple:
    """A Data Capture record exactly as AWS writes it (no model in it), with the key it lies under."""
    def part(obj: dict, mode: str) -> dict:
        data = json.dumps(obj)
        if b64:
            return {"observedContentType": "application/json", "mode": mode,
                    "data": base64.b64encode(data.encode()).decode(), "encoding": "BASE64"}
        return {"observedContentType": "application/json", "mode": mode, "data": data, "encoding": "JSON"}
    return KEY, {"captureData": {"endpointInput": part({"instances": instances}, "INPUT"),
                                 "endpointOutput": part({"predictions": predictions}, "OUTPUT")},
                 "eventMetadata": {"eventId": "e1", "inferenceTime": when}, "eventVersion": "0"}


def test_capture_records_parse_json_and_base64_and_report_unusable_ones() -> None:
    inst = {"start": "2026-01-01 00:00:00", "target": [1, "NaN", 3], "cat": [0, 1]}
    pred = {"mean": [4, 5], "quantiles": {"0.1": [3, 4], "0.5": [4, 5], "0.9": [5, 6]}}
    forecasts, problems = parse_capture_records([
        _record([inst], [pred]), _record([inst], [pred], b64=True),
        _record([inst], [{"mean": [1, 2]}]),  # no quantiles
        _record([inst, inst], [pred]),  # count mismatch
        (KEY, {"captureData": {"endpointInput": {"data": "not json"}}}),
    ], PACKAGES)
    assert len(forecasts) == 2 and len(problems) == 3
    f = forecasts[0]
    assert f.forecast_start == pd.Timestamp("2026-01-01 03:00:00") and f.horizon == 2
    assert math.isnan(f.history[1]) and f.quantiles[0.9] == (5.0, 6.0) and f.model_package_arn == ARN
    assert "no quantiles" in problems[0] and "2 instances but 1 predictions" in problems[1]


def test_records_are_attributed_by_the_endpoint_config_that_captured_them() -> None:
    """Finding 3: AWS's records carry eventId/inferenceTime (inferenceId) only; the key's endpoint config,
    and the package it serves, say which model answered."""
    inst = {"start": "2026-01-01 00:00:00", "target": [1, 2, 3]}
    pred = {"quantiles": {"0.5": [4, 5]}}
    key, record = _record([inst], [pred])
    assert set(record["eventMetadata"]) == {"eventId", "inferenceTime"}
    assert capture_origin(key) == (CONFIG, "aircast-forecast", "AllTraffic")
    assert capture_origin(f"datacapture/aircast-forecast/{key}") == (CONFIG, "aircast-forecast", "AllTraffic")
    assert capture_origin("AllTraffic/2026/06/01/00/x.jsonl") == (None, None, "AllTraffic")  # one shared destination
    assert capture_origin("not/a/capture/key.jsonl") == (None, None, None)
    other = "aircast-forecast-v2-ffffffffff"
    (mine,), _ = parse_capture_records([(key, record)], PACKAGES)
    (theirs,), _ = parse_capture_records([(key.replace(CONFIG, other), record)], PACKAGES)
    (nobody,), _ = parse_capture_records([("AllTraffic/2026/06/01/00/x.jsonl", record)], PACKAGES)
    assert (mine.model_package_arn, mine.endpoint_config) == (ARN, CONFIG)
    assert theirs.model_package_arn == f"endpoint-config/{other}"  # a config whose package is unknown
    assert nobody.model_package_arn == "unknown"


def test_baseline_from_evaluation_requires_the_evaluate_shape() -> None:
    assert baseline_from_evaluation({"forecast_metrics": {"mean_wQuantileLoss": {"value": 0.4},
                                                          "MASE": {"value": 0.9}}}) == Baseline(0.4, 0.9)
    with pytest.raises(ValueError, match="forecast_metrics.mean_wQuantileLoss"):
        baseline_from_evaluation({"metrics": {}})


def _forecasts_for(sc: Scenario) -> tuple[list, dict]:
    frame = hourly_frame(sc)
    model = ProfileModel(frame, T0 + pd.Timedelta(days=sc.train_days))
    series = hourly_matrix(frame)
    records = []
    issue = T0 + pd.Timedelta(days=sc.train_days)
    end = T0 + pd.Timedelta(days=sc.days - 1)
    while issue <= end:
        start = issue - pd.Timedelta(hours=48)
        instances, preds = [], []
        for thing in sc.things:
            s = series[(thing, "pm2_5")].reindex(pd.date_range(start, periods=48, freq="h"))
            instances.append({"start": str(start), "target": [float(v) for v in s]})
            preds.append(model.predict(thing, issue))
        records.append(_record(instances, preds))
        issue += pd.Timedelta(hours=sc.issue_every_h)
    forecasts, problems = parse_capture_records(records, PACKAGES)
    assert not problems
    return forecasts, series


def _eval_wql(sc: Scenario) -> float:
    """The model's wQL on the two days after training (before any shift): what Evaluate would report."""
    forecasts, series = _forecasts_for(sc)
    names = identify_series(forecasts, series)
    scores = score_forecasts(forecasts, names, series)
    early = scores[scores["forecast_start"] < T0 + pd.Timedelta(days=sc.train_days + 2)]
    return float(early["qloss"].sum() / early["abs_actual"].sum())


def test_series_are_identified_from_their_history() -> None:
    sc = Scenario()
    forecasts, series = _forecasts_for(sc)
    names = identify_series(forecasts, series)
    assert names[:2] == [("sensor-a", "pm2_5"), ("sensor-b", "pm2_5")]
    assert all(n is not None for n in names)
    # a history the lake never saw matches nothing
    other = parse_capture_records([_record([{"start": "2026-01-05 00:00:00", "target": [1.5] * 30}],
                                           [{"quantiles": {"0.5": [1.0]}}])], PACKAGES)[0]
    assert identify_series(other, series) == [None]


@pytest.mark.parametrize("shift, expect_drift", [(None, False), ("sensor-b", True)])
def test_drift_is_declared_only_when_error_stays_high(shift: str | None, expect_drift: bool) -> None:
    sc = Scenario(shift_thing=shift)
    baseline = {ARN: Baseline(_eval_wql(Scenario()))}
    forecasts, series = _forecasts_for(sc)
    names = identify_series(forecasts, series)
    scores = score_forecasts(forecasts, names, series)
    decision = decide(hourly_errors(forecasts, names, series), scores, baseline, ARN, error_ratio=1.5,
                      window_hours=24)
    assert decision.drift is expect_drift, decision.reason
    by_thing = {s.thing_name: s for s in decision.series}
    assert not by_thing["sensor-a"].drifted  # the quiet sensor never drifts
    if expect_drift:
        assert by_thing["sensor-b"].drifted and by_thing["sensor-b"].ratio > 1.5
        declared = pd.Timestamp(decision.declared_at)
        # declared within the configured window after the shift began (hours of data time)
        assert sc.shift_hour < declared <= sc.shift_hour + pd.Timedelta(hours=24)
        assert pd.Timestamp(by_thing["sensor-b"].degraded_since) >= sc.shift_hour - pd.Timedelta(hours=6)


def test_a_short_spike_is_not_drift() -> None:
    sc = Scenario()
    frame = hourly_frame(sc)
    spike = (frame["thing_name"] == "sensor-a") & (frame["hour"] >= T0 + pd.Timedelta(days=16)) & \
            (frame["hour"] < T0 + pd.Timedelta(days=16, hours=6))
    frame.loc[spike, "mean"] *= 4
    series = hourly_matrix(frame)
    forecasts, _ = _forecasts_for(sc)
    names = identify_series(forecasts, hourly_matrix(hourly_frame(sc)))
    scores = score_forecasts(forecasts, names, series)
    decision = decide(hourly_errors(forecasts, names, series), scores, {ARN: Baseline(_eval_wql(sc))}, ARN,
                      error_ratio=1.5, window_hours=24)
    assert not decision.drift, decision.reason


def test_decide_explains_when_it_cannot_judge() -> None:
    from evaluation.drift import detect_drift

    empty = score_forecasts([], [], {})
    hourly = hourly_errors([], [], {})
    assert "no served forecasts" in decide(hourly, empty, {}, None, 1.5, 24).reason
    assert "no evaluation baseline" in decide(hourly, empty, {}, ARN, 1.5, 24).reason
    assert "no served forecast of this model has actuals" in decide(hourly, empty, {ARN: Baseline(0.2)}, ARN,
                                                                    1.5, 24).reason
    with pytest.raises(ValueError, match="positive"):
        detect_drift(hourly, empty, {ARN: Baseline(0.2)}, ARN, 0, 24)


def test_input_drift_statistics() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(50, 10, 2000)
    same = rng.normal(50, 10, 500)
    shifted = rng.normal(90, 10, 500)
    assert population_stability_index(ref, same) < 0.1
    assert population_stability_index(ref, shifted) > 1.0
    assert ks_statistic(ref, same) < 0.1 and ks_statistic(ref, shifted) > 0.8
    assert population_stability_index(np.full(50, 3.0), np.full(20, 3.0)) < 0.01
    with pytest.raises(ValueError):
        population_stability_index(np.array([np.nan]), same)

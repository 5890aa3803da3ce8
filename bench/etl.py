"""Benchmark: the Glue ETL job on local Spark against DuckDB on the same raw JSON.

``python -m bench.etl --rows N`` writes N raw records in the Firehose layout
(aircast payloads plus seed-article payloads, 0.5 % redeliveries), runs the ETL
job (processing/glue_etl.py) on local Spark, then DuckDB reading the same raw
objects and writing the same hourly parquet (canonical names, UTC timestamps,
dedupe, unpivot, hourly mean/count/min/max, partitioned by day). Session start
is timed apart from the job. The last stdout line is one JSON object:
``rows, spark_s, spark_startup_s, duckdb_s, rows_per_s, ratio_vs_duckdb, peak_rss_mib``
(ratio = duckdb_s / spark_s, higher is better for Spark). A bar chart goes to
``bench/out/etl.png``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import resource
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"
T0 = dt.datetime(2021, 2, 1, tzinfo=dt.UTC)
OBJECT_BYTES = 5 * 1024 * 1024  # the Firehose buffer size hint


def log(msg: str) -> None:
    print(f"[bench.etl] {msg}", file=sys.stderr, flush=True)


def generate(raw_root: Path, rows: int, things: int = 20, seed: int = 7) -> int:
    """Write ``rows`` records (about 0.5 % redelivered copies) as Firehose objects; return object count."""
    rng = random.Random(seed)
    buf: list[str] = []
    size = objects = 0
    seq = [0] * things
    made = 0

    def flush(at: dt.datetime) -> None:
        nonlocal buf, size, objects
        key = f"{at:%Y/%m/%d/%H}/aircast-telemetry-1-{at:%Y-%m-%d-%H-%M-%S}-{uuid.UUID(int=rng.getrandbits(128))}"
        path = raw_root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(buf))
        objects += 1
        buf, size = [], 0

    minute = 0
    last = T0
    while made < rows:
        at = T0 + dt.timedelta(minutes=minute)
        for i in range(things):
            if made >= rows:
                break
            received = int(at.timestamp() * 1000) + rng.randrange(50, 900)
            if i % 5 == 0:  # the seed article's device: its spellings and JS ISO timestamps
                rec: dict[str, Any] = {
                    "ozone": rng.randrange(100), "particullate_matter": rng.randrange(100),
                    "carbon_monoxide": rng.randrange(100), "sulfure_dioxide": rng.randrange(100),
                    "nitrogen_dioxide": rng.randrange(100), "longitude": 10.25, "latitude": 56.2,
                    "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                }
            else:
                seq[i] += 1
                rec = {"device_id": f"thing-{i:03d}", "seq": seq[i], "timestamp": int(at.timestamp()),
                       "pm2_5": round(rng.uniform(2, 300), 1), "pm10": round(rng.uniform(5, 400), 1),
                       "temperature": round(rng.uniform(-10, 35), 1), "humidity": round(rng.uniform(10, 95), 1),
                       "pressure": round(rng.uniform(990, 1040), 1)}
            rec["thing_name"] = f"thing-{i:03d}"
            rec["received_at"] = received
            line = json.dumps(rec) + "\n"
            copies = 2 if rng.random() < 0.005 and made + 1 < rows else 1  # a redelivery
            for _ in range(copies):
                buf.append(line)
                size += len(line)
                made += 1
            if size >= OBJECT_BYTES:
                flush(at)
            last = at
        minute += 1
    if buf:
        flush(last)
    return objects


DUCKDB_HOURLY = """
COPY (
  WITH raw AS (
    SELECT * FROM read_json('{glob}', format = 'newline_delimited', columns = {{
      thing_name: 'VARCHAR', seq: 'BIGINT', "timestamp": 'VARCHAR', received_at: 'BIGINT',
      pm2_5: 'DOUBLE', pm10: 'DOUBLE', particulate_matter: 'DOUBLE', particullate_matter: 'DOUBLE',
      ozone: 'DOUBLE', carbon_monoxide: 'DOUBLE', sulfur_dioxide: 'DOUBLE', sulfure_dioxide: 'DOUBLE',
      nitrogen_dioxide: 'DOUBLE'}})
  ), typed AS (
    SELECT thing_name, seq, received_at,
      CASE WHEN regexp_full_match("timestamp", '-?[0-9]+(\\.[0-9]+)?')
           THEN to_timestamp(CASE WHEN abs("timestamp"::DOUBLE) >= 1e11 THEN "timestamp"::DOUBLE / 1000
                                  ELSE "timestamp"::DOUBLE END)
           ELSE "timestamp"::TIMESTAMPTZ END AS ts,
      pm2_5, pm10, coalesce(particulate_matter, particullate_matter) AS particulate_matter, ozone,
      carbon_monoxide, coalesce(sulfur_dioxide, sulfure_dioxide) AS sulfur_dioxide, nitrogen_dioxide
    FROM raw
  ), readings AS (
    SELECT * FROM typed
    QUALIFY row_number() OVER (PARTITION BY thing_name, coalesce('seq:' || seq, 'ts:' || epoch_us(ts))
                               ORDER BY received_at) = 1
  ), long AS (
    UNPIVOT readings ON pm2_5, pm10, particulate_matter, ozone, carbon_monoxide, sulfur_dioxide, nitrogen_dioxide
    INTO NAME pollutant VALUE value
  )
  SELECT thing_name, pollutant, date_trunc('hour', ts) AS hour, avg(value) AS mean, count(value) AS count,
         min(value) AS min, max(value) AS max, strftime(ts, '%Y-%m-%d') AS dt
  FROM long GROUP BY thing_name, pollutant, hour, dt
) TO '{out}' (FORMAT parquet, PARTITION_BY (dt), OVERWRITE_OR_IGNORE)
"""


def run_duckdb(raw_root: Path, out: Path) -> tuple[float, int]:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    started = time.perf_counter()
    con.execute(DUCKDB_HOURLY.format(glob=f"{raw_root}/*/*/*/*/*", out=out))
    elapsed = time.perf_counter() - started
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}/*/*.parquet')").fetchall()[0][0]
    return elapsed, rows


def vm_hwm_mib(pid: int) -> float:
    """Peak resident set of a process (Linux VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def plot(result: dict[str, Any]) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    OUT.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3))
    names = ["Spark startup", "Spark ETL job", "DuckDB"]
    values = [result["spark_startup_s"], result["spark_s"], result["duckdb_s"]]
    ax.barh(names, values, color=["#bbbbbb", "#e07b39", "#3973e0"])
    ax.set_xlabel("seconds")
    ax.set_title(f"raw JSON → hourly parquet, {result['rows']:,} rows (ratio {result['ratio_vs_duckdb']:.3f})")
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.1f}s", va="center")
    fig.tight_layout()
    path = OUT / "etl.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="raw records to generate (default 100000)")
    parser.add_argument("--keep", action="store_true", help="keep the generated lake (its folder is printed)")
    args = parser.parse_args(argv)
    if args.rows < 1:
        parser.error("--rows must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="aircast-bench-etl-"))
    try:
        raw_root = work / "s3" / "aircast-lake" / "raw" / "telemetry"
        t = time.perf_counter()
        objects = generate(raw_root, args.rows)
        log(f"generated {args.rows:,} records in {objects} objects in {time.perf_counter() - t:.1f}s")

        t = time.perf_counter()
        from infra.local.glue.session import get_spark

        spark = get_spark(app_name="aircast-bench-etl")
        startup = time.perf_counter() - t
        log(f"spark session started in {startup:.1f}s")

        from processing.glue_etl import JobConfig, run_job

        config = JobConfig(job_name="bench", source_uri=raw_root.as_uri() + "/",
                           target_uri=(work / "s3" / "aircast-lake" / "curated").as_uri() + "/")
        t = time.perf_counter()
        counts = run_job(spark, config, log=log)
        spark_s = time.perf_counter() - t
        log(f"spark job: {spark_s:.2f}s {json.dumps({k: counts[k] for k in ('read', 'written', 'duplicate', 'quarantined', 'hourly_rows')})}")
        jvm_peak = vm_hwm_mib(spark.sparkContext._gateway.proc.pid)
        spark.stop()

        duck_s, duck_rows = run_duckdb(raw_root, work / "duckdb-hourly")
        log(f"duckdb: {duck_s:.2f}s, {duck_rows} hourly rows")
        if duck_rows != counts["hourly_rows"]:
            log(f"WARNING: hourly rows differ: spark {counts['hourly_rows']} vs duckdb {duck_rows}")

        py_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result = {
            "rows": args.rows,
            "spark_s": round(spark_s, 3),
            "spark_startup_s": round(startup, 3),
            "duckdb_s": round(duck_s, 3),
            "rows_per_s": round(args.rows / spark_s, 1),
            "ratio_vs_duckdb": round(duck_s / spark_s, 4),
            "peak_rss_mib": round(jvm_peak + py_peak, 1),
        }
        path = plot(result)
        if path:
            log(f"plot: {path}")
        if args.keep:
            log(f"lake kept in {work}")
        print(json.dumps(result))
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

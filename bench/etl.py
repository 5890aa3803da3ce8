"""Benchmark: the Glue ETL job on local Spark against DuckDB on the same raw JSON.

``python -m bench.etl --rows N`` writes N raw records in the Firehose layout
(aircast payloads plus seed-article payloads, 0.5 % redeliveries), runs the ETL
job (processing/glue_etl.py) on local Spark, then DuckDB reading the same raw
objects and writing the same hourly parquet (canonical names, UTC timestamps,
dedupe, unpivot, hourly mean/count/min/max, partitioned by day). Session start
is timed apart from the job. The last stdout line is one JSON object:
``rows, spark_s, spark_startup_s, duckdb_s, rows_per_s, ratio_vs_duckdb, peak_rss_mib``
(ratio = duckdb_s / spark_s, higher is better for Spark), then ``floor_s`` and
``floor_ratio_vs_duckdb``: the same raw JSON to the same hourly parquet by the
simplest Spark job that can produce it (explicit schema, ``dropDuplicates``,
``stack()`` unpivot, hourly aggregates; no validation, quarantine, readings table
or bookmarks), in a fresh JVM like the ETL's, as the floor any Spark job meets on
this machine (``--no-floor`` skips it). A bar chart goes to ``bench/out/etl.png``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench import pyplot

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


def run_floor(raw_root: Path, out: Path) -> tuple[float, int]:
    """The simplest Spark job from raw JSON to the hourly parquet; (seconds after session start, hourly rows)."""
    from pyspark.sql import functions as F

    from infra.local.glue.session import get_spark
    from processing.glue_etl import (
        ALIASES,
        DEDUPE_KEY_SQL,
        POLLUTANTS,
        TYPED_SCHEMA,
        hourly_aggregates,
        list_objects,
        parse_epoch_or_iso,
    )

    spark = get_spark(app_name="aircast-bench-etl-floor")  # UTC session zone, as the job's
    paths = list(list_objects(spark, raw_root.as_uri() + "/").values())
    canonical = {v: k for k, v in ALIASES.items()}
    started = time.perf_counter()
    raw = spark.read.schema(TYPED_SCHEMA).json(paths)
    readings = raw.select(
        "thing_name", "seq", "received_at", parse_epoch_or_iso(F.col("timestamp")).alias("timestamp"),
        *[F.coalesce(p, canonical[p]).alias(p) if p in canonical else F.col(p) for p in POLLUTANTS],
    ).withColumn("dkey", F.expr(DEDUPE_KEY_SQL)).dropDuplicates(["thing_name", "dkey"])
    hourly = hourly_aggregates(readings.withColumn("dt", F.col("timestamp").cast("date").cast("string")))
    hourly.write.mode("overwrite").partitionBy("dt").parquet(out.as_uri())
    elapsed = time.perf_counter() - started
    rows = spark.read.parquet(out.as_uri()).count()
    spark.stop()
    return elapsed, rows


def vm_hwm_mib(pid: int) -> float:
    """Peak resident set of a process (Linux VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def plot(result: dict[str, Any]) -> Path:
    plt = pyplot()
    OUT.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 3))
    bars = [("Spark startup", result["spark_startup_s"], "#bbbbbb"), ("Spark ETL job", result["spark_s"], "#e07b39"),
            ("simplest Spark job", result.get("floor_s"), "#f0b48a"), ("DuckDB", result["duckdb_s"], "#3973e0")]
    names, values, colors = zip(*(bar for bar in bars if bar[1] is not None), strict=True)
    ax.barh(names, values, color=colors)
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
    parser.add_argument("--no-floor", action="store_true", help="skip the simplest-Spark-job floor measurement")
    parser.add_argument("--floor-only", metavar="RAW_DIR", help=argparse.SUPPRESS)  # the floor's own process
    args = parser.parse_args(argv)
    if args.floor_only:
        out = Path(tempfile.mkdtemp(prefix="aircast-bench-etl-floor-"))
        try:
            floor_s, floor_rows = run_floor(Path(args.floor_only), out / "hourly")
        finally:
            shutil.rmtree(out, ignore_errors=True)
        print(json.dumps({"floor_s": round(floor_s, 3), "floor_hourly_rows": floor_rows}))
        return 0
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

        floor: dict[str, Any] = {}
        if not args.no_floor:
            # A fresh process, so its JVM starts as cold as the ETL's did.
            done = subprocess.run([sys.executable, "-m", "bench.etl", "--floor-only", str(raw_root)],
                                  capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
            if done.returncode != 0:
                raise SystemExit(f"the floor job failed:\n{done.stderr[-2000:]}")
            floor = json.loads(done.stdout.strip().splitlines()[-1])
            log(f"floor (simplest Spark job): {floor['floor_s']:.2f}s, {floor['floor_hourly_rows']} hourly rows")
            if floor["floor_hourly_rows"] != duck_rows:
                log(f"WARNING: hourly rows differ: floor {floor['floor_hourly_rows']} vs duckdb {duck_rows}")

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
        if floor:
            result["floor_s"] = floor["floor_s"]
            result["floor_ratio_vs_duckdb"] = round(duck_s / floor["floor_s"], 4)
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

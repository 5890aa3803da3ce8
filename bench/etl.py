"""Benchmark: the Glue ETL job on local Spark against the simplest Spark job and DuckDB, cold and warm.

``python -m bench.etl --rows N`` writes N raw records in the Firehose layout (aircast payloads
plus seed-article payloads, 0.5 % redeliveries) and turns them into the same hourly parquet
(canonical names, UTC timestamps, dedupe on the job's key, unpivot, hourly mean/count/min/max,
partitioned by day) three ways:

- **the ETL job** (processing/glue_etl.py: validation, quarantine, readings table, bookmarks);
- **the floor**: the simplest Spark job that produces the same hourly rows (explicit schema,
  ``dropDuplicates`` on the job's key, ``stack()`` unpivot, hourly aggregates; nothing else), the
  speed any Spark job has on this machine;
- **the two-table floor**: the simplest Spark job that writes the job's two tables of readings,
  the deduplicated ``readings`` (every column the job writes) and ``hourly`` read back from them:
  the floor plus the parquet write of every reading, which the job cannot skip;
- **DuckDB** on the same raw JSON, for reference.

Spark runs twice: **cold** (the job and each floor in a fresh JVM, as ``aircast lake etl``
with the stack down) and **warm** (one JVM, as the Glue service holds it: each job runs once to
warm up, then is timed; the best of ``--repeat`` timed runs). Session start is timed apart.
Each phase runs in its own process, so peak memory is measured apart for Spark (JVM + Python
driver) and DuckDB. The hourly rows of the job, both floors and DuckDB must be identical (every
row, means to 1e-9 relative), and the two-table floor must write as many readings as the job: the
bench exits 1 when they differ.

The last stdout line is one JSON object: ``rows``, ``spark_s`` / ``floor_s`` (cold),
``job_vs_floor_cold``, ``spark_warm_s`` / ``floor_warm_s``, ``job_vs_floor_warm``,
``floor_tables_s`` / ``floor_tables_warm_s`` and ``job_vs_floor_tables_cold`` / ``_warm``,
``spark_startup_s``, ``duckdb_s``, ``ratio_vs_duckdb`` (duckdb_s / spark_s), ``rows_per_s``,
``spark_peak_rss_mib``, ``duckdb_peak_rss_mib``, ``hourly_rows``, ``identical``.
A bar chart goes to ``bench/out/etl.png``.
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


#: the job's dedupe: (day, thing, seq), or (day, thing, timestamp) without a seq (processing/glue_etl.py)
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
    QUALIFY row_number() OVER (
      PARTITION BY strftime(ts, '%Y-%m-%d'), thing_name,
                   CASE WHEN seq IS NOT NULL THEN seq ELSE -1 - epoch_us(ts) END
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


def run_duckdb(raw_root: Path, out: Path) -> dict[str, Any]:
    """DuckDB from the raw JSON to the hourly parquet (its own process: its memory is its own)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    started = time.perf_counter()
    con.execute(DUCKDB_HOURLY.format(glob=f"{raw_root}/*/*/*/*/*", out=out))
    elapsed = time.perf_counter() - started
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}/*/*.parquet')").fetchall()[0][0]
    return {"duckdb_s": round(elapsed, 3), "duckdb_hourly_rows": rows, "peak_rss_mib": _self_peak_mib()}


def _raw_paths(spark: Any, raw_root: Path) -> list[str]:
    from processing.glue_etl import list_objects

    return list(list_objects(spark, raw_root.as_uri() + "/").values())


def _simplest_readings(spark: Any, paths: list[str], every_column: bool) -> Any:
    """The floors' readings: explicit schema, canonical names, UTC timestamps, ``dropDuplicates`` on the
    job's key; the pollutants only, or (``every_column``) every column the job's ``readings`` has."""
    from pyspark.sql import functions as F

    from processing.glue_etl import (
        ALIASES,
        DEDUPE_KEY_SQL,
        LAYOUT_KEY_RE,
        MEASURES,
        POLLUTANTS,
        TYPED_SCHEMA,
        parse_epoch_or_iso,
    )

    canonical = {v: k for k, v in ALIASES.items()}
    extra = [F.col("device_id"), F.timestamp_millis("received_at").alias("received_at"),
             F.regexp_extract(F.input_file_name(), LAYOUT_KEY_RE, 1).alias("source_object")] if every_column \
        else [F.col("received_at")]
    return (
        spark.read.schema(TYPED_SCHEMA).json(paths).select(
            "thing_name", "seq", parse_epoch_or_iso(F.col("timestamp")).alias("timestamp"), *extra,
            *[F.coalesce(m, canonical[m]).alias(m) if m in canonical else F.col(m)
              for m in (MEASURES if every_column else POLLUTANTS)],
        )
        .withColumn("dkey", F.expr(DEDUPE_KEY_SQL))
        .withColumn("dt", F.col("timestamp").cast("date").cast("string"))
        .dropDuplicates(["dt", "thing_name", "dkey"])
    )


def run_floor(spark: Any, raw_root: Path, out: Path) -> float:
    """The simplest Spark job from raw JSON to the hourly parquet; seconds (the session already started)."""
    from processing.glue_etl import hourly_aggregates

    paths = _raw_paths(spark, raw_root)
    started = time.perf_counter()
    readings = _simplest_readings(spark, paths, every_column=False)
    hourly_aggregates(readings).write.mode("overwrite").partitionBy("dt").parquet(out.as_uri())
    return time.perf_counter() - started


def run_floor_tables(spark: Any, raw_root: Path, out: Path) -> float:
    """The simplest Spark job to the job's readings and hourly tables; seconds (session started).

    The floor's parse and dedupe, with every column the job's ``readings`` has, written as parquet
    by day; ``hourly`` is then computed from the written readings (read back: parquet gives only
    the columns it needs) and written too.
    """
    from processing.glue_etl import READINGS_COLUMNS, hourly_aggregates

    paths = _raw_paths(spark, raw_root)
    readings_uri, hourly_uri = (out / "readings").as_uri(), (out / "hourly").as_uri()
    started = time.perf_counter()
    readings = _simplest_readings(spark, paths, every_column=True)
    readings.select(*READINGS_COLUMNS).write.mode("overwrite").partitionBy("dt").parquet(readings_uri)
    hourly_aggregates(spark.read.parquet(readings_uri)).write.mode("overwrite").partitionBy("dt").parquet(hourly_uri)
    return time.perf_counter() - started


def run_job(spark: Any, raw_root: Path, curated: Path) -> tuple[float, dict[str, Any]]:
    """The ETL job (fresh target, so nothing is bookmarked yet); (seconds, counts)."""
    from processing.glue_etl import JobConfig
    from processing.glue_etl import run_job as job

    config = JobConfig(job_name="bench", source_uri=raw_root.as_uri() + "/", target_uri=curated.as_uri() + "/")
    started = time.perf_counter()
    counts = job(spark, config, log=log)
    return time.perf_counter() - started, counts


def _self_peak_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def vm_hwm_mib(pid: int) -> float:
    """Peak resident set of a process (Linux VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def spark_phase(phase: str, raw_root: Path, work: Path, repeat: int) -> dict[str, Any]:
    """One Spark process: ``cold-job``, ``cold-floor``, ``cold-floor-tables`` (timed once in a fresh JVM) or ``warm``
    (each job once to warm up, then the best of ``repeat`` timed runs, in one JVM)."""
    from infra.local.glue.session import get_spark

    t = time.perf_counter()
    spark = get_spark(app_name=f"aircast-bench-etl-{phase}")
    out: dict[str, Any] = {"startup_s": round(time.perf_counter() - t, 3)}
    if phase == "cold-job":
        seconds, counts = run_job(spark, raw_root, work / "job")
        out.update(job_s=round(seconds, 3), counts={k: counts[k] for k in (
            "read", "written", "duplicate", "quarantined", "hourly_rows")})
    elif phase == "cold-floor":
        out["floor_s"] = round(run_floor(spark, raw_root, work / "floor"), 3)
    elif phase == "cold-floor-tables":
        out["floor_tables_s"] = round(run_floor_tables(spark, raw_root, work / "floor-tables"), 3)
    else:
        run_job(spark, raw_root, work / "warmup-job")
        run_floor(spark, raw_root, work / "warmup-floor")
        run_floor_tables(spark, raw_root, work / "warmup-floor-tables")
        jobs, floors, tables = [], [], []
        for n in range(repeat):
            jobs.append(run_job(spark, raw_root, work / f"job-{n}")[0])
            floors.append(run_floor(spark, raw_root, work / f"floor-{n}"))
            tables.append(run_floor_tables(spark, raw_root, work / f"floor-tables-{n}"))
            log(f"warm run {n + 1}/{repeat}: job {jobs[-1]:.2f}s, floor {floors[-1]:.2f}s, "
                f"two-table floor {tables[-1]:.2f}s")
        out.update(job_s=round(min(jobs), 3), floor_s=round(min(floors), 3), floor_tables_s=round(min(tables), 3))
    out["peak_rss_mib"] = round(vm_hwm_mib(spark.sparkContext._gateway.proc.pid) + _self_peak_mib(), 1)
    spark.stop()
    return out


def _phase(args: list[str]) -> dict[str, Any]:
    """Run ``python -m bench.etl --phase ...`` in a fresh process; its JSON line."""
    done = subprocess.run([sys.executable, "-m", "bench.etl", *args], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1])
    sys.stderr.write(done.stderr[-4000:] if done.returncode else "".join(
        line + "\n" for line in done.stderr.splitlines() if line.startswith("[bench.etl]")))
    if done.returncode != 0:
        raise SystemExit(f"bench phase {args[:2]} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def hourly_differences(a: Path, b: Path) -> int:
    """Hourly rows that differ between two hourly parquet outputs: present in one only, or with another
    count / min / max, or a mean more than 1e-9 (relative) apart (sums in another order may differ in
    the last bits)."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    read = "read_parquet('{}/*/*.parquet', hive_partitioning = true, hive_types_autocast = false)"
    return con.execute(f"""
        SELECT count(*) FROM {read.format(a)} AS x FULL OUTER JOIN {read.format(b)} AS y
          ON x.thing_name = y.thing_name AND x.pollutant = y.pollutant AND x.hour = y.hour AND x.dt = y.dt
        WHERE x.thing_name IS NULL OR y.thing_name IS NULL OR x.count <> y.count OR x.min <> y.min
           OR x.max <> y.max OR abs(x.mean - y.mean) > 1e-9 * greatest(abs(x.mean), 1)
    """).fetchall()[0][0]


def parquet_rows(table: Path) -> int:
    """Rows of a day-partitioned parquet table."""
    import duckdb

    return duckdb.connect().execute(f"SELECT count(*) FROM read_parquet('{table}/*/*.parquet')").fetchall()[0][0]


def plot(result: dict[str, Any]) -> Path:
    plt = pyplot()
    OUT.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    bars = [("ETL job, cold JVM", result["spark_s"], "#e07b39"),
            ("two-table floor, cold", result["floor_tables_s"], "#e89a66"),
            ("floor (hourly only), cold", result["floor_s"], "#f0b48a"),
            ("ETL job, warm JVM", result["spark_warm_s"], "#c0561c"),
            ("two-table floor, warm", result["floor_tables_warm_s"], "#d88050"),
            ("floor (hourly only), warm", result["floor_warm_s"], "#e8a070"),
            ("DuckDB (hourly only)", result["duckdb_s"], "#3973e0")]
    names, values, colors = zip(*bars, strict=True)
    ax.barh(names, values, color=colors)
    ax.invert_yaxis()
    ax.set_xlabel("seconds (session start excluded)")
    ax.set_title(f"raw JSON → curated parquet, {result['rows']:,} rows: job/floor "
                 f"{result['job_vs_floor_cold']:.2f} cold, {result['job_vs_floor_warm']:.2f} warm;\n"
                 f"job/two-table floor {result['job_vs_floor_tables_cold']:.2f} cold, "
                 f"{result['job_vs_floor_tables_warm']:.2f} warm", fontsize=10)
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
    parser.add_argument("--repeat", type=int, default=2, help="timed warm runs of each Spark job (best counts)")
    parser.add_argument("--keep", action="store_true", help="keep the generated lake (its folder is printed)")
    parser.add_argument("--phase", nargs=3, metavar=("PHASE", "RAW", "WORK"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        phase, raw, work = args.phase
        result = run_duckdb(Path(raw), Path(work) / "duckdb") if phase == "duckdb" else \
            spark_phase(phase, Path(raw), Path(work), args.repeat)
        print(json.dumps(result))
        return 0
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="aircast-bench-etl-"))
    try:
        raw_root = work / "s3" / "aircast-lake" / "raw" / "telemetry"
        t = time.perf_counter()
        objects = generate(raw_root, args.rows)
        log(f"generated {args.rows:,} records in {objects} objects in {time.perf_counter() - t:.1f}s")
        phases: dict[str, dict[str, Any]] = {}
        names = ("cold-job", "cold-floor", "cold-floor-tables", "warm", "duckdb")
        for phase in names:
            phases[phase] = _phase(["--phase", phase, str(raw_root), str(work), "--repeat", str(args.repeat)])
            log(f"{phase}: {json.dumps(phases[phase])}")
        cold, floor, tables, warm, duck = (phases[p] for p in names)

        differences = {name: hourly_differences(work / "job" / "hourly", other) for name, other in (
            ("floor", work / "floor"), ("floor-tables", work / "floor-tables" / "hourly"),
            ("duckdb", work / "duckdb"))}
        readings = {"job": cold["counts"]["written"], "floor-tables": parquet_rows(work / "floor-tables" / "readings")}
        identical = not any(differences.values()) and len(set(readings.values())) == 1 and \
            cold["counts"]["hourly_rows"] == duck["duckdb_hourly_rows"]
        result = {
            "rows": args.rows,
            "spark_s": cold["job_s"],
            "floor_s": floor["floor_s"],
            "job_vs_floor_cold": round(cold["job_s"] / floor["floor_s"], 3),
            "spark_warm_s": warm["job_s"],
            "floor_warm_s": warm["floor_s"],
            "job_vs_floor_warm": round(warm["job_s"] / warm["floor_s"], 3),
            "floor_tables_s": tables["floor_tables_s"],
            "job_vs_floor_tables_cold": round(cold["job_s"] / tables["floor_tables_s"], 3),
            "floor_tables_warm_s": warm["floor_tables_s"],
            "job_vs_floor_tables_warm": round(warm["job_s"] / warm["floor_tables_s"], 3),
            "spark_startup_s": cold["startup_s"],
            "duckdb_s": duck["duckdb_s"],
            "ratio_vs_duckdb": round(duck["duckdb_s"] / cold["job_s"], 4),
            "warm_ratio_vs_duckdb": round(duck["duckdb_s"] / warm["job_s"], 4),
            "rows_per_s": round(args.rows / cold["job_s"], 1),
            "spark_peak_rss_mib": max(cold["peak_rss_mib"], warm["peak_rss_mib"]),
            "duckdb_peak_rss_mib": duck["peak_rss_mib"],
            "hourly_rows": cold["counts"]["hourly_rows"],
            "identical": identical,
        }
        path = plot(result)
        log(f"plot: {path}")
        if args.keep:
            log(f"lake kept in {work}")
        print(json.dumps(result))
        if not identical:
            log(f"FAILED: the outputs differ: {differences} hourly rows differ from the job's; job "
                f"{cold['counts']['hourly_rows']} hourly rows, duckdb {duck['duckdb_hourly_rows']}; readings {readings}")
            return 1
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

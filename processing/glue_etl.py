"""The aircast Glue ETL job: raw Firehose JSON lines → curated, partitioned parquet.

This one file is the job script on AWS Glue 5.0 (Spark 3.5) and on local Spark.
It imports only PySpark and the standard library (``awsglue`` when it is there),
never boto3 and nothing of aircast, so the same file can be uploaded as the
Glue job's ``ScriptLocation``.

What it does, per run:

1. Lists the raw objects under ``--source_uri`` (Hadoop FileSystem: ``s3://``
   on Glue, ``file://`` locally) and skips those its bookmark says it already
   processed (a raw object is processed once; a rerun with nothing new writes
   nothing).
2. Parses every non-blank line with an explicit all-string schema (one JSON
   pass, no inference), canonicalises the seed spellings
   (``particullate_matter`` → ``particulate_matter``, ``sulfure_dioxide`` →
   ``sulfur_dioxide``), turns ISO 8601 strings (with or without zone) and
   epoch seconds/milliseconds into UTC timestamps, and gives each bad record
   one reason code (see ``REASONS``).
3. Deduplicates redeliveries on (``thing_name``, ``seq``), or
   (``thing_name``, ``timestamp``) when there is no ``seq``, and rejected
   records on their raw text, within the run and against the readings and
   quarantine already in the lake for the same days.
4. Appends ``readings/dt=…``, appends ``quarantine/dt=…`` (raw text +
   reason), and recomputes ``hourly/dt=…`` from *all* readings of every day
   the run touched, so a late object for an old hour yields correct
   aggregates (dynamic partition overwrite replaces only those days).
5. Commits the bookmark (the list of objects it processed) last: a crash
   before that reprocesses the objects next time and the dedupe against the
   lake turns the already-written rows into counted duplicates, not copies.
6. Writes the run's counts to ``<target>/_runs/<job>/<run id>.json`` (one
   small JSON per run, beside the bookmarks), so the counts of a run can be
   read on AWS as locally.

No raw object at all (devices have not sent anything yet) is a successful run
that does nothing: an hourly trigger must not fail every hour until data comes.
The job never touches the Data Catalog: the curated crawler, started by the
trigger on a successful run, owns the curated tables.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

# ---- the data contract -------------------------------------------------------

#: Pollutant concentrations: these go into ``hourly``; upper bound of a physically
#: plausible value (µg/m³, or ppb for the seed's unitless random values).
POLLUTANT_MAX: dict[str, float] = {
    "pm2_5": 2000.0,
    "pm10": 3000.0,
    "particulate_matter": 3000.0,
    "ozone": 2000.0,
    "carbon_monoxide": 100000.0,
    "sulfur_dioxide": 10000.0,
    "nitrogen_dioxide": 5000.0,
}
POLLUTANTS: tuple[str, ...] = tuple(POLLUTANT_MAX)
#: Other measurements (kept in ``readings``, not aggregated): inclusive ranges.
WEATHER_RANGE: dict[str, tuple[float, float]] = {
    "temperature": (-90.0, 60.0),  # °C
    "humidity": (0.0, 100.0),  # % relative humidity
    "pressure": (300.0, 1100.0),  # hPa
}
POSITION_RANGE: dict[str, tuple[float, float]] = {"latitude": (-90.0, 90.0), "longitude": (-180.0, 180.0)}
MEASURES: tuple[str, ...] = POLLUTANTS + tuple(WEATHER_RANGE) + tuple(POSITION_RANGE)
#: The seed device's spellings → canonical names.
ALIASES: dict[str, str] = {"particullate_matter": "particulate_matter", "sulfure_dioxide": "sulfur_dioxide"}

#: The characters a thing name (AWS IoT: [a-zA-Z0-9:_-]+, here without ':') and a device id may hold.
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
THING_NAME_CHARS = _ALNUM + "_-"  # 1 to 64 of them
DEVICE_ID_CHARS = _ALNUM + "_.:-"  # 1 to 128 of them
MAX_RECORD_BYTES = 128 * 1024  # IoT Core's payload limit; anything longer did not come through the rule
FUTURE_TOLERANCE_S = 24 * 3600  # a device clock may run ahead of received_at by at most a day

#: Every reason code a record can be quarantined with, in the order they are checked.
REASONS: tuple[str, ...] = (
    "oversized_record",        # line longer than an IoT message can be
    "unparsable_json",         # not JSON at all, or truncated
    "not_an_object",           # valid JSON, but an array / number / string / null
    "empty_record",            # {}
    "missing_thing_name",
    "bad_thing_name",          # not [A-Za-z0-9_-]{1,64}
    "bad_device_id",
    "missing_received_at",     # the IoT rule always adds it
    "bad_received_at",         # not epoch ms, before 2000 or after now
    "missing_timestamp",
    "bad_timestamp",           # neither ISO 8601 nor epoch s/ms
    "timestamp_before_2000",
    "timestamp_in_future",     # more than a day after received_at
    "bad_seq",                 # not a non-negative integer
    "nested_value",            # a measurement that is an object or array
    "non_finite_value",        # NaN / Infinity
    "non_numeric_value",       # a measurement that is text or a boolean
    "negative_concentration",
    "concentration_out_of_range",
    "temperature_out_of_range",
    "humidity_out_of_range",
    "pressure_out_of_range",
    "latitude_out_of_range",
    "longitude_out_of_range",
    "no_measurements",         # no pollutant / weather value at all
)

RAW_FIELDS: tuple[str, ...] = ("thing_name", "device_id", "seq", "timestamp", "received_at", *MEASURES, *ALIASES)
CORRUPT = "_corrupt_record"
#: Fast path: the types good records have. A record that does not fit (a string where a
#: number belongs, an object, a cut line...) comes back with ``_corrupt_record`` set and
#: only those records are parsed again with ``RAW_SCHEMA`` to find out what is wrong.
TYPED_SCHEMA = T.StructType(
    [T.StructField(n, T.StringType()) for n in ("thing_name", "device_id")]
    + [T.StructField("seq", T.LongType()), T.StructField("timestamp", T.StringType()),
       T.StructField("received_at", T.LongType())]
    + [T.StructField(n, T.DoubleType()) for n in (*MEASURES, *ALIASES)]
    + [T.StructField(CORRUPT, T.StringType())]
)
#: Slow path: every field as text. Spark keeps a number's literal text and an object's raw
#: JSON, so validation can tell "12.5" from "abc" from {"x":1}.
RAW_SCHEMA = T.StructType(
    [T.StructField(name, T.StringType()) for name in RAW_FIELDS] + [T.StructField(CORRUPT, T.StringType())]
)
LAYOUT_KEY_RE = r"([0-9]{4}/[0-9]{2}/[0-9]{2}/[0-9]{2}/[^/]+)$"

READINGS_COLUMNS: tuple[str, ...] = (
    "thing_name", "device_id", "seq", "timestamp", "received_at", *MEASURES, "source_object", "dt",
)
HOURLY_COLUMNS: tuple[str, ...] = ("thing_name", "pollutant", "hour", "mean", "count", "min", "max", "dt")
QUARANTINE_COLUMNS: tuple[str, ...] = (
    "raw", "reason", "field", "thing_name", "received_at", "source_object", "job_run_id", "dt",
)


@dataclass(frozen=True)
class JobConfig:
    """The whole configuration of one run (what the Glue job arguments say)."""

    job_name: str
    source_uri: str  # raw/telemetry/ prefix
    target_uri: str  # curated/ prefix: readings/, hourly/, quarantine/ go under it
    database: str = "aircast"
    bookmark_uri: str = ""  # default: <target_uri>/_bookmarks/<job_name>/
    run_id: str = ""
    shuffle_partitions: int = 0  # 0: leave the session's setting

    def resolved_bookmark_uri(self) -> str:
        return self.bookmark_uri or f"{_dir(self.target_uri)}_bookmarks/{self.job_name}/"

    def run_summary_uri(self, run_id: str) -> str:
        """Where the run's counts go: ``<target>/_runs/<job>/<run id>.json``."""
        return f"{_dir(self.target_uri)}_runs/{self.job_name}/{run_id}.json"


def _dir(uri: str) -> str:
    return uri if uri.endswith("/") else uri + "/"


# ---- pure column logic ---------------------------------------------------------

def parse_epoch_or_iso(text: Column) -> Column:
    """UTC timestamp from ISO 8601 text (zone optional: none means UTC) or epoch s / ms.

    Numbers of magnitude ≥ 1e11 are milliseconds (1e11 s is the year 5138), smaller
    ones seconds. Null when the text is neither.
    """
    numeric = text.rlike(r"^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$")
    number = text.cast("double")
    seconds = F.when(F.abs(number) >= 1e11, number / 1000.0).otherwise(number)
    micros = seconds * 1_000_000
    # Rounded half away from zero, as round() does, without round()'s BigDecimal per value.
    rounded = F.when(micros >= 0, F.floor(micros + 0.5)).otherwise(F.ceil(micros - 0.5))
    from_epoch = F.when(F.abs(seconds) < 1e11, F.timestamp_micros(rounded))
    # The session time zone is UTC, so a zone-less ISO string is read as UTC. A trailing
    # "Z" after the seconds is dropped for the same reading: Spark 3.5 resolves an explicit
    # zone by compiling two regular expressions per value, the bulk of an ISO cast's cost.
    iso = F.trim(text)
    utc = iso.endswith("Z") & iso.substr(-2, 1).between("0", "9")
    iso = F.when(utc, iso.substr(F.lit(1), F.length(iso) - 1)).otherwise(iso)
    return F.when(numeric, from_epoch).otherwise(iso.cast("timestamp"))


def _charset_sql(column: str, chars: str, max_length: int) -> str:
    """SQL: ``column`` is 1 to ``max_length`` characters, all of them from ``chars`` (a regular
    expression per value costs several times more)."""
    return f"(char_length({column}) BETWEEN 1 AND {max_length} AND translate({column}, '{chars}', '') = '')"


def _measure_problem_sql(name: str, index: int) -> str:
    """SQL: ``REASONS`` index × 100 + ``index`` of one measurement's problem; null when fine or absent.

    Works on the stage-1 columns ``_t_<name>`` (the field's JSON text, slow path only),
    ``_f_<name>`` (its fast-path double) and ``<name>`` (the double either way).
    """
    text, num, fast = f"`_t_{name}`", f"`{name}`", f"`_f_{name}`"
    code = REASONS.index
    if name in POLLUTANT_MAX:
        ranges = (f"WHEN {num} < 0 THEN {code('negative_concentration')} "
                  f"WHEN {num} > {POLLUTANT_MAX[name]} THEN {code('concentration_out_of_range')}")
    else:
        lo, hi = WEATHER_RANGE.get(name) or POSITION_RANGE[name]
        ranges = f"WHEN {num} < {lo} OR {num} > {hi} THEN {code(f'{name}_out_of_range')}"
    # Spark renders JSON NaN/Infinity numbers as quoted text; the strings "NaN"/"Infinity" cast to NaN/inf.
    return (
        f"(CASE WHEN {text} IS NULL AND {fast} IS NULL THEN NULL "
        f"WHEN {num} IS NULL THEN (CASE WHEN substr(ltrim({text}), 1, 1) IN ('{{', '[') THEN {code('nested_value')} "
        f"WHEN {text} IN ('\"NaN\"', '\"Infinity\"', '\"-Infinity\"', '\"+Infinity\"') "
        f"THEN {code('non_finite_value')} ELSE {code('non_numeric_value')} END) "
        f"WHEN isnan({num}) OR abs({num}) = double('infinity') THEN {code('non_finite_value')} "
        f"{ranges} END) * 100 + {index}"
    )


def classify(lines: DataFrame, now: dt.datetime) -> DataFrame:
    """Parse raw lines (``value``, ``source_object``) and give each a ``reason`` (null = good).

    Returns typed reading columns plus ``raw``, ``reason``, ``field`` (the measurement
    at fault, if one is), ``dt``, ``dkey`` (a good row's ``DEDUPE_KEY_SQL``, a rejected
    row's ``raw_hash``) and ``raw_hash`` (a deterministic tie-break). ``raw`` is kept for rejected records only. Pure: no
    actions, no I/O.

    Written as SQL text in four small stages: the expression tree is built in the JVM
    with a handful of calls and each stage's non-trivial expressions are computed once.
    Every JSON parse happens up front, so stages 2–4 compile into one whole-stage-codegen
    loop (no row copies between them); its method is larger than HotSpot's default limit
    for JIT compilation, which the local session lifts (``-XX:-DontCompileHugeMethods``).
    The generated code is identical across runs on the same day, so Spark's code cache
    serves it.
    """
    options = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}
    fast = F.from_json(F.col("value"), TYPED_SCHEMA, options)
    first = lines.select(F.col("value").alias("raw"), "source_object", fast.alias("f"))
    slow = F.when(F.col(f"f.{CORRUPT}").isNotNull(), F.from_json(F.col("raw"), RAW_SCHEMA, options))
    # A line that is not an object: is it JSON at all (an array, a number...)? Answered here,
    # beside the other parses, so the later stages hold no JSON parsing and compile into one
    # whole-stage-codegen loop.
    not_object = ~F.col("raw").startswith("{") & ~F.ltrim("raw").startswith("{")
    wrapped = F.from_json(F.concat(F.lit('{"v":'), F.col("raw"), F.lit("}")),
                          f"v STRING, {CORRUPT} STRING", options)
    json_kind = F.when(not_object, F.when(wrapped[CORRUPT].isNull(), F.lit("not_an_object"))
                       .otherwise(F.lit("unparsable_json")))
    both = first.select("raw", "source_object", "f", slow.alias("s"), json_kind.alias("_not_object"))

    def pick(slow_expr: str, fast_expr: str) -> str:
        return f"CASE WHEN s IS NOT NULL THEN {slow_expr} ELSE {fast_expr} END"

    def canonical(prefix: str, name: str) -> str:
        alias = {v: k for k, v in ALIASES.items()}.get(name)
        return f"coalesce({prefix}.`{name}`, {prefix}.`{alias}`)" if alias else f"{prefix}.`{name}`"

    # Stage 1: one typed JSON parse (a second, all-text one only for records that did not fit).
    parsed = both.selectExpr(
        "raw", "source_object", "_not_object", f"s.{CORRUPT} IS NOT NULL AS _corrupt",
        f"{pick('s.thing_name', 'f.thing_name')} AS _thing",
        f"{pick('s.device_id', 'f.device_id')} AS device_id",
        "s.seq AS _seq", "CASE WHEN s IS NULL THEN f.seq END AS _f_seq",
        f"{pick('s.`timestamp`', 'f.`timestamp`')} AS _ts",
        "s.received_at AS _recv", "CASE WHEN s IS NULL THEN f.received_at END AS _f_recv",
        *[f"{canonical('s', m)} AS `_t_{m}`" for m in MEASURES],
        *[f"CASE WHEN s IS NULL THEN {canonical('f', m)} END AS `_f_{m}`" for m in MEASURES],
    )
    # Stage 2: types.
    typed = parsed.select(
        "*",
        parse_epoch_or_iso(F.col("_ts")).alias("timestamp"),
        # Typed fast path: numbers as they are; slow path: the text must be an unsigned number.
        F.expr("CASE WHEN _f_recv BETWEEN 0 AND 999999999999999 THEN timestamp_millis(_f_recv) "
               "WHEN _recv RLIKE '^[0-9]{1,15}([.][0-9]+)?$' "
               "THEN timestamp_millis(CAST(CAST(_recv AS DOUBLE) AS BIGINT)) END").alias("received_at"),
        F.expr("CASE WHEN _f_seq >= 0 THEN _f_seq "
               "WHEN _seq RLIKE '^[0-9]{1,18}$' THEN CAST(_seq AS BIGINT) END").alias("seq"),
        F.expr(_charset_sql("_thing", THING_NAME_CHARS, 64)).alias("_thing_ok"),
        *[F.expr(f"coalesce(`_f_{m}`, CAST(`_t_{m}` AS DOUBLE))").alias(m) for m in MEASURES],
    )
    # Stage 3: the first problem of the record, then of its measurements.
    latest_received = (now.astimezone(dt.UTC).date() + dt.timedelta(days=2)).isoformat()
    record_reason = f"""CASE
        WHEN octet_length(raw) > {MAX_RECORD_BYTES} THEN 'oversized_record'
        WHEN _not_object IS NOT NULL THEN _not_object
        WHEN _corrupt THEN 'unparsable_json'
        WHEN _thing IS NULL AND replace(trim(raw), ' ', '') = '{{}}' THEN 'empty_record'
        WHEN _thing IS NULL THEN 'missing_thing_name'
        WHEN NOT _thing_ok THEN 'bad_thing_name'
        WHEN device_id IS NOT NULL AND NOT {_charset_sql("device_id", DEVICE_ID_CHARS, 128)} THEN 'bad_device_id'
        WHEN _recv IS NULL AND _f_recv IS NULL THEN 'missing_received_at'
        WHEN received_at IS NULL OR received_at < TIMESTAMP'2000-01-01 00:00:00'
             OR received_at >= TIMESTAMP'{latest_received} 00:00:00' THEN 'bad_received_at'
        WHEN _ts IS NULL THEN 'missing_timestamp'
        WHEN `timestamp` IS NULL THEN 'bad_timestamp'
        WHEN `timestamp` < TIMESTAMP'2000-01-01 00:00:00' THEN 'timestamp_before_2000'
        WHEN unix_micros(`timestamp`) > unix_micros(received_at) + {FUTURE_TOLERANCE_S * 1_000_000}
             THEN 'timestamp_in_future'
        WHEN (_seq IS NOT NULL OR _f_seq IS NOT NULL) AND seq IS NULL THEN 'bad_seq'
    END"""
    assessed = typed.select(
        "*",
        F.expr(record_reason).alias("_rr"),
        F.expr("least(" + ", ".join(_measure_problem_sql(m, i) for i, m in enumerate(MEASURES)) + ")").alias("_mp"),
        F.expr(" OR ".join(f"`_t_{m}` IS NOT NULL OR `_f_{m}` IS NOT NULL"
                           for m in MEASURES if m not in POSITION_RANGE)).alias("_any"),
    )
    # Stage 4: the verdict and the reading.
    reasons = "array(" + ", ".join(f"'{r}'" for r in REASONS) + ")"
    measures = "array(" + ", ".join(f"'{m}'" for m in MEASURES) + ")"
    out = assessed.selectExpr(
        "raw", "xxhash64(raw) AS raw_hash", "source_object",
        f"coalesce(_rr, element_at({reasons}, CAST(_mp DIV 100 AS INT) + 1), "
        "CASE WHEN NOT _any THEN 'no_measurements' END) AS reason",
        f"CASE WHEN _rr IS NULL THEN element_at({measures}, CAST(_mp % 100 AS INT) + 1) END AS field",
        "CASE WHEN _thing_ok THEN _thing END AS thing_name",
        "device_id",
        "seq",
        "`timestamp`", "received_at", *[f"`{m}`" for m in MEASURES],
    )
    today = now.astimezone(dt.UTC).date().isoformat()
    return out.selectExpr(
        # Good rows drop their text here: it is wide, and only quarantine keeps it.
        "CASE WHEN reason IS NOT NULL THEN raw END AS raw",
        *[c for c in out.columns if c != "raw"],
        # A rejected record is filed under the day it arrived: received_at, else its object's hour folder.
        "CASE WHEN reason IS NULL THEN CAST(CAST(`timestamp` AS DATE) AS STRING) ELSE coalesce("
        "CAST(CAST(received_at AS DATE) AS STRING), nullif(replace(substr(source_object, 1, 10), '/', '-'), ''), "
        f"'{today}') END AS dt",
        # A rejected record's identity is its text: a rerun of the same objects (after a crash
        # before the bookmark) finds the same rows again and must not quarantine them twice.
        "CASE WHEN reason IS NULL THEN " + DEDUPE_KEY_SQL + " ELSE raw_hash END AS dkey",
    )


#: The dedupe key as one long: ``seq`` (≥ 0) when the reading has one, else
#: ``-1 - epoch µs of timestamp`` (< 0, timestamps are after 2000), so the two never collide.
DEDUPE_KEY_SQL = "CASE WHEN seq IS NOT NULL THEN seq ELSE -1 - unix_micros(`timestamp`) END"


def mark_duplicates(classified: DataFrame, partitions: int) -> DataFrame:
    """Add ``status``: ``quarantined``, ``duplicate`` (a later copy in this run) or ``ok``.

    Good readings are copies of each other when they share (dt, thing_name, dkey); rejected
    records when they share (dt, raw text): a redelivered bad line is quarantined once, as a
    redelivered reading is kept once. The first copy by (received_at, source_object,
    raw_hash) wins, so reruns pick the same row. Rows are hash-partitioned by ``dt`` first:
    the window's clustering on (dt, ...) is then already satisfied (one shuffle in all) and
    each day's rows end in one task, hence one parquet file per day.
    """
    rejected = F.col("reason").isNotNull()
    w = Window.partitionBy("dt", rejected, "thing_name", "dkey").orderBy("received_at", "source_object", "raw_hash")
    ranked = classified.repartition(partitions, "dt").withColumn("rank", F.row_number().over(w))
    status = (
        F.when(F.col("rank") > 1, F.lit("duplicate"))
        .when(rejected, F.lit("quarantined"))
        .otherwise(F.lit("ok"))
    )
    return ranked.withColumn("status", status).drop("rank")


def hourly_aggregates(readings: DataFrame) -> DataFrame:
    """Hourly mean/count/min/max per (thing_name, pollutant): pollutant concentrations only."""
    stack = "stack({n}, {pairs}) as (pollutant, value)".format(
        n=len(POLLUTANTS), pairs=", ".join(f"'{p}', `{p}`" for p in POLLUTANTS)
    )
    long = readings.select("dt", "thing_name", F.date_trunc("hour", "timestamp").alias("hour"), F.expr(stack))
    return (
        long.where(F.col("value").isNotNull())
        .groupBy("dt", "thing_name", "pollutant", "hour")
        .agg(
            F.mean("value").alias("mean"),
            F.count("value").alias("count"),
            F.min("value").alias("min"),
            F.max("value").alias("max"),
        )
        .select(*HOURLY_COLUMNS)
    )


# ---- Hadoop FileSystem I/O (s3:// on Glue, file:// locally; no boto3) ------------

def _fs(spark: SparkSession, uri: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


def object_key(uri: str) -> str:
    """The stable id of a raw object: its ``YYYY/MM/DD/HH/name`` tail (else the whole URI)."""
    m = re.search(LAYOUT_KEY_RE, uri)
    return m.group(1) if m else uri


def list_objects(spark: SparkSession, prefix: str) -> dict[str, str]:
    """``{object_key: full URI}`` of every visible file under ``prefix`` (recursive)."""
    fs, path = _fs(spark, prefix)
    if not fs.exists(path):
        return {}
    found: dict[str, str] = {}
    it = fs.listFiles(path, True)
    while it.hasNext():
        status = it.next()
        p = status.getPath()
        name = p.getName()
        if name.startswith(".") or name.startswith("_"):
            continue  # temp files of an atomic write, Hadoop .crc / _SUCCESS markers
        uri = p.toString()
        found[object_key(uri)] = uri
    return found


def read_bookmark(spark: SparkSession, bookmark_uri: str) -> set[str]:
    """Object keys processed by earlier runs (one JSON file per committed run)."""
    fs, path = _fs(spark, bookmark_uri)
    if not fs.exists(path):
        return set()
    done: set[str] = set()
    for status in fs.listStatus(path):
        p = status.getPath()
        if not p.getName().endswith(".json") or p.getName().startswith("."):
            continue
        stream = fs.open(p)
        try:
            reader = spark.sparkContext._jvm.java.io.BufferedReader(
                spark.sparkContext._jvm.java.io.InputStreamReader(stream, "UTF-8")
            )
            text = "\n".join(iter(reader.readLine, None))
        finally:
            stream.close()
        done.update(json.loads(text)["objects"])
    return done


def write_text(spark: SparkSession, uri: str, text: str) -> None:
    """Write a small text file through Hadoop (overwrite)."""
    fs, path = _fs(spark, uri)
    out = fs.create(path, True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()


def _existing_days(spark: SparkSession, table_uri: str, days: Sequence[str]) -> list[str]:
    fs, _ = _fs(spark, table_uri)
    # The class once: each ``jvm.org.apache...`` walk is five name lookups in the JVM (four of them
    # misses through the whole class path), and a run touching 120 days asked 240 times.
    path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path
    return [d for d in days if fs.exists(path(f"{_dir(table_uri)}dt={d}"))]


# ---- the job ----------------------------------------------------------------------

#: The writes of a run, in order; a fault hook may stop the run after any of them (tests).
WRITES: tuple[str, ...] = ("quarantine", "readings", "hourly")


def run_job(spark: SparkSession, config: JobConfig, now: dt.datetime | None = None,
            log: Any = None, fault: Any = None) -> dict[str, Any]:
    """Run the ETL once; return counts and the days touched.

    ``fault(write)`` (tests only) is called after each write in ``WRITES``, before the
    bookmark commits; raising there is a crash at that point.
    """
    started = time.monotonic()
    now = now or dt.datetime.now(dt.UTC)
    run_id = config.run_id or "jr_" + uuid.uuid4().hex
    sink = log or (lambda msg: print(f"[{config.job_name}] {msg}", file=sys.stderr, flush=True))

    def say(msg: str) -> None:
        sink(f"{time.monotonic() - started:6.1f}s {msg}")

    def wrote(what: str) -> None:
        if fault is not None:
            fault(what)

    for key, value in _RUNTIME_CONF.items():
        spark.conf.set(key, value)
    partitions = config.shuffle_partitions or int(spark.conf.get("spark.sql.shuffle.partitions"))
    target = _dir(config.target_uri)
    readings_uri, hourly_uri, quarantine_uri = (f"{target}{t}" for t in ("readings", "hourly", "quarantine"))

    objects = list_objects(spark, config.source_uri)
    done = read_bookmark(spark, config.resolved_bookmark_uri()) if objects else set()
    new = sorted(k for k in objects if k not in done)
    counts: dict[str, Any] = {
        "job_run_id": run_id, "objects_total": len(objects), "objects_new": len(new),
        "read": 0, "written": 0, "duplicate": 0, "quarantined": 0, "hourly_rows": 0, "days": [],
    }
    if not objects:
        say(f"no raw objects under {config.source_uri} yet: nothing to do")
    else:
        say(f"{len(objects)} raw objects, {len(new)} new since the last bookmark")
    if new:
        _process(spark, [objects[k] for k in new], now, run_id, partitions, counts, say, wrote,
                 readings_uri, hourly_uri, quarantine_uri)
        write_text(
            spark,
            f"{config.resolved_bookmark_uri()}{now.strftime('%Y%m%dT%H%M%S')}-{run_id}.json",
            json.dumps({"job_run_id": run_id, "committed": now.isoformat(), "objects": new}),
        )
    counts["duration_s"] = round(time.monotonic() - started, 3)
    write_text(spark, config.run_summary_uri(run_id), json.dumps(counts))
    return counts


def _prior(spark: SparkSession, table_uri: str, days: Sequence[str]) -> DataFrame | None:
    """The rows earlier runs wrote to ``table_uri`` for ``days`` (listed now: before this run's writes)."""
    seen = _existing_days(spark, table_uri, sorted(days))
    if not seen:
        return None
    return spark.read.option("basePath", table_uri).parquet(*[f"{table_uri}/dt={d}" for d in seen])


def _process(spark: SparkSession, uris: list[str], now: dt.datetime, run_id: str, partitions: int,
             counts: dict[str, Any], say: Any, wrote: Any, readings_uri: str, hourly_uri: str,
             quarantine_uri: str) -> None:
    """Parse, validate, dedupe and write the new objects; fills ``counts``."""
    lines = (
        spark.read.text(uris)
        .where(F.trim("value") != "")  # blank lines separate records; they are not records
        .withColumn("source_object", F.regexp_extract(F.input_file_name(), LAYOUT_KEY_RE, 1))
    )
    marked = mark_duplicates(classify(lines, now), partitions).cache()
    try:
        # One action: materialises the cache and gives every count and the days touched.
        tally = marked.groupBy("status", "dt").count().collect()
        by_status: dict[str, int] = {}
        days: set[str] = set()
        bad_days: set[str] = set()
        for row in tally:
            by_status[row["status"]] = by_status.get(row["status"], 0) + row["count"]
            if row["status"] == "ok":
                days.add(row["dt"])
            elif row["status"] == "quarantined":
                bad_days.add(row["dt"])
        counts["read"] = sum(by_status.values())
        say(f"parsed {counts['read']} records: {by_status}")

        quarantined = by_status.get("quarantined", 0)
        if quarantined:
            quarantine = marked.where(F.col("status") == "quarantined").withColumn("job_run_id", F.lit(run_id))
            earlier = _prior(spark, quarantine_uri, bad_days)
            if earlier is not None:
                # Rejected records an earlier run already quarantined (its bookmark never committed).
                quarantine = quarantine.join(earlier.select("dt", "raw"), ["dt", "raw"], "left_anti").cache()
                quarantined = quarantine.count()
            if quarantined:
                quarantine.select(*QUARANTINE_COLUMNS).coalesce(1).write.mode("append").partitionBy("dt").parquet(
                    quarantine_uri
                )
            if earlier is not None:
                quarantine.unpersist()
            say(f"quarantined {quarantined} records")
        counts["quarantined"] = quarantined
        wrote("quarantine")

        fresh = marked.where(F.col("status") == "ok")
        prior = _prior(spark, readings_uri, days)
        if prior is not None:
            # Redeliveries of readings an earlier run already wrote (e.g. after a delivery crash).
            keys = prior.select("dt", "thing_name", F.expr(DEDUPE_KEY_SQL).alias("dkey"))
            fresh = fresh.join(keys, ["dt", "thing_name", "dkey"], "left_anti").cache()
            written = fresh.count()
        else:
            written = by_status.get("ok", 0)
        counts["written"] = written
        counts["duplicate"] = counts["read"] - counts["quarantined"] - written

        hourly = None
        if days:
            # Whole days again, from the readings already there plus the new ones, so a late
            # object for an old hour gives that hour's correct aggregates. Computed (and cached)
            # before the append, straight from the parsed records: no read-back of the parquet.
            columns = ["dt", "thing_name", "timestamp", *POLLUTANTS]
            source = fresh.select(*columns)
            if prior is not None:
                source = prior.select(*columns).unionByName(source)
            hourly = hourly_aggregates(source).repartition("dt").cache()
            counts["hourly_rows"] = hourly.count()
            counts["days"] = sorted(days)
        if written:
            fresh.select(*READINGS_COLUMNS).write.mode("append").partitionBy("dt").parquet(readings_uri)
        say(f"wrote {written} readings, {counts['duplicate']} duplicates, {counts['quarantined']} quarantined")
        wrote("readings")
        if hourly is not None:
            hourly.write.mode("overwrite").option("partitionOverwriteMode", "dynamic").partitionBy("dt").parquet(
                hourly_uri
            )
            hourly.unpersist()
            say(f"recomputed {counts['hourly_rows']} hourly rows for {len(days)} day(s)")
        wrote("hourly")
        if prior is not None:
            fresh.unpersist()
    finally:
        marked.unpersist()


_RUNTIME_CONF = {
    # The parsed records are cached once per run and scanned a few times: building compressed
    # column batches costs more CPU than the scans save (about 10 % of a run).
    "spark.sql.inMemoryColumnarStorage.compressed": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # dt=2021-02-05 stays a string partition value, as the catalog says.
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
}


def table_schemas() -> dict[str, list[dict[str, str]]]:
    """Glue ``Columns`` of the curated tables (without the ``dt`` partition key)."""
    double = "double"
    readings = [
        {"Name": "thing_name", "Type": "string"}, {"Name": "device_id", "Type": "string"},
        {"Name": "seq", "Type": "bigint"}, {"Name": "timestamp", "Type": "timestamp"},
        {"Name": "received_at", "Type": "timestamp"},
        *[{"Name": m, "Type": double} for m in MEASURES],
        {"Name": "source_object", "Type": "string"},
    ]
    hourly = [
        {"Name": "thing_name", "Type": "string"}, {"Name": "pollutant", "Type": "string"},
        {"Name": "hour", "Type": "timestamp"}, {"Name": "mean", "Type": double},
        {"Name": "count", "Type": "bigint"}, {"Name": "min", "Type": double}, {"Name": "max", "Type": double},
    ]
    quarantine = [
        {"Name": "raw", "Type": "string"}, {"Name": "reason", "Type": "string"}, {"Name": "field", "Type": "string"},
        {"Name": "thing_name", "Type": "string"}, {"Name": "received_at", "Type": "timestamp"},
        {"Name": "source_object", "Type": "string"}, {"Name": "job_run_id", "Type": "string"},
    ]
    return {"readings": readings, "hourly": hourly, "quarantine": quarantine}


# ---- entry point ----------------------------------------------------------------------

ARGUMENTS = ("JOB_NAME", "source_uri", "target_uri", "database")


def parse_args(argv: Sequence[str]) -> dict[str, str]:
    """Glue job arguments: ``getResolvedOptions`` on Glue, argparse with the same names elsewhere."""
    try:
        from awsglue.utils import getResolvedOptions  # type: ignore[import-not-found]
    except ImportError:
        parser = argparse.ArgumentParser(description="aircast ETL: raw telemetry JSON lines → curated parquet")
        parser.add_argument("--JOB_NAME", default="aircast-etl")
        parser.add_argument("--source_uri", required=True, help="raw prefix, e.g. s3://aircast-lake/raw/telemetry/")
        parser.add_argument("--target_uri", required=True, help="curated prefix, e.g. s3://aircast-lake/curated/")
        parser.add_argument("--database", default="aircast")
        parser.add_argument("--bookmark_uri", default="")
        parser.add_argument("--run_id", default="")
        parser.add_argument("--JOB_RUN_ID", default="")  # Glue passes it to every run
        known, _ = parser.parse_known_args(list(argv[1:]))  # Glue also passes its own --job-bookmark-option etc.
        return {k: v for k, v in vars(known).items()}
    args: dict[str, str] = getResolvedOptions(list(argv), list(ARGUMENTS))
    for optional in ("bookmark_uri", "run_id"):
        if f"--{optional}" in argv:
            args.update(getResolvedOptions(list(argv), [optional]))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run as a Glue job (awsglue present) or with spark-submit / python."""
    argv = list(sys.argv if argv is None else argv)
    args = parse_args(argv)
    config = JobConfig(
        job_name=args["JOB_NAME"], source_uri=args["source_uri"], target_uri=args["target_uri"],
        database=args.get("database", "aircast"), bookmark_uri=args.get("bookmark_uri", ""),
        run_id=args.get("run_id", "") or args.get("JOB_RUN_ID", ""),
    )
    try:
        from awsglue.context import GlueContext  # type: ignore[import-not-found]
        from awsglue.job import Job  # type: ignore[import-not-found]
        from pyspark.context import SparkContext
    except ImportError:
        spark = SparkSession.builder.appName(config.job_name).getOrCreate()
        job = None
    else:
        glue_context = GlueContext(SparkContext.getOrCreate())
        spark = glue_context.spark_session
        job = Job(glue_context)
        job.init(config.job_name, args)
    counts = run_job(spark, config)
    if job is not None:
        job.commit()
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Local CloudWatch: alarms for endpoint auto-rollback and the endpoints' invocation metrics.

``LocalCloudWatchClient`` stores ``put_metric_alarm`` definitions (boto3 shapes) in the
endpoints SQLite; the endpoint host evaluates them against its own per-variant metrics
with :func:`evaluate_alarm`, as CloudWatch evaluates the ``AWS/SageMaker`` metrics
during a blue/green deployment's baking period.

Supported metrics (namespace ``AWS/SageMaker``, dimensions ``EndpointName`` and optionally
``VariantName``): ``Invocations``, ``Invocation4XXErrors``, ``Invocation5XXErrors``,
``InvocationModelErrors`` (per-request 0/1 values, so ``Average`` is the error rate, as on AWS)
and ``ModelLatency`` (microseconds). Statistics: SampleCount, Sum, Average, Minimum, Maximum
and extended percentiles ``pNN``/``pNN.N``. The evaluation window is
``Period × EvaluationPeriods`` seconds on the scaled clock (at least one real second);
no data in the window is ``INSUFFICIENT_DATA`` (missing data is not breaching, CloudWatch's default).

The host also publishes its invocations as one-minute aggregates per (endpoint, variant), as SageMaker
publishes them to CloudWatch; ``get_metric_statistics`` reads them back (dimensions ``EndpointName`` and
``VariantName``, both required, as SageMaker's endpoint metrics carry both). Percentiles
(``ExtendedStatistics``) are not kept per minute and are refused.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from infra.local.core.arns import cloudwatch_alarm_arn
from infra.local.core.config import LocalConfig
from infra.local.core.errors import ServiceError
from infra.local.sagemaker.endpoints import EndpointStore

METRICS = ("Invocations", "Invocation4XXErrors", "Invocation5XXErrors", "InvocationModelErrors", "ModelLatency")
STATISTICS = ("SampleCount", "Sum", "Average", "Minimum", "Maximum")
COMPARISONS = {
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}
_PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d+)?)$")
#: CloudWatch keeps one-minute datapoints for 15 days
MINUTE_RETENTION_S = 15 * 86400
MAX_DATAPOINTS = 1440
UNITS = {"ModelLatency": "Microseconds"}


@dataclass(frozen=True)
class Sample:
    """One invocation as the host saw it."""

    time: float  # epoch seconds
    latency_us: float  # ModelLatency
    outcome: str  # "ok" | "4xx" | "5xx"


@dataclass(frozen=True)
class AlarmEvaluation:
    state: str  # "OK" | "ALARM" | "INSUFFICIENT_DATA"
    value: float | None
    reason: str


def metric_values(metric: str, samples: Iterable[Sample]) -> list[float]:
    """The per-invocation datapoints CloudWatch would receive for ``metric``."""
    if metric == "ModelLatency":
        return [s.latency_us for s in samples]
    if metric == "Invocations":
        return [1.0 for _ in samples]
    if metric == "Invocation4XXErrors":
        return [1.0 if s.outcome == "4xx" else 0.0 for s in samples]
    if metric in ("Invocation5XXErrors", "InvocationModelErrors"):
        return [1.0 if s.outcome == "5xx" else 0.0 for s in samples]
    raise ValueError(f"metric {metric!r} is not one of {', '.join(METRICS)}")


def statistic(values: list[float], stat: str) -> float:
    """A CloudWatch statistic over datapoints (``values`` non-empty)."""
    if stat == "SampleCount":
        return float(len(values))
    if stat == "Sum":
        return float(sum(values))
    if stat == "Average":
        return float(sum(values)) / len(values)
    if stat == "Minimum":
        return float(min(values))
    if stat == "Maximum":
        return float(max(values))
    match = _PERCENTILE.match(stat)
    if not match:
        raise ValueError(f"statistic {stat!r} is not one of {', '.join(STATISTICS)} or pNN")
    ordered = sorted(values)
    rank = max(0, math.ceil(float(match.group(1)) / 100.0 * len(ordered)) - 1)
    return float(ordered[rank])


def evaluate_alarm(alarm: Mapping[str, Any], samples: list[Sample], now: float, clock_scale: float) -> AlarmEvaluation:
    """Evaluate one ``put_metric_alarm`` definition over the samples of the fleet it watches."""
    window = max(1.0, float(alarm.get("Period", 60)) * int(alarm.get("EvaluationPeriods", 1)) * clock_scale)
    recent = [s for s in samples if s.time >= now - window]
    if not recent:
        return AlarmEvaluation("INSUFFICIENT_DATA", None, "no invocations in the evaluation window")
    stat = alarm.get("ExtendedStatistic") or alarm.get("Statistic", "Average")
    value = statistic(metric_values(alarm["MetricName"], recent), stat)
    threshold = float(alarm["Threshold"])
    breached = COMPARISONS[alarm["ComparisonOperator"]](value, threshold)
    reason = (f"{alarm['MetricName']} {stat} = {value:.4g} over {len(recent)} invocation(s) "
              f"{'breaches' if breached else 'is within'} {alarm['ComparisonOperator']} {threshold:g}")
    return AlarmEvaluation("ALARM" if breached else "OK", value, reason)


def add_to_minute(bucket: dict[str, float], sample: Sample) -> None:
    """Fold one invocation into a one-minute aggregate (count, error counts, latency sum/min/max)."""
    bucket["n"] = bucket.get("n", 0) + 1
    bucket[sample.outcome] = bucket.get(sample.outcome, 0) + 1
    bucket["lat_sum"] = bucket.get("lat_sum", 0.0) + sample.latency_us
    bucket["lat_min"] = min(bucket.get("lat_min", math.inf), sample.latency_us)
    bucket["lat_max"] = max(bucket.get("lat_max", -math.inf), sample.latency_us)


def write_minutes(store: EndpointStore, minutes: Mapping[tuple[str, str, int], Mapping[str, float]]) -> None:
    """Store (replace) one-minute aggregates ``{(endpoint, variant, minute epoch): bucket}``; drop expired ones."""
    if not minutes:
        return
    with store.transaction() as conn:
        conn.executemany("INSERT OR REPLACE INTO metric_minutes (endpoint, variant, minute, doc) VALUES (?,?,?,?)",
                         [(e, v, m, json.dumps(b)) for (e, v, m), b in minutes.items()])
        conn.execute("DELETE FROM metric_minutes WHERE minute < ?", (int(time.time() - MINUTE_RETENTION_S),))


def minute_statistics(metric: str, bucket: Mapping[str, float]) -> dict[str, float]:
    """Every CloudWatch statistic of ``metric`` over one or more merged minute aggregates."""
    n = float(bucket.get("n", 0))
    if metric == "ModelLatency":
        return {"SampleCount": n, "Sum": bucket.get("lat_sum", 0.0), "Average": bucket.get("lat_sum", 0.0) / n,
                "Minimum": bucket.get("lat_min", 0.0), "Maximum": bucket.get("lat_max", 0.0)}
    if metric == "Invocations":
        return {"SampleCount": n, "Sum": n, "Average": 1.0, "Minimum": 1.0, "Maximum": 1.0}
    count = float(bucket.get("4xx" if metric == "Invocation4XXErrors" else "5xx", 0))
    return {"SampleCount": n, "Sum": count, "Average": count / n, "Minimum": 0.0 if count < n else 1.0,
            "Maximum": 1.0 if count else 0.0}


def _merge(into: dict[str, float], bucket: Mapping[str, float]) -> None:
    for key, value in bucket.items():
        if key == "lat_min":
            into[key] = min(into.get(key, math.inf), value)
        elif key == "lat_max":
            into[key] = max(into.get(key, -math.inf), value)
        else:
            into[key] = into.get(key, 0) + value


def _epoch(value: Any, name: str, op: str) -> float:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    raise ServiceError("InvalidParameterValue",
                       f"The parameter {name} must be a timestamp, got {value!r}", 400, op)


def alarm_dimensions(alarm: Mapping[str, Any]) -> dict[str, str]:
    return {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}


class LocalCloudWatchClient:
    """``boto3.client("cloudwatch")`` for the alarms the deployment code creates (local backend)."""

    def __init__(self, config: LocalConfig) -> None:
        self.config = config
        self._store = EndpointStore(config.data_dir)

    def put_metric_alarm(self, *, AlarmName: str, MetricName: str | None = None, Namespace: str = "AWS/SageMaker",
                         Statistic: str | None = None, ExtendedStatistic: str | None = None,
                         Dimensions: list[Mapping[str, str]] | None = None, Period: int = 60,
                         EvaluationPeriods: int = 1, Threshold: float | None = None,
                         ComparisonOperator: str = "GreaterThanThreshold", **kwargs: Any) -> dict[str, Any]:
        """Create or replace an alarm (the subset of ``PutMetricAlarm`` that endpoint alarms use)."""
        op = "PutMetricAlarm"
        if not AlarmName or len(AlarmName) > 255:
            raise ServiceError.validation(f"AlarmName {AlarmName!r} must be 1-255 characters", op)
        if kwargs.get("Metrics"):
            raise ServiceError.validation("metric math (Metrics) is not supported locally; alarm on one metric", op)
        if Namespace != "AWS/SageMaker" or MetricName not in METRICS:
            raise ServiceError.validation(f"metric {Namespace}/{MetricName} is not an endpoint metric the local host "
                                          f"publishes ({', '.join(METRICS)})", op)
        if (Statistic is None) == (ExtendedStatistic is None):
            raise ServiceError.validation("give exactly one of Statistic or ExtendedStatistic", op)
        if Statistic is not None and Statistic not in STATISTICS:
            raise ServiceError.validation(f"Statistic {Statistic!r} is not one of {', '.join(STATISTICS)}", op)
        if ExtendedStatistic is not None and not _PERCENTILE.match(ExtendedStatistic):
            raise ServiceError.validation(f"ExtendedStatistic {ExtendedStatistic!r} is not a percentile like p99", op)
        if ComparisonOperator not in COMPARISONS:
            raise ServiceError.validation(
                f"ComparisonOperator {ComparisonOperator!r} is not one of {', '.join(COMPARISONS)}", op)
        if Threshold is None:
            raise ServiceError.validation("Threshold is required", op)
        if not isinstance(Period, int) or Period < 10 or not isinstance(EvaluationPeriods, int) or EvaluationPeriods < 1:
            raise ServiceError.validation("Period must be an integer >= 10 and EvaluationPeriods an integer >= 1", op)
        dims = list(Dimensions or [])
        if "EndpointName" not in {d.get("Name") for d in dims}:
            raise ServiceError.validation("Dimensions must include EndpointName", op)
        doc = {"AlarmName": AlarmName, "AlarmArn": cloudwatch_alarm_arn(self.config.region, self.config.account_id,
                                                                        AlarmName),
               "MetricName": MetricName, "Namespace": Namespace, "Statistic": Statistic,
               "ExtendedStatistic": ExtendedStatistic, "Dimensions": dims, "Period": Period,
               "EvaluationPeriods": EvaluationPeriods, "Threshold": float(Threshold),
               "ComparisonOperator": ComparisonOperator, "AlarmDescription": kwargs.get("AlarmDescription", ""),
               "StateValue": "INSUFFICIENT_DATA", "AlarmConfigurationUpdatedTimestamp": time.time()}
        with self._store.transaction() as conn:
            self._store.put(conn, "alarms", AlarmName, {k: v for k, v in doc.items() if v is not None})
        return {}

    def describe_alarms(self, *, AlarmNames: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        docs = self._store.all("alarms")
        if AlarmNames:
            docs = [d for d in docs if d["AlarmName"] in AlarmNames]
        return {"MetricAlarms": docs, "CompositeAlarms": []}

    def get_metric_statistics(self, *, Namespace: str, MetricName: str, StartTime: Any, EndTime: Any, Period: int,
                              Dimensions: list[Mapping[str, str]] | None = None, Statistics: list[str] | None = None,
                              ExtendedStatistics: list[str] | None = None, Unit: str | None = None) -> dict[str, Any]:
        """``GetMetricStatistics`` over the endpoint host's one-minute aggregates.

        As on CloudWatch, a metric matches only with its exact dimension set (``EndpointName`` and
        ``VariantName``); another namespace, metric or dimension set yields no datapoints, not an error.
        """
        op = "GetMetricStatistics"
        if bool(Statistics) == bool(ExtendedStatistics):
            raise ServiceError("InvalidParameterCombination",
                               "Must specify either Statistics or ExtendedStatistics, but not both.", 400, op)
        if ExtendedStatistics:
            raise ServiceError("InvalidParameterValue",
                               "ExtendedStatistics: the local stand-in keeps one-minute aggregates, not "
                               "distributions; ask for SampleCount, Sum, Average, Minimum or Maximum", 400, op)
        bad = [s for s in Statistics or [] if s not in STATISTICS]
        if bad:
            raise ServiceError("InvalidParameterValue",
                               f"The parameter Statistics contains {bad[0]!r}, which is not one of "
                               f"{', '.join(STATISTICS)}", 400, op)
        if not isinstance(Period, int) or Period < 1 or (Period >= 60 and Period % 60) or \
                (Period < 60 and Period not in (1, 5, 10, 30)):
            raise ServiceError("InvalidParameterValue",
                               "The parameter Period must be 1, 5, 10, 30 or a multiple of 60.", 400, op)
        start, end = _epoch(StartTime, "StartTime", op), _epoch(EndTime, "EndTime", op)
        if start >= end:
            raise ServiceError("InvalidParameterValue",
                               "The parameter StartTime must be less than the parameter EndTime.", 400, op)
        period = max(Period, 60)  # the data is one-minute resolution
        if (end - start) / period > MAX_DATAPOINTS:
            raise ServiceError("InvalidParameterCombination",
                               f"You have requested up to {int((end - start) / period)} datapoints, which exceeds "
                               f"the limit of {MAX_DATAPOINTS}. You may reduce the datapoints requested by "
                               "increasing Period, or decreasing the time range.", 400, op)
        unit = UNITS.get(MetricName, "None")
        out: dict[str, Any] = {"Label": MetricName, "Datapoints": []}
        dims = {d.get("Name"): d.get("Value") for d in Dimensions or []}
        if Namespace != "AWS/SageMaker" or MetricName not in METRICS or set(dims) != {"EndpointName", "VariantName"} \
                or (Unit is not None and Unit != unit):
            return out
        rows = self._store.query("SELECT minute, doc FROM metric_minutes WHERE endpoint=? AND variant=? AND minute>=? "
                                 "AND minute<?", (dims["EndpointName"], dims["VariantName"], int(start), end))
        periods: dict[int, dict[str, float]] = {}
        for minute, doc in rows:
            slot = int(start + (minute - start) // period * period)
            _merge(periods.setdefault(slot, {}), json.loads(doc))
        for slot, bucket in sorted(periods.items()):
            if not bucket.get("n"):
                continue
            stats = minute_statistics(MetricName, bucket)
            point: dict[str, Any] = {"Timestamp": dt.datetime.fromtimestamp(slot, tz=dt.UTC), "Unit": unit}
            point.update({s: stats[s] for s in Statistics or []})
            out["Datapoints"].append(point)
        return out

    def delete_alarms(self, *, AlarmNames: list[str]) -> dict[str, Any]:
        with self._store.transaction() as conn:
            for name in AlarmNames:
                self._store.delete(conn, "alarms", name)
        return {}

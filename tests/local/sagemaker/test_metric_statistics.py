"""GetMetricStatistics over the endpoint host's one-minute aggregates: the statistics of the
AWS/SageMaker invocation metrics per (EndpointName, VariantName), and CloudWatch's refusals."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from botocore.exceptions import ClientError

from infra.local.sagemaker.cloudwatch import LocalCloudWatchClient, Sample, write_minutes
from infra.local.sagemaker.host.metrics import Metrics

MINUTE = int(time.time() // 60 * 60) - 3600  # a minute boundary an hour ago (CloudWatch keeps 15 days)
DIMS = [{"Name": "EndpointName", "Value": "ep"}, {"Name": "VariantName", "Value": "AllTraffic"}]


def _at(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, tz=dt.UTC)


@pytest.fixture
def cw(settings):
    metrics = Metrics()
    for i, outcome in enumerate(["ok", "ok", "5xx", "4xx"]):  # minute 0: 4 invocations
        metrics.record("ep", "cfg-blue", "AllTraffic", Sample(MINUTE + i, 1000.0 * (i + 1), outcome))
    metrics.record("ep", "cfg-green", "AllTraffic", Sample(MINUTE + 61, 500.0, "ok"))  # minute 1, the green fleet
    metrics.record("other", "cfg", "AllTraffic", Sample(MINUTE + 5, 1.0, "ok"))
    client = LocalCloudWatchClient(settings.local_config())
    write_minutes(client._store, metrics.drain_minutes())
    assert metrics.drain_minutes() == {}  # drained: nothing changed since
    return client


def _stats(cw, metric, stats=("Sum",), period=60, dims=DIMS, **kw):
    return cw.get_metric_statistics(Namespace="AWS/SageMaker", MetricName=metric, Dimensions=dims,
                                     StartTime=_at(MINUTE), EndTime=_at(MINUTE + 600), Period=period,
                                     Statistics=list(stats), **kw)


def test_minute_datapoints_per_endpoint_and_variant(cw):
    points = _stats(cw, "Invocations", ("Sum", "SampleCount"))["Datapoints"]
    assert [(p["Timestamp"], p["Sum"], p["SampleCount"]) for p in points] == [
        (_at(MINUTE), 4.0, 4.0), (_at(MINUTE + 60), 1.0, 1.0)]  # blue and green fleets share the variant name
    errors = _stats(cw, "Invocation5XXErrors", ("Sum", "Average"))["Datapoints"]
    assert (errors[0]["Sum"], errors[0]["Average"]) == (1.0, 0.25)
    assert _stats(cw, "Invocation4XXErrors")["Datapoints"][0]["Sum"] == 1.0
    latency = _stats(cw, "ModelLatency", ("Average", "Maximum", "Minimum"))["Datapoints"][0]
    assert (latency["Average"], latency["Maximum"], latency["Minimum"], latency["Unit"]) == (
        2500.0, 4000.0, 1000.0, "Microseconds")
    five = _stats(cw, "Invocations", period=300)["Datapoints"]
    assert [(p["Timestamp"], p["Sum"]) for p in five] == [(_at(MINUTE), 5.0)]


def test_minutes_older_than_the_retention_are_dropped(cw):
    write_minutes(cw._store, {("ep", "AllTraffic", MINUTE - 16 * 86400): {"n": 1, "ok": 1}})
    old = cw.get_metric_statistics(Namespace="AWS/SageMaker", MetricName="Invocations", Dimensions=DIMS,
                                   StartTime=_at(MINUTE - 17 * 86400), EndTime=_at(MINUTE - 15 * 86400),
                                   Period=3600, Statistics=["Sum"])
    assert old["Datapoints"] == []


def test_other_dimension_sets_namespaces_and_metrics_have_no_datapoints(cw):
    assert _stats(cw, "Invocations", dims=DIMS[:1])["Datapoints"] == []  # SageMaker's metrics carry both
    assert _stats(cw, "CPUUtilization")["Datapoints"] == []
    assert cw.get_metric_statistics(Namespace="AWS/EC2", MetricName="Invocations", Dimensions=DIMS,
                                    StartTime=_at(MINUTE), EndTime=_at(MINUTE + 60), Period=60,
                                    Statistics=["Sum"])["Datapoints"] == []


@pytest.mark.parametrize("kwargs, code, text", [
    ({"Statistics": []}, "InvalidParameterCombination", "either Statistics or ExtendedStatistics"),
    ({"ExtendedStatistics": ["p99"]}, "InvalidParameterValue", "ExtendedStatistics"),
    ({"Statistics": ["Median"]}, "InvalidParameterValue", "Median"),
    ({"Period": 45}, "InvalidParameterValue", "multiple of 60"),
    ({"StartTime": _at(MINUTE + 600)}, "InvalidParameterValue", "StartTime must be less than"),
    ({"EndTime": _at(MINUTE + 86400 * 2)}, "InvalidParameterCombination", "exceeds the limit of 1440"),
])
def test_refusals_as_cloudwatch(cw, kwargs, code, text):
    args = {"Namespace": "AWS/SageMaker", "MetricName": "Invocations", "Dimensions": DIMS, "StartTime": _at(MINUTE),
            "EndTime": _at(MINUTE + 600), "Period": 60, "Statistics": ["Sum"], **kwargs}
    if "ExtendedStatistics" in kwargs:
        args.pop("Statistics")
    with pytest.raises(ClientError) as err:
        cw.get_metric_statistics(**args)
    assert err.value.response["Error"]["Code"] == code and text in err.value.response["Error"]["Message"]


def test_metrics_exposition_is_the_prometheus_text_format() -> None:
    """``GET /metrics``: counters per variant and fleet, errors by class, latency quantiles in ms, the green
    fleet's share, as a Prometheus scraper parses them."""
    from prometheus_client.parser import text_string_to_metric_families

    from infra.local.sagemaker.host.metrics import exposition
    from infra.local.sagemaker.host.routing import Fleet, LiveEndpoint

    metrics = Metrics()
    for i, outcome in enumerate(["ok", "ok", "ok", "4xx"]):
        metrics.record("ep", "cfg-blue", "AllTraffic", Sample(MINUTE + i, 1000.0 * (i + 1), outcome))
    metrics.record("ep", "cfg-green", "AllTraffic", Sample(MINUTE + 5, 2000.0, "5xx"))
    metrics.record("ep", "cfg-old", "AllTraffic", Sample(MINUTE + 6, 3000.0, "ok"))
    live = LiveEndpoint("ep", blue=Fleet("cfg-blue", {}, None), green=Fleet("cfg-green", {}, None), green_share=0.25)
    text = exposition(metrics, {"ep": live}).decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    blue = {"endpoint": "ep", "variant": "AllTraffic", "endpoint_config": "cfg-blue", "fleet": "blue"}
    assert value("aircast_endpoint_invocations_total", **blue) == 4
    assert value("aircast_endpoint_invocation_errors_total", **blue, **{"class": "4xx"}) == 1
    assert value("aircast_endpoint_invocation_errors_total", endpoint="ep", variant="AllTraffic",
                 endpoint_config="cfg-green", fleet="green", **{"class": "5xx"}) == 1
    assert value("aircast_endpoint_invocations_total", endpoint="ep", variant="AllTraffic",
                 endpoint_config="cfg-old", fleet="retired") == 1
    assert value("aircast_endpoint_model_latency_ms", **blue, quantile="0.5") == 3.0  # microseconds → ms
    assert value("aircast_endpoint_model_latency_ms", **blue, quantile="0.99") == 4.0
    assert value("aircast_endpoint_model_latency_ms_count", **blue) == 4
    assert value("aircast_endpoint_green_traffic_share", endpoint="ep") == 0.25
    assert "# TYPE aircast_endpoint_invocations_total counter" in text
    assert "# TYPE aircast_endpoint_model_latency_ms summary" in text

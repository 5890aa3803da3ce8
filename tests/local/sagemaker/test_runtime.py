"""The endpoint host as SageMaker Runtime: boto3's sagemaker-runtime client unchanged, strict 4xx
for every bad request (the server keeps serving), A/B variants, several models behind one endpoint as
production variants, Data Capture in exactly AWS's format, Prometheus metrics."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from botocore.exceptions import ClientError

from aircast.clients import get_client
from deployment.deploy import (
    create_ab_endpoint_config,
    create_multi_variant_endpoint,
    set_variant_weights,
    wait_for_endpoint,
)
from tests.helpers import wait_until
from tests.local.sagemaker.helpers import create_endpoint, create_model_and_config, has_sample, scrape
from tests.local.sagemaker.host_fixtures import PREDICTION_LENGTH, request_body, tiny_series

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runtime(host_settings, host):
    return get_client("sagemaker-runtime", host_settings)


CAPTURE = "datacapture/rt/rt-blue"


@pytest.fixture(scope="module")
def served(sm, host, model_url, host_settings) -> str:
    create_endpoint(sm, "rt", model_url, data_capture={
        "EnableCapture": True, "InitialSamplingPercentage": 100,
        "DestinationS3Uri": f"s3://{host_settings.artifacts_bucket}/{CAPTURE}",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]}})
    return "rt"


def _error(runtime, endpoint: str, body: bytes, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as info:
        runtime.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType="application/json", **kwargs)
    return info.value


def test_boto3_runtime_invokes_and_names_the_variant(runtime, served):
    resp = runtime.invoke_endpoint(EndpointName=served, Body=request_body(num_samples=10,
                                   output_types=("mean", "quantiles", "samples")), ContentType="application/json")
    assert resp["InvokedProductionVariant"] == "AllTraffic"
    assert resp["ContentType"] == "application/json"
    prediction = json.loads(resp["Body"].read())["predictions"][0]
    assert len(prediction["mean"]) == PREDICTION_LENGTH
    assert set(prediction["quantiles"]) == {"0.1", "0.5", "0.9"}
    assert len(prediction["samples"]) == 10 and len(prediction["samples"][0]) == PREDICTION_LENGTH
    assert all(lo <= mid <= hi for lo, mid, hi in zip(prediction["quantiles"]["0.1"], prediction["quantiles"]["0.5"],
                                                        prediction["quantiles"]["0.9"], strict=True))


def _body(instances=None, configuration=None) -> bytes:
    inst = tiny_series()[0]
    default = [{"start": inst["start"], "target": inst["target"][:24], "cat": inst["cat"]}]
    return json.dumps({"instances": default if instances is None else instances,
                       "configuration": configuration or {"num_samples": 5, "output_types": ["mean"]}}).encode()


BAD_REQUESTS = [
    ("malformed JSON", b'{"instances": [', "JSON"),
    ("missing target", _body([{"start": "2024-01-01 00:00:00", "cat": [0]}]), "target"),
    ("empty target", _body([{"start": "2024-01-01 00:00:00", "target": [], "cat": [0]}]), "target"),
    ("non-numeric value", _body([{"start": "2024-01-01 00:00:00", "target": [1, "abc", 3], "cat": [0]}]), "target"),
    ("unknown output type", _body(configuration={"num_samples": 5, "output_types": ["median"]}), "output_types"),
    ("bad quantile", _body(configuration={"num_samples": 5, "output_types": ["quantiles"], "quantiles": ["1.5"]}),
     "quantiles"),
    ("num_samples out of range", _body(configuration={"num_samples": 0, "output_types": ["mean"]}), "num_samples"),
    ("unknown category", _body([{"start": "2024-01-01 00:00:00", "target": [1, 2, 3], "cat": [99]}]), "cat"),
]


@pytest.mark.parametrize("what,body,mentions", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_request_is_a_model_error_with_the_reason(runtime, served, what, body, mentions):
    err = _error(runtime, served, body)
    assert err.response["Error"]["Code"] == "ModelError"
    assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert err.response["OriginalStatusCode"] == 400
    assert mentions.lower() in err.response["Error"]["Message"].lower(), err.response["Error"]["Message"]


def test_validation_errors_unknown_endpoint_variant_and_oversize(runtime, served):
    err = _error(runtime, "no-such-endpoint", _body())
    assert err.response["Error"]["Code"] == "ValidationError"
    assert "no-such-endpoint" in err.response["Error"]["Message"]
    err = _error(runtime, served, _body(), TargetVariant="Nope")
    assert err.response["Error"]["Code"] == "ValidationError" and "Nope" in err.response["Error"]["Message"]
    err = _error(runtime, served, b"x" * (6 * 1024 * 1024 + 1))
    assert err.response["Error"]["Code"] == "ValidationError" and "exceeds" in err.response["Error"]["Message"]
    # issue 14: a TargetModel over 255 characters or naming no model was a 500; DeepAR endpoints are not
    # multi-model endpoints, so any TargetModel is SageMaker's ValidationError
    for target in ("m.tar.gz", "x" * 256, "../../pki/ca.key", "datacapture/rt/rt-blue"):
        err = _error(runtime, served, _body(), TargetModel=target)
        assert err.response["Error"]["Code"] == "ValidationError"
        assert err.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert err.response["Error"]["Message"] == (f"Endpoint {served} is not a multi-model endpoint and does not "
                                                    "support target model header.")
    # the service's own checks of the request's members, in its words
    err = _error(runtime, served, _body(), TargetModel="x" * 1025)
    assert err.response["Error"]["Code"] == "ValidationError"
    assert "at 'targetModel' failed to satisfy constraint: Member must have length less than or equal to 1024" \
        in err.response["Error"]["Message"]
    err = _error(runtime, served, _body(), InferenceId="x" * 65)
    assert "at 'inferenceId' failed to satisfy constraint" in err.response["Error"]["Message"]
    # the server keeps serving after every bad request
    ok = runtime.invoke_endpoint(EndpointName=served, Body=_body(), ContentType="application/json")
    assert ok["InvokedProductionVariant"] == "AllTraffic"


def _capture_records(root) -> list[dict]:
    return [json.loads(line) for f in sorted(root.glob("*/*/*/*/*.jsonl")) for line in f.read_text().splitlines()]


def test_data_capture_and_metrics(runtime, served, host_settings, host):
    # SageMaker's layout: <DestinationS3Uri>/<endpoint>/<variant>/YYYY/MM/DD/HH/<file>.jsonl
    root = host_settings.s3_root / host_settings.artifacts_bucket / CAPTURE / served / "AllTraffic"
    before = len(_capture_records(root))  # earlier tests' requests to this endpoint were captured too
    runtime.invoke_endpoint(EndpointName=served, Body=_body(), ContentType="application/json")
    runtime.invoke_endpoint(EndpointName=served, Body=_body(), ContentType="application/json", InferenceId="req-42")
    # the capture writer runs in the background
    wait_until(lambda: len(_capture_records(root)) >= before + 2, 10, what=f"two new capture records under {root}")
    records = _capture_records(root)
    for record in records:
        # exactly AWS's members: the record says nothing of the model (the config's destination does)
        assert set(record) == {"captureData", "eventMetadata", "eventVersion"} and record["eventVersion"] == "0"
        assert set(record["captureData"]) == {"endpointInput", "endpointOutput"}
        for part, mode in (("endpointInput", "INPUT"), ("endpointOutput", "OUTPUT")):
            assert record["captureData"][part].keys() == {"observedContentType", "mode", "data", "encoding"}
            assert record["captureData"][part]["mode"] == mode and record["captureData"][part]["encoding"] == "JSON"
        assert set(record["eventMetadata"]) <= {"eventId", "inferenceTime", "inferenceId"}
        assert record["eventMetadata"]["eventId"]
        assert dt.datetime.strptime(record["eventMetadata"]["inferenceTime"], "%Y-%m-%dT%H:%M:%SZ")
    assert [r["eventMetadata"].get("inferenceId") for r in records[-2:]] == [None, "req-42"]
    assert json.loads(records[-1]["captureData"]["endpointInput"]["data"])["instances"]
    assert json.loads(records[-1]["captureData"]["endpointOutput"]["data"])["predictions"]
    samples = scrape(host.url)  # the Prometheus text format, as a scraper reads it
    served_total = next(v for n, labels, v in samples
                        if n == "aircast_endpoint_invocations_total" and labels["endpoint"] == "rt")
    assert served_total >= 3
    assert has_sample(samples, "aircast_endpoint_model_latency_ms", endpoint="rt", variant="AllTraffic")
    assert has_sample(samples, "aircast_endpoint_invocation_errors_total", **{"class": "4xx"})


def test_ab_variants_weights_and_target_variant(sm, runtime, host_settings, model_url):
    a = create_model_and_config(sm, "ab-a", model_url)
    b = create_model_and_config(sm, "ab-b", model_url)
    create_ab_endpoint_config(sm, "ab-config", [{"VariantName": "A", "ModelName": a, "Weight": 3},
                                                {"VariantName": "B", "ModelName": b, "Weight": 1}])
    sm.create_endpoint(EndpointName="ab", EndpointConfigName="ab-config")
    desc = wait_for_endpoint(sm, "ab", 60)
    assert {v["VariantName"]: v["CurrentWeight"] for v in desc["ProductionVariants"]} == {"A": 3.0, "B": 1.0}
    seen = [runtime.invoke_endpoint(EndpointName="ab", Body=_body())["InvokedProductionVariant"] for _ in range(8)]
    assert seen.count("A") == 6 and seen.count("B") == 2
    assert runtime.invoke_endpoint(EndpointName="ab", Body=_body(), TargetVariant="B")["InvokedProductionVariant"] == "B"
    set_variant_weights(sm, "ab", {"A": 0, "B": 1})
    desc = wait_for_endpoint(sm, "ab", 30)
    assert {v["VariantName"]: v["CurrentWeight"] for v in desc["ProductionVariants"]} == {"A": 0.0, "B": 1.0}
    assert {runtime.invoke_endpoint(EndpointName="ab", Body=_body())["InvokedProductionVariant"]
            for _ in range(4)} == {"B"}
    with pytest.raises(ClientError, match="not present"):
        set_variant_weights(sm, "ab", {"C": 1})


def test_several_models_behind_one_endpoint_by_target_variant(sm, runtime, host_settings, model_url):
    """Finding 12: several DeepAR models share an endpoint as production variants (TargetVariant), the way
    SageMaker supports it for the built-in algorithm; a multi-model endpoint is refused at CreateModel."""
    sm.create_model_package_group(ModelPackageGroupName="several-models")
    packages = {}
    for variant in ("station-a", "station-b"):
        packages[variant] = sm.create_model_package(
            ModelPackageGroupName="several-models", ModelApprovalStatus="Approved",
            InferenceSpecification={"Containers": [{"Image": "local/deepar:1", "ModelDataUrl": model_url}],
                                    "SupportedContentTypes": ["application/json"],
                                    "SupportedResponseMIMETypes": ["application/json"]})["ModelPackageArn"]
    config = create_multi_variant_endpoint(sm, "several", packages, role_arn=host_settings.role_arn)
    desc = wait_for_endpoint(sm, "several", 60)
    assert desc["EndpointStatus"] == "InService" and desc["EndpointConfigName"] == config
    for variant in packages:
        resp = runtime.invoke_endpoint(EndpointName="several", Body=_body(), TargetVariant=variant)
        assert resp["InvokedProductionVariant"] == variant
        assert len(json.loads(resp["Body"].read())["predictions"][0]["mean"]) == PREDICTION_LENGTH
    models = {v["VariantName"]: v["ModelName"] for v in
              sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"]}
    assert {v: sm.describe_model(ModelName=m)["PrimaryContainer"]["ModelPackageName"]
            for v, m in models.items()} == packages
    with pytest.raises(ClientError, match="multi-models=true Docker label"):
        sm.create_model(ModelName="mme", ExecutionRoleArn=host_settings.role_arn, PrimaryContainer={
            "Image": "local/deepar:1", "Mode": "MultiModel", "ModelDataUrl": f"s3://{host_settings.artifacts_bucket}/"})


def test_delete_endpoint_stops_serving(sm, runtime, model_url):
    create_endpoint(sm, "gone", model_url)
    assert runtime.invoke_endpoint(EndpointName="gone", Body=_body())["InvokedProductionVariant"] == "AllTraffic"
    sm.delete_endpoint(EndpointName="gone")

    def refused() -> str | None:
        try:
            runtime.invoke_endpoint(EndpointName="gone", Body=_body())
        except ClientError as exc:
            return exc.response["Error"]["Code"]
        return None

    assert wait_until(refused, 10, interval_s=0.1, what="the deleted endpoint to stop serving") == "ValidationError"
    assert "gone" not in [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]

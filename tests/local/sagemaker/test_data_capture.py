"""Data Capture records in exactly SageMaker's format, and InvokeEndpoint's request checks (no host)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re

import pytest

from infra.local.sagemaker.host.capture import capture_record
from infra.local.sagemaker.host.invocations import InvocationError, parse_invocation

WHEN = dt.datetime(2026, 6, 1, 12, 30, 5, 123456, tzinfo=dt.UTC)
REQUEST, RESPONSE = b'{"instances": []}', b'{"predictions": []}'


def test_a_record_has_exactly_the_members_sagemaker_writes():
    config = {"CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
              "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]}}
    record = capture_record(config, REQUEST, "application/json", RESPONSE, "application/json", WHEN, None)
    assert record == {
        "captureData": {
            "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                              "data": REQUEST.decode(), "encoding": "JSON"},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                               "data": RESPONSE.decode(), "encoding": "JSON"}},
        "eventMetadata": {"eventId": record["eventMetadata"]["eventId"], "inferenceTime": "2026-06-01T12:30:05Z"},
        "eventVersion": "0"}
    with_id = capture_record(config, REQUEST, "application/json", RESPONSE, "application/json", WHEN, "req-7")
    assert with_id["eventMetadata"]["inferenceId"] == "req-7"


def test_capture_options_and_content_types_decide_what_is_written_and_how():
    # no CaptureContentTypeHeader: SageMaker base64-encodes ("If no headers are specified ... base64 encode")
    record = capture_record({"CaptureOptions": [{"CaptureMode": "Input"}]}, REQUEST, "application/json",
                            RESPONSE, "application/json", WHEN, None)
    assert set(record["captureData"]) == {"endpointInput"}
    assert record["captureData"]["endpointInput"]["encoding"] == "BASE64"
    assert base64.b64decode(record["captureData"]["endpointInput"]["data"]) == REQUEST
    csv = capture_record({"CaptureOptions": [{"CaptureMode": "InputAndOutput"}],
                          "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]}},
                         b"1,2,3", "text/csv", RESPONSE, "application/json", WHEN, None)
    assert csv["captureData"]["endpointInput"] == {"observedContentType": "text/csv", "mode": "INPUT",
                                                   "data": "1,2,3", "encoding": "CSV"}
    assert csv["captureData"]["endpointOutput"]["encoding"] == "BASE64"
    assert json.dumps(csv)  # JSON lines


@pytest.mark.parametrize("name,headers,member", [
    ("bad name!", {}, "endpointName"),
    ("e", {"x-amzn-sagemaker-target-model": "x" * 1025}, "targetModel"),
    ("e", {"x-amzn-sagemaker-target-model": ""}, "targetModel"),
    ("e", {"x-amzn-sagemaker-target-variant": "no spaces"}, "targetVariant"),
    ("e", {"x-amzn-sagemaker-inference-id": " starts-with-space"}, "inferenceId"),
    ("e", {"content-type": "application/jsön"}, "contentType"),
    ("e", {"x-amzn-sagemaker-custom-attributes": "c" * 1025}, "customAttributes"),
])
def test_requests_are_checked_as_the_runtime_checks_them(name, headers, member):
    with pytest.raises(InvocationError) as info:
        parse_invocation(name, headers, b"{}")
    assert (info.value.status, info.value.code) == (400, "ValidationError")
    assert re.match(r"\d validation errors? detected: Value ", info.value.message), info.value.message
    assert f"at '{member}' failed to satisfy constraint: Member must" in info.value.message


def test_a_valid_request_keeps_the_members_it_sent():
    call = parse_invocation("aircast-forecast", {"content-type": "application/json",
                                                 "x-amzn-sagemaker-inference-id": "req-1", "user-agent": "x"}, b"{}")
    assert call.params == {"ContentType": "application/json", "InferenceId": "req-1"}

"""DeepAR inference wire format: every kind of bad request is rejected with a message naming it."""

from __future__ import annotations

import json
import math

import pytest

from infra.local.sagemaker.deepar_format import (
    DEFAULT_CONFIGURATION,
    INFERENCE_CONFIG_ENV,
    InvalidRequest,
    format_batch_line,
    format_response,
    inference_config_from_env,
    parse_batch_line,
    parse_request,
)

GOOD_INSTANCE = {"start": "2021-01-01 00:00:00", "target": [1.0, 2, "NaN", None, 4.5], "cat": [0, 1]}


def body(obj) -> bytes:
    return json.dumps(obj).encode()


def req(instance=None, configuration=None) -> bytes:
    payload: dict = {"instances": [instance if instance is not None else GOOD_INSTANCE]}
    if configuration is not None:
        payload["configuration"] = configuration
    return body(payload)


def test_good_request_is_normalised_with_defaults() -> None:
    instances, config = parse_request(req())
    assert config == DEFAULT_CONFIGURATION
    (inst,) = instances
    assert inst["start"] == "2021-01-01 00:00:00"
    assert inst["cat"] == [0, 1]
    assert inst["target"][:2] == [1.0, 2.0] and inst["target"][4] == 4.5
    assert math.isnan(inst["target"][2]) and math.isnan(inst["target"][3])


def test_good_request_with_configuration_and_dynamic_feat() -> None:
    inst = {"start": "2021-01-01", "target": [1, 2, 3], "dynamic_feat": [[0, 1, 0, 1, 0], [1, 1, 1, 1, 1]]}
    conf = {"num_samples": 7, "output_types": ["mean", "samples"], "quantiles": ["0.25", "0.75"]}
    instances, config = parse_request(req(inst, conf), prediction_length=2)
    assert instances[0]["start"] == "2021-01-01 00:00:00"
    assert instances[0]["dynamic_feat"][1] == [1.0] * 5
    assert config == conf


def test_partial_configuration_keeps_other_defaults() -> None:
    _, config = parse_request(req(configuration={"quantiles": ["0.5"]}))
    assert config["quantiles"] == ["0.5"]
    assert config["num_samples"] == 100 and config["output_types"] == ["mean", "quantiles"]


BAD_REQUESTS = [
    (b"{", "body is not valid JSON"),
    (b"", "body: empty"),
    (b"\xff\xfe", "not UTF-8"),
    (b"[1, 2]", "expected a JSON object"),
    (body({"configuration": {}}), 'missing "instances"'),
    (body({"instances": []}), "instances: empty"),
    (body({"instances": {"a": 1}}), "instances: expected a list"),
    (body({"instances": [GOOD_INSTANCE], "extra": 1}), "unknown field(s) ['extra']"),
    (body({"instances": [5]}), "instances[0]: expected a JSON object"),
    (req({"start": "2021-01-01", "target": [1], "cats": [1]}), "instances[0]: unknown field(s) ['cats']"),
    (req({"target": [1, 2]}), "instances[0].start: missing"),
    (req({"start": 20210101, "target": [1]}), "instances[0].start: expected a timestamp string"),
    (req({"start": "yesterday", "target": [1]}), "instances[0].start: 'yesterday' is not a timestamp"),
    (req({"start": "2021-02-30 00:00:00", "target": [1]}), "is not a valid date and time"),
    (req({"start": "2021-01-01 25:00:00", "target": [1]}), "is not a valid date and time"),
    (req({"start": "2021-01-01"}), "instances[0].target: missing"),
    (req({"start": "2021-01-01", "target": []}), "instances[0].target: empty"),
    (req({"start": "2021-01-01", "target": "1,2"}), "instances[0].target: expected a list"),
    (req({"start": "2021-01-01", "target": [1, 2, 3, "abc"]}), "instances[0].target[3]: 'abc' is not a number or \"NaN\""),
    (req({"start": "2021-01-01", "target": [True]}), "instances[0].target[0]: True is not a number"),
    (req({"start": "2021-01-01", "target": [[1]]}), "instances[0].target[0]: [1] is not a number"),
    (b'{"instances": [{"start": "2021-01-01", "target": [1, Infinity]}]}', "Infinity is not allowed"),
    (req({"start": "2021-01-01", "target": [1], "cat": [1.5]}), "instances[0].cat[0]: 1.5 is not a non-negative integer"),
    (req({"start": "2021-01-01", "target": [1], "cat": ["a"]}), "instances[0].cat[0]: 'a' is not a non-negative integer"),
    (req({"start": "2021-01-01", "target": [1], "cat": [-1]}), "instances[0].cat[0]: -1 is not a non-negative integer"),
    (req({"start": "2021-01-01", "target": [1], "cat": 3}), "instances[0].cat: expected a list"),
    (req({"start": "2021-01-01", "target": [1, 2], "dynamic_feat": [1, 2]}), "dynamic_feat: expected a list of lists"),
    (req({"start": "2021-01-01", "target": [1, 2], "dynamic_feat": [[1]]}), "dynamic_feat[0]: has 1 values, fewer than"),
    (req({"start": "2021-01-01", "target": [1, 2], "dynamic_feat": [[1, 2, 3], [1, 2]]}), "dynamic_feat[1]: has 2 values but"),
    (req({"start": "2021-01-01", "target": [1, 2], "dynamic_feat": [[1, "NaN"]]}), "dynamic_feat[0][1]: missing values"),
    (req({"start": "2021-01-01", "target": [1, 2], "dynamic_feat": [[1, "x"]]}), "dynamic_feat[0][1]: 'x' is not a number"),
    (req(configuration=[1]), "configuration: expected a JSON object"),
    (req(configuration={"num_sample": 5}), "configuration: unknown field(s) ['num_sample']"),
    (req(configuration={"output_types": ["median"]}), "output_types[0]: unknown output type 'median'"),
    (req(configuration={"output_types": []}), "output_types: expected a non-empty list"),
    (req(configuration={"output_types": ["mean", "mean"]}), "repeats a type"),
    (req(configuration={"quantiles": [0.5]}), "quantiles[0]: 0.5 must be a string"),
    (req(configuration={"quantiles": ["1.5"]}), "quantiles[0]: '1.5' is not strictly between 0 and 1"),
    (req(configuration={"quantiles": ["0"]}), "is not strictly between 0 and 1"),
    (req(configuration={"quantiles": ["half"]}), "quantiles[0]: 'half' is not a number"),
    (req(configuration={"quantiles": ["0.5", "0.5"]}), "repeats a quantile"),
    (req(configuration={"quantiles": []}), 'empty, but output_types asks for "quantiles"'),
    (req(configuration={"num_samples": 0}), "num_samples: 0 is out of range 1..1000"),
    (req(configuration={"num_samples": 1001}), "num_samples: 1001 is out of range"),
    (req(configuration={"num_samples": "100"}), "num_samples: '100' is not an integer"),
    (req(configuration={"num_samples": 10.0}), "num_samples: 10.0 is not an integer"),
]


@pytest.mark.parametrize(("payload", "message"), BAD_REQUESTS, ids=[m for _, m in BAD_REQUESTS])
def test_bad_requests_are_rejected_with_a_precise_message(payload: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_request(payload)
    assert message in str(info.value)


def test_body_over_the_limit_is_rejected() -> None:
    payload = req({"start": "2021-01-01", "target": [1.0] * 1000})
    parse_request(payload, max_bytes=len(payload))
    with pytest.raises(InvalidRequest, match=f"{len(payload)} bytes exceeds the limit of 100 bytes"):
        parse_request(payload, max_bytes=100)


def test_dynamic_feat_must_cover_the_horizon_when_known() -> None:
    inst = {"start": "2021-01-01", "target": [1, 2], "dynamic_feat": [[1, 2, 3]]}
    with pytest.raises(InvalidRequest, match="expected len\\(target\\) \\+ prediction_length = 4"):
        parse_request(req(inst), prediction_length=2)


def test_inference_config_from_env() -> None:
    assert inference_config_from_env({}) == DEFAULT_CONFIGURATION
    conf = {"num_samples": 50, "output_types": ["quantiles"], "quantiles": ["0.1", "0.5", "0.9"]}
    assert inference_config_from_env({INFERENCE_CONFIG_ENV: json.dumps(conf)}) == conf
    with pytest.raises(InvalidRequest, match="DEEPAR_INFERENCE_CONFIG.num_samples"):
        inference_config_from_env({INFERENCE_CONFIG_ENV: '{"num_samples": -1}'})
    with pytest.raises(InvalidRequest, match="DEEPAR_INFERENCE_CONFIG is not valid JSON"):
        inference_config_from_env({INFERENCE_CONFIG_ENV: "{num_samples: 1}"})


def test_batch_lines_round_trip() -> None:
    inst = parse_batch_line(b'{"start": "2021-01-01 03:00:00", "target": [1, "NaN"], "cat": [2, 0]}', 3)
    assert inst["cat"] == [2, 0] and math.isnan(inst["target"][1])
    with pytest.raises(InvalidRequest, match="line 7.target\\[0\\]"):
        parse_batch_line('{"start": "2021-01-01", "target": ["x"]}', 7)
    line = format_batch_line({"mean": [1.0, 2.0], "quantiles": {"0.5": [1.0, 2.0]}})
    assert line.endswith(b"\n") and json.loads(line) == {"mean": [1.0, 2.0], "quantiles": {"0.5": [1.0, 2.0]}}


def test_format_response_encodes_numpy_and_nan() -> None:
    np = pytest.importorskip("numpy")
    out = json.loads(format_response([{"mean": np.array([1.5, np.nan]), "quantiles": {"0.1": np.zeros(2)}}]))
    assert out == {"predictions": [{"mean": [1.5, "NaN"], "quantiles": {"0.1": [0.0, 0.0]}}]}

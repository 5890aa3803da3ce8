"""No client mistake makes the endpoint host answer 5xx: property-based requests (paths, methods,
SageMaker Runtime headers, bodies) against a real host, each answered 2xx or a 4xx in the Runtime
API's error shape (``x-amzn-ErrorType`` + a JSON message), and the host keeps serving."""

from __future__ import annotations

import http.client
import json
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.local.sagemaker.helpers import create_endpoint
from tests.local.sagemaker.host_fixtures import request_body

pytestmark = pytest.mark.slow

ENDPOINT = "fuzz"
HEADERS = ("Content-Type", "Accept", "X-Amzn-SageMaker-Target-Model", "X-Amzn-SageMaker-Target-Variant",
           "X-Amzn-SageMaker-Inference-Id", "X-Amzn-SageMaker-Custom-Attributes",
           "X-Amzn-SageMaker-Target-Container-Hostname", "X-Amzn-SageMaker-Session-Id",
           "X-Amzn-SageMaker-Enable-Explanations", "X-Amzn-SageMaker-Inference-Component")
# what http.client can put in a header value: latin-1, no line breaks
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=1100)
json_values = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                        max_size=4), max_leaves=12)


def _mutated_request(draw: st.DrawFn) -> bytes:
    """A DeepAR request with one part replaced by something arbitrary."""
    request = json.loads(request_body(num_samples=5))
    where = draw(st.sampled_from(["instances", "configuration", "target", "start", "cat", "num_samples",
                                  "output_types", "quantiles", "none"]))
    value = draw(json_values)
    if where in ("instances", "configuration"):
        request[where] = value
    elif where in ("target", "start", "cat"):
        request["instances"][0][where] = value
    elif where != "none":
        request["configuration"][where] = value
    return json.dumps(request).encode()


@st.composite
def invocations(draw: st.DrawFn) -> tuple[str, str, dict[str, str], bytes]:
    name = draw(st.sampled_from([ENDPOINT, ENDPOINT, "nope", "x" * 64, "-bad", "a b", "ü"]) | st.text(max_size=70))
    path = draw(st.sampled_from([f"/endpoints/{urllib.parse.quote(name, safe='')}/invocations"] * 4
                                + ["/", "/endpoints", f"/endpoints/{ENDPOINT}", "/ping/../metrics", "/invocations"]))
    method = draw(st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE", "PATCH"]))
    chosen = draw(st.lists(st.sampled_from(HEADERS), unique=True, max_size=3))
    headers = {h: draw(st.sampled_from(["", "application/json", "AllTraffic", "model.tar.gz", "x" * 1025])
                       | header_text) for h in chosen}
    body = draw(st.one_of(st.binary(max_size=2000), json_values.map(lambda v: json.dumps(v).encode()),
                          st.just(request_body(num_samples=5)), st.composite(_mutated_request)()))
    return method, path, headers, body


@pytest.fixture(scope="module")
def fuzz_endpoint(sm, host, model_url) -> str:
    create_endpoint(sm, ENDPOINT, model_url)
    return ENDPOINT


def _send(port: int, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(call=invocations())
def test_no_client_error_is_a_5xx(host, fuzz_endpoint, call) -> None:
    method, path, headers, body = call
    status, answer_headers, data = _send(host.port, method, path, headers, body)
    assert status < 500, (status, method, path, headers, body[:200], data[:300])
    if status >= 400:
        assert answer_headers.get("x-amzn-errortype"), (status, path, headers, data[:200])
        if method != "HEAD":
            message = json.loads(data)
            assert message.get("message") or message.get("Message"), data[:200]


def test_the_host_still_serves_after_the_fuzzing(host, fuzz_endpoint) -> None:
    status, headers, data = _send(host.port, "POST", f"/endpoints/{ENDPOINT}/invocations",
                                  {"Content-Type": "application/json"}, request_body(num_samples=5))
    assert status == 200 and headers["x-amzn-invoked-production-variant"] == "AllTraffic", data[:200]

"""Test helpers: a bounded loopback load generator and endpoint setup through the control plane."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from deployment.deploy import wait_for_endpoint

ROLE = "arn:aws:iam::000000000000:role/aircast-sagemaker-execution"


@dataclass
class Result:
    time: float
    status: int
    variant: str | None
    body: bytes


@dataclass
class LoadClient:
    """``threads`` loopback clients invoking one endpoint back to back (bounded load)."""

    port: int
    endpoint: str
    body: bytes
    threads: int = 2
    results: list[Result] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self._stop.is_set():
            try:
                conn.request("POST", f"/endpoints/{self.endpoint}/invocations", body=self.body,
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                self.results.append(Result(time.time(), resp.status,
                                           resp.getheader("X-Amzn-Invoked-Production-Variant"), data))
            except OSError as exc:  # a refused/reset connection is a failed request too
                self.results.append(Result(time.time(), 0, None, str(exc).encode()))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.close()

    def __enter__(self) -> LoadClient:
        for _ in range(self.threads):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=60)

    def failures(self) -> list[Result]:
        return [r for r in self.results if r.status != 200]


def create_endpoint(sm: Any, name: str, model_data_url: str, environment: dict[str, str] | None = None,
                    timeout_s: float = 120, data_capture: dict[str, Any] | None = None) -> dict[str, Any]:
    """Model → config → endpoint through the control plane; waits until InService."""
    model = create_model_and_config(sm, name + "-blue", model_data_url, environment, data_capture=data_capture)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=model)
    desc = wait_for_endpoint(sm, name, timeout_s)
    assert desc["EndpointStatus"] == "InService", desc
    return desc


def create_model_and_config(sm: Any, name: str, model_data_url: str,
                            environment: dict[str, str] | None = None, variant: str = "AllTraffic",
                            instance_count: int = 1, data_capture: dict[str, Any] | None = None) -> str:
    """A model and a one-variant endpoint config of ``instance_count`` instances (nominal locally; a
    canary of 20% needs 5, as on AWS)."""
    container: dict[str, Any] = {"Image": "local/deepar:1", "ModelDataUrl": model_data_url}
    if environment:
        container["Environment"] = environment
    sm.create_model(ModelName=name, PrimaryContainer=container, ExecutionRoleArn=ROLE)
    extra = {"DataCaptureConfig": data_capture} if data_capture else {}
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
        {"VariantName": variant, "ModelName": name, "InitialInstanceCount": instance_count,
         "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0}], **extra)
    return name


def scrape(url: str) -> list[tuple[str, dict[str, str], float]]:
    """The samples of the host's ``GET /metrics`` (name, labels, value), parsed as Prometheus parses them."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"{url}/metrics").read().decode()
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def has_sample(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> bool:
    """Whether a sample of ``name`` carries all of ``labels``."""
    return any(n == name and labels.items() <= have.items() for n, have, _ in samples)

"""Endpoint host overhead: the same DeepAR requests through the host (HTTP, SageMaker Runtime path)
and in-process (parse → predict → format), interleaved so machine load affects both alike.

``python -m bench.endpoint [--requests 60] [--cheap-requests 200] [--clients 4] [--model model.tar.gz]``
trains a tiny DeepAR model (unless ``--model`` is given), starts the endpoint host on a free port in a
temporary data dir and creates an endpoint. Three measurements:

- a realistic request (one series, ``num_samples`` 100): ``p50_ms``, ``p99_ms``, ``rps``,
  ``inprocess_p50_ms`` and ``overhead_ratio_p50`` (goal ≤ 1.3). About 100 ms of model work per
  request hides the host's own cost, so this ratio alone cannot fail on the host's account.
- a cheap request to a second, small model (8 cells, 5 parallel samples of 6 hours, a 24-point
  history, the mean only: a few ms of model work), where the host's cost shows: ``added_p50_ms`` / ``added_p99_ms`` = the host's percentile minus the
  in-process percentile of the same requests (goal: ``added_p50_ms`` ≤ 5).
- ``clients`` concurrent clients (one keep-alive connection each) sending the cheap request:
  ``concurrent_rps``, beside ``cheap_rps`` of one client.

Writes ``bench/out/endpoint.png`` and prints, as its last line, one JSON object with those keys.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from bench import pyplot

REPO_ROOT = Path(__file__).resolve().parents[1]


def _log(message: str) -> None:
    print(f"[bench.endpoint] {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _series(length: int = 168) -> list[dict]:
    return [{"start": "2024-01-01 00:00:00", "cat": [i],
             "target": [round(60 + 25 * math.sin(2 * math.pi * (t + 5 * i) / 24) + 3 * i, 3) for t in range(length)]}
            for i in range(3)]


REALISTIC = {"context_length": "48", "prediction_length": "24", "num_cells": "20", "num_layers": "2"}
#: little model work per request: GluonTS draws num_eval_samples paths in parallel whatever num_samples asks
CHEAP = {"context_length": "12", "prediction_length": "6", "num_cells": "8", "num_layers": "1",
         "num_eval_samples": "5"}


def train_tiny_model(root: Path, shape: dict[str, str] = REALISTIC) -> Path:
    """A one-epoch hourly DeepAR model of ``shape`` packed as model.tar.gz."""
    from infra.local.sagemaker.deepar import train

    (root / "train").mkdir(parents=True)
    (root / "train" / "train.json").write_text("".join(json.dumps(s) + "\n" for s in _series()))
    train({"time_freq": "H", "epochs": "1", "mini_batch_size": "32", "cardinality": "auto", **shape},
          {"train": root / "train"}, root / "model", progress=False)
    tarball = root / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for path in sorted((root / "model").iterdir()):
            tar.add(path, arcname=path.name)
    return tarball


def request_body() -> bytes:
    s = _series()[0]
    return json.dumps({"instances": [{"start": s["start"], "target": s["target"][:120], "cat": s["cat"]}],
                       "configuration": {"num_samples": 100, "output_types": ["mean", "quantiles"],
                                         "quantiles": ["0.1", "0.5", "0.9"]}}).encode()


def cheap_request_body() -> bytes:
    """Little model work (a short history, 5 samples of 6 hours from a small net, the mean only): what is
    left is the host's cost."""
    s = _series()[0]
    return json.dumps({"instances": [{"start": s["start"], "target": s["target"][:24], "cat": s["cat"]}],
                       "configuration": {"num_samples": 5, "output_types": ["mean"]}}).encode()


def _pct(values_s: list[float], q: float) -> float:
    return round(float(np.percentile(np.array(values_s) * 1000, q)), 2)


def concurrent_rps(port: int, body: bytes, clients: int, per_client: int, endpoint: str = "cheap") -> float:
    """Requests per second of ``clients`` threads, each on its own keep-alive connection."""
    import threading

    errors: list[str] = []
    start = threading.Barrier(clients + 1)

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        start.wait()
        for _ in range(per_client):
            conn.request("POST", f"/endpoints/{endpoint}/invocations", body=body,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                errors.append(f"{resp.status}")
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} concurrent requests failed: {errors[:5]}")
    return round(clients * per_client / elapsed, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=60, help="measured requests per path")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--cheap-requests", type=int, default=200, help="measured cheap requests per path")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients for concurrent_rps")
    parser.add_argument("--model", type=Path, help="an existing DeepAR model.tar.gz (default: train a tiny one)")
    args = parser.parse_args(argv)

    from aircast.settings import load_settings
    from infra.local.sagemaker.client import LocalSageMakerClient
    from infra.local.sagemaker.deepar import DeepARPredictor
    from infra.local.sagemaker.deepar_format import format_response, parse_request

    work = Path(tempfile.mkdtemp(prefix="aircast-bench-endpoint-"))
    settings = load_settings(data_dir=work / "data", endpoint_port=_free_port())
    if args.model:
        tarball = args.model
    else:
        _log("training a tiny DeepAR model (1 epoch)")
        tarball = train_tiny_model(work / "train")
    _log("training a cheap DeepAR model (1 epoch, 8 cells, 5 parallel samples, 6 hours ahead)")
    cheap_tarball = train_tiny_model(work / "train-cheap", CHEAP)
    for key, source in (("bench/model.tar.gz", tarball), ("bench/cheap.tar.gz", cheap_tarball)):
        dest = settings.s3_root / settings.artifacts_bucket / key
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(Path(source).read_bytes())

    _log(f"starting the endpoint host on port {settings.endpoint_port}")
    log = open(work / "host.log", "wb")
    host = subprocess.Popen([sys.executable, "-m", "infra.local.sagemaker.host", *settings.local_config().argv(),
                             "--port", str(settings.endpoint_port)], cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{settings.endpoint_url}/ping", timeout=1).read()
                break
            except OSError:
                if host.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"endpoint host did not start; see {work / 'host.log'}") from None
                time.sleep(0.2)
        sm = LocalSageMakerClient(settings.local_config())
        from deployment.deploy import wait_for_endpoint

        for name, key in (("bench", "bench/model.tar.gz"), ("cheap", "bench/cheap.tar.gz")):
            sm.create_model(ModelName=name, PrimaryContainer={
                "Image": "local/deepar:1", "ModelDataUrl": f"s3://{settings.artifacts_bucket}/{key}"})
            sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[
                {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": 1}])
            sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
            desc = wait_for_endpoint(sm, name, 300)
            if desc["EndpointStatus"] != "InService":
                raise RuntimeError(f"endpoint {name} failed: {desc.get('FailureReason')}")

        predictor = DeepARPredictor.from_tarball(Path(tarball), work / "inprocess-model")
        cheap_predictor = DeepARPredictor.from_tarball(cheap_tarball, work / "inprocess-cheap")
        body = request_body()
        conn = http.client.HTTPConnection("127.0.0.1", settings.endpoint_port, timeout=60)

        def via_host(body: bytes = body, endpoint: str = "bench") -> float:
            started = time.perf_counter()
            conn.request("POST", f"/endpoints/{endpoint}/invocations", body=body,
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"host answered {resp.status}: {data[:200]!r}")
            return time.perf_counter() - started

        def in_process(body: bytes = body, model: Any = predictor) -> float:
            started = time.perf_counter()
            instances, configuration = parse_request(body, prediction_length=model.prediction_length)
            format_response(model.predict(instances, configuration))
            return time.perf_counter() - started

        for _ in range(args.warmup):
            via_host()
            in_process()
        _log(f"measuring {args.requests} requests per path (interleaved)")
        host_s, local_s = [], []
        host_total = 0.0
        for i in range(args.requests):
            t = via_host()
            host_s.append(t)
            host_total += t
            local_s.append(in_process())
            if (i + 1) % 20 == 0:
                _log(f"{i + 1}/{args.requests}")

        cheap = cheap_request_body()
        for _ in range(args.warmup):
            via_host(cheap, "cheap")
            in_process(cheap, cheap_predictor)
        _log(f"measuring {args.cheap_requests} cheap requests per path (interleaved)")
        cheap_host, cheap_local = [], []
        for _ in range(args.cheap_requests):
            cheap_host.append(via_host(cheap, "cheap"))
            cheap_local.append(in_process(cheap, cheap_predictor))
        conn.close()
        _log(f"{args.clients} concurrent clients, {args.cheap_requests} cheap requests each")
        parallel_rps = concurrent_rps(settings.endpoint_port, cheap, args.clients, args.cheap_requests)
    finally:
        host.terminate()
        try:
            host.wait(timeout=10)
        except subprocess.TimeoutExpired:
            host.kill()

    host_ms, local_ms = np.array(host_s) * 1000, np.array(local_s) * 1000
    result = {"p50_ms": round(float(np.percentile(host_ms, 50)), 2), "p99_ms": round(float(np.percentile(host_ms, 99)), 2),
              "rps": round(len(host_s) / host_total, 2),
              "inprocess_p50_ms": round(float(np.percentile(local_ms, 50)), 2)}
    result["overhead_ratio_p50"] = round(result["p50_ms"] / result["inprocess_p50_ms"], 3)
    result.update(cheap_p50_ms=_pct(cheap_host, 50), cheap_inprocess_p50_ms=_pct(cheap_local, 50),
                  added_p50_ms=round(_pct(cheap_host, 50) - _pct(cheap_local, 50), 2),
                  added_p99_ms=round(_pct(cheap_host, 99) - _pct(cheap_local, 99), 2),
                  cheap_rps=round(len(cheap_host) / sum(cheap_host), 1),
                  concurrent_rps=parallel_rps, clients=args.clients)
    try:
        plt = pyplot()
        out = REPO_ROOT / "bench" / "out"
        out.mkdir(parents=True, exist_ok=True)
        fig, (ax, ax2) = plt.subplots(1, 2, figsize=(12, 4))
        bins = np.linspace(0, max(host_ms.max(), local_ms.max()) * 1.05, 40)
        ax.hist(local_ms, bins=bins, alpha=0.6, label=f"in-process (p50 {result['inprocess_p50_ms']} ms)")
        ax.hist(host_ms, bins=bins, alpha=0.6, label=f"endpoint host (p50 {result['p50_ms']} ms)")
        ax.set_xlabel("latency per request (ms), 1 series, num_samples 100")
        ax.set_ylabel("requests")
        ax.set_title(f"realistic request: host/in-process at p50 x{result['overhead_ratio_p50']}")
        ax.legend()
        cheap_host_ms, cheap_local_ms = np.array(cheap_host) * 1000, np.array(cheap_local) * 1000
        bins = np.linspace(0, np.percentile(cheap_host_ms, 99.5) * 1.1, 50)
        ax2.hist(cheap_local_ms, bins=bins, alpha=0.6, label=f"in-process (p50 {result['cheap_inprocess_p50_ms']} ms)")
        ax2.hist(cheap_host_ms, bins=bins, alpha=0.6, label=f"endpoint host (p50 {result['cheap_p50_ms']} ms)")
        ax2.set_xlabel("latency per request (ms), a small net, 24 points, 5 samples of 6 h, mean only")
        ax2.set_title(f"cheap request: the host adds {result['added_p50_ms']} ms at p50 "
                      f"({result['clients']} clients: {result['concurrent_rps']} rps)")
        ax2.legend()
        fig.tight_layout()
        fig.savefig(out / "endpoint.png", dpi=120)
        _log(f"plot: {out / 'endpoint.png'}")
    except Exception as exc:  # the plot is a convenience; the numbers are the result
        _log(f"no plot: {exc}")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

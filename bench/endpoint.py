"""Endpoint host overhead: one series, ``num_samples`` 100, through the host vs in-process.

``python -m bench.endpoint [--requests 60] [--model model.tar.gz]`` trains a tiny DeepAR model
(unless ``--model`` is given), starts the endpoint host on a free port in a temporary data dir,
creates an endpoint, then sends the same DeepAR request through HTTP (SageMaker Runtime path) and
calls the same prediction in-process (parse → predict → format), interleaving the two so machine
load affects both alike. Writes ``bench/out/endpoint.png`` (latency distributions) and prints, as
its last line, one JSON object: ``p50_ms, p99_ms, rps, inprocess_p50_ms, overhead_ratio_p50``.
Goal: ``overhead_ratio_p50`` ≤ 1.3.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from pathlib import Path

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


def train_tiny_model(root: Path) -> Path:
    """A one-epoch DeepAR model (hourly, prediction length 24) packed as model.tar.gz."""
    from infra.local.sagemaker.deepar import train

    (root / "train").mkdir(parents=True)
    (root / "train" / "train.json").write_text("".join(json.dumps(s) + "\n" for s in _series()))
    train({"time_freq": "H", "context_length": "48", "prediction_length": "24", "epochs": "1", "num_cells": "20",
           "num_layers": "2", "mini_batch_size": "32", "cardinality": "auto"},
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=60, help="measured requests per path")
    parser.add_argument("--warmup", type=int, default=5)
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
    key = "bench/model.tar.gz"
    dest = settings.s3_root / settings.artifacts_bucket / key
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(Path(tarball).read_bytes())

    _log(f"starting the endpoint host on port {settings.endpoint_port}")
    env = {**os.environ, "AIRCAST_DATA_DIR": str(settings.data_dir), "AIRCAST_ENDPOINT_PORT": str(settings.endpoint_port)}
    log = open(work / "host.log", "wb")
    host = subprocess.Popen([sys.executable, "-m", "infra.local.sagemaker.host"], cwd=REPO_ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
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
        sm = LocalSageMakerClient(settings)
        sm.create_model(ModelName="bench", PrimaryContainer={"Image": "local/deepar:1",
                                                             "ModelDataUrl": f"s3://{settings.artifacts_bucket}/{key}"})
        sm.create_endpoint_config(EndpointConfigName="bench", ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "bench", "InitialInstanceCount": 1}])
        sm.create_endpoint(EndpointName="bench", EndpointConfigName="bench")
        from deployment.deploy import wait_for_endpoint

        desc = wait_for_endpoint(sm, "bench", 120)
        if desc["EndpointStatus"] != "InService":
            raise RuntimeError(f"endpoint failed: {desc.get('FailureReason')}")

        predictor = DeepARPredictor.from_tarball(Path(tarball), work / "inprocess-model")
        body = request_body()
        conn = http.client.HTTPConnection("127.0.0.1", settings.endpoint_port, timeout=60)

        def via_host() -> float:
            started = time.perf_counter()
            conn.request("POST", "/endpoints/bench/invocations", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"host answered {resp.status}: {data[:200]!r}")
            return time.perf_counter() - started

        def in_process() -> float:
            started = time.perf_counter()
            instances, configuration = parse_request(body, prediction_length=predictor.prediction_length)
            format_response(predictor.predict(instances, configuration))
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
        conn.close()
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
    try:
        plt = pyplot()
        out = REPO_ROOT / "bench" / "out"
        out.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(7, 4))
        bins = np.linspace(0, max(host_ms.max(), local_ms.max()) * 1.05, 40)
        ax.hist(local_ms, bins=bins, alpha=0.6, label=f"in-process (p50 {result['inprocess_p50_ms']} ms)")
        ax.hist(host_ms, bins=bins, alpha=0.6, label=f"endpoint host (p50 {result['p50_ms']} ms)")
        ax.set_xlabel("latency per request (ms), 1 series, num_samples 100")
        ax.set_ylabel("requests")
        ax.set_title(f"endpoint host overhead at p50: x{result['overhead_ratio_p50']}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "endpoint.png", dpi=120)
        _log(f"plot: {out / 'endpoint.png'}")
    except Exception as exc:  # the plot is a convenience; the numbers are the result
        _log(f"no plot: {exc}")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

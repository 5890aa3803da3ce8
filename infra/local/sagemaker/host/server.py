"""The endpoint host: SageMaker Runtime's HTTP API over the fleets the reconciler keeps.

:class:`EndpointHost` ties the parts together: the reconciler (:mod:`.reconciler`) in a background loop
that also flushes the one-minute metrics to the local CloudWatch, the routing of each invocation
(:mod:`.routing`), its metrics (:mod:`.metrics`) and its Data Capture record (:mod:`.capture`).
:func:`create_app` is the FastAPI app over it; :func:`serve` runs it with uvicorn.
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import threading
import time
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4

from infra.local.core.config import LocalConfig
from infra.local.sagemaker.cloudwatch import Sample, write_minutes
from infra.local.sagemaker.deepar_format import DEFAULT_MAX_BYTES
from infra.local.sagemaker.endpoints import EndpointStore
from infra.local.sagemaker.host.capture import DataCaptureWriter, capture_record
from infra.local.sagemaker.host.invocations import (
    Invocation,
    InvocationError,
    body_too_large,
    endpoint_not_found,
    parse_invocation,
    unsupported_member,
)
from infra.local.sagemaker.host.metrics import Metrics, exposition
from infra.local.sagemaker.host.reconciler import ModelCache, Reconciler
from infra.local.sagemaker.host.routing import Fleet, LiveEndpoint, VariantRuntime, run_model

log = logging.getLogger("aircast.endpoint_host")

POLL_INTERVAL_S = 0.1
METRICS_FLUSH_S = 1.0  # how often the one-minute aggregates reach the local CloudWatch store


def _preload_deepar() -> None:
    try:
        import infra.local.sagemaker.deepar  # noqa: F401
    except Exception as exc:  # loading a model later reports the real error
        log.warning("preloading DeepAR failed: %s", exc)


class EndpointHost:
    """Serves every endpoint in the control plane and executes their deployments."""

    def __init__(self, config: LocalConfig, max_body_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.config = config
        self.store = EndpointStore(config.data_dir)
        self.models = ModelCache(config)
        self.metrics = Metrics()
        self.capture = DataCaptureWriter(config)
        self.max_body_bytes = max_body_bytes
        self.endpoints: dict[str, LiveEndpoint] = {}
        self.reconciler = Reconciler(config, self.store, self.models, self.metrics, self.endpoints)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        # import torch/GluonTS in the background: the first model load is then much quicker
        threading.Thread(target=_preload_deepar, name="preload", daemon=True).start()
        self._thread = threading.Thread(target=self._background, name="reconciler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        write_minutes(self.store, self.metrics.drain_minutes())
        self.capture.flush()
        self.capture.close()

    def _background(self) -> None:
        flushed = time.monotonic()
        while not self._stop.is_set():
            try:
                self.reconciler.reconcile_once()
                if time.monotonic() - flushed >= METRICS_FLUSH_S:
                    flushed = time.monotonic()
                    write_minutes(self.store, self.metrics.drain_minutes())
            except Exception:  # keep serving whatever happens to one poll
                log.exception("reconcile failed")
            self._stop.wait(POLL_INTERVAL_S)

    # ---- invocations -----------------------------------------------------------------------
    def invoke(self, call: Invocation) -> tuple[bytes, str, str]:
        """One InvokeEndpoint: (response body, content type, invoked variant) or InvocationError."""
        name, params = call.endpoint, call.params
        if self._stop.is_set():
            raise InvocationError(503, "ServiceUnavailable", "The endpoint host is shutting down; retry shortly.")
        live = self.endpoints.get(name)
        if live is None:
            raise endpoint_not_found(name, self.config.account_id)
        if len(call.body) > self.max_body_bytes:
            raise body_too_large(len(call.body), self.max_body_bytes)
        unsupported = unsupported_member(name, params)
        if unsupported:
            raise InvocationError.validation(unsupported)
        fleet, variant = live.route(params.get("TargetVariant"))
        content_type = params.get("ContentType") or "application/json"
        started = time.perf_counter()
        try:
            response = run_model(variant, call.body, content_type, self.max_body_bytes)
        except InvocationError as exc:
            if exc.outcome is not None:  # a variant's invocation that failed: counts in its metrics
                self._record(name, fleet, variant, started, exc.outcome)
            raise
        self._record(name, fleet, variant, started, "ok")
        when = dt.datetime.now(dt.UTC)
        path = self.capture.destination(fleet.data_capture, name, variant.name, when)
        if path is not None and fleet.data_capture:
            self.capture.submit(path, capture_record(fleet.data_capture, call.body, content_type, response,
                                                     "application/json", when, params.get("InferenceId")))
        return response, "application/json", variant.name

    def _record(self, name: str, fleet: Fleet, variant: VariantRuntime, started: float, outcome: str) -> None:
        latency_us = (time.perf_counter() - started) * 1e6
        self.metrics.record(name, fleet.config_name, variant.name, Sample(time.time(), latency_us, outcome))

    def prometheus_text(self) -> bytes:
        """``GET /metrics``: per-variant counters, latency percentiles (ms) and traffic shares."""
        return exposition(self.metrics, self.endpoints)


# ---------------------------------------------------------------------------- HTTP


def create_app(host: EndpointHost) -> Any:
    """The FastAPI app over an :class:`EndpointHost`."""
    app = FastAPI(title="aircast local SageMaker Runtime", docs_url=None, redoc_url=None, openapi_url=None)

    def error_response(err: InvocationError) -> Response:
        return JSONResponse(err.body(), status_code=err.status, headers={"x-amzn-ErrorType": err.code})

    @app.post("/endpoints/{name}/invocations")
    async def invocations(name: str, request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and not declared.isdigit():
            return error_response(InvocationError.validation(f"Content-Length {declared!r} is not a number of bytes"))
        if declared and int(declared) > host.max_body_bytes:
            return error_response(body_too_large(declared, host.max_body_bytes))
        try:
            body = await _read_body(request, host.max_body_bytes)
            call = parse_invocation(name, request.headers, body)
            data, ctype, variant = await to_thread.run_sync(host.invoke, call)
        except InvocationError as err:
            return error_response(err)
        except Exception as exc:  # a bug of the host, never a client's mistake; the server keeps serving
            log.exception("invocation of %s failed", name)
            return JSONResponse({"message": f"internal failure: {exc}"}, status_code=500,
                                headers={"x-amzn-ErrorType": "InternalFailure"})
        return Response(content=data, media_type=ctype, headers={"X-Amzn-Invoked-Production-Variant": variant})

    @app.get("/ping")
    async def ping() -> Response:
        return JSONResponse({"status": "healthy", "endpoints": sorted(host.endpoints)})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(host.prometheus_text(), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
    async def not_found(path: str) -> Response:
        return JSONResponse({"message": f"unknown path /{path}; use POST /endpoints/NAME/invocations"},
                            status_code=404, headers={"x-amzn-ErrorType": "UnknownOperationException"})

    return app


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it passes ``limit`` bytes (a chunked body declares no length)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit, limit, more=True)
        chunks.append(chunk)
    return b"".join(chunks)


def listening_socket(bind: str, port: int) -> socket.socket:
    """A bound TCP socket for the server. Its protocol is named (IPPROTO_TCP): asyncio sets TCP_NODELAY
    only on connections whose socket says TCP, and without it a response's header and body writes wait
    on the client's delayed ACK (40 ms added to every small request)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((bind, port))
    return sock


def serve(config: LocalConfig, port: int, bind: str = "127.0.0.1") -> None:
    """Serve the SageMaker Runtime API on ``bind``:``port`` (0: any free port, reported in the run dir)
    until interrupted."""
    import uvicorn

    from infra.local.sagemaker.service import NAME
    from infra.local.stack import write_bound_port

    # bind first: with port 0 the port the kernel chose is reported before the first request can come
    sock = listening_socket(bind, port)
    port = sock.getsockname()[1]
    host = EndpointHost(config)
    host.start()
    server = uvicorn.Server(uvicorn.Config(create_app(host), log_level="warning", access_log=False,
                                           # clients (boto3, load generators) keep connections open
                                           timeout_keep_alive=75))
    print(f"endpoint host on http://{bind}:{port} (data dir {config.data_dir}, clock scale {config.clock_scale:g})",
          flush=True)
    write_bound_port(config.run_dir, NAME, port)
    try:
        server.run(sockets=[sock])
    finally:
        host.stop()

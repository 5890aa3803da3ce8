"""SageMaker Data Capture: the records an endpoint config with a ``DataCaptureConfig`` writes.

Successful invocations are captured as SageMaker Data Capture does: JSON lines under
``<DestinationS3Uri>/<endpoint>/<variant>/YYYY/MM/DD/HH/*.jsonl`` holding exactly AWS's members
(``captureData.endpointInput``/``endpointOutput`` with ``observedContentType``, ``mode``, ``data``,
``encoding``; ``eventMetadata`` with ``eventId``, ``inferenceTime`` and ``inferenceId`` when the caller
sent one; ``eventVersion``), the modes its ``CaptureOptions`` name, ``JSON``/``CSV`` encoding for the
content types its ``CaptureContentTypeHeader`` lists and ``BASE64`` for the rest, sampled at
``InitialSamplingPercentage``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import logging
import queue
import random
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infra.local.core.config import LocalConfig
from infra.local.core.poll import PollTimeout, poll_until
from infra.local.s3 import uri_to_path

log = logging.getLogger("aircast.endpoint_host")


class DataCaptureWriter:
    """Writes Data Capture JSON lines from a background thread (keeps file I/O off the request path)."""

    def __init__(self, config: LocalConfig) -> None:
        self.config = config
        self.run_id = uuid.uuid4().hex[:8]
        self._queue: queue.Queue[tuple[Path, str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="data-capture", daemon=True)
        self._thread.start()

    def destination(self, capture: Mapping[str, Any] | None, endpoint: str, variant: str,
                    when: dt.datetime) -> Path | None:
        """Where this invocation's record goes under the endpoint config's ``capture`` settings, or None when
        it captures nothing (no ``DataCaptureConfig``, capture disabled, or not sampled)."""
        if not capture or not capture.get("EnableCapture", True):
            return None
        pct = capture.get("InitialSamplingPercentage", 100)
        if pct < 100 and random.random() * 100 >= pct:
            return None
        base = str(capture["DestinationS3Uri"])
        key = f"{endpoint}/{variant}/{when:%Y/%m/%d/%H}/{when:%M-%S}-{self.run_id}.jsonl"
        return uri_to_path(base.rstrip("/") + "/" + key, self.config.s3_root)

    def submit(self, path: Path, record: Mapping[str, Any]) -> None:
        self._queue.put((path, json.dumps(record, separators=(",", ":")) + "\n"))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            path, line = item
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                # one write() per whole line: readers never see half a record
                with open(path, "a", encoding="utf-8") as fh:
                    fh.write(line)
            except OSError as exc:  # capture must never break serving
                log.warning("data capture write to %s failed: %s", path, exc)

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait (at most ``timeout_s``) until the records submitted so far are taken for writing."""
        with contextlib.suppress(PollTimeout):
            poll_until(self._queue.empty, timeout_s, 0.01, "data capture")

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)


def capture_record(config: Mapping[str, Any], request: bytes, request_type: str, response: bytes,
                   response_type: str, when: dt.datetime, inference_id: str | None) -> dict[str, Any]:
    """One Data Capture record exactly as SageMaker writes it (see the module docstring)."""
    modes = {o.get("CaptureMode") for o in config.get("CaptureOptions") or []}
    headers = config.get("CaptureContentTypeHeader") or {}
    data: dict[str, Any] = {}
    if modes & {"Input", "InputAndOutput"}:
        data["endpointInput"] = _capture_payload(request, request_type, "INPUT", headers)
    if modes & {"Output", "InputAndOutput"}:
        data["endpointOutput"] = _capture_payload(response, response_type, "OUTPUT", headers)
    meta = {"eventId": str(uuid.uuid4()), "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%SZ")}
    if inference_id:
        meta["inferenceId"] = inference_id
    return {"captureData": data, "eventMetadata": meta, "eventVersion": "0"}


def _capture_payload(body: bytes, content_type: str, mode: str, headers: Mapping[str, Any]) -> dict[str, Any]:
    base = content_type.split(";")[0].strip().lower()
    for encoding, listed in (("JSON", headers.get("JsonContentTypes")), ("CSV", headers.get("CsvContentTypes"))):
        if base in {str(t).lower() for t in listed or ()}:
            try:
                return {"observedContentType": content_type, "mode": mode, "data": body.decode("utf-8"),
                        "encoding": encoding}
            except UnicodeDecodeError:
                break  # not text after all: kept exactly, as base64
    return {"observedContentType": content_type, "mode": mode, "data": base64.b64encode(body).decode(),
            "encoding": "BASE64"}

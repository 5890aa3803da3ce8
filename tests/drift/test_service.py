"""The local EventBridge process: started as the stack starts it, fires schedules, accepts events over HTTP."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from aircast.settings import Settings
from infra.local import stack
from infra.local.eventbridge.client import LocalEventsClient
from infra.local.eventbridge.defaults import DRIFT_CHECK_RULE

MODULE = "infra.local.eventbridge.service"


def _http(settings: Settings, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{settings.eventbus_port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_service_fires_schedules_and_accepts_events(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # a tiny clock scale makes the default rate(1 hour) drift check due within seconds
    settings = settings.replace(clock_scale=0.001)
    monkeypatch.setenv("AIRCAST_CLOCK_SCALE", "0.001")
    assert stack.STACK[-1] == MODULE
    try:
        (started,) = stack.up(settings, modules=(MODULE,))
        assert started["state"] == "started" and started["port"] == settings.eventbus_port
        status, health = _http(settings, "GET", "/health")
        assert status == 200 and health["status"] == "ok" and health["rules"] == 4
        assert DRIFT_CHECK_RULE in health["next_fire_times"]

        status, resp = _http(settings, "POST", "/events", {"Entries": [
            {"Source": "aircast.test", "DetailType": "Ping", "Detail": json.dumps({"n": 1})},
            {"Source": "aircast.test", "DetailType": "Ping", "Detail": "{oops"}]})
        assert status == 200 and resp["FailedEntryCount"] == 1 and "EventId" in resp["Entries"][0]
        status, resp = _http(settings, "POST", "/events", {"entries": []})
        assert status == 400 and "Entries" in resp["message"]

        events = LocalEventsClient(settings)
        deadline = time.monotonic() + 20
        fired: list[dict[str, Any]] = []
        while time.monotonic() < deadline and not fired:
            fired = [h for h in events.history(rule=DRIFT_CHECK_RULE) if h["invocations"]]
            time.sleep(0.3)
        assert fired, "the scheduler did not fire the drift check rule"
        assert fired[0]["detail_type"] == "Scheduled Event" and fired[0]["source"] == "aws.events"
        assert any(h["event"]["detail"] == {"n": 1} for h in events.history(source="aircast.test"))
        assert stack.status(settings, modules=(MODULE,))[0]["state"] == "running"
    finally:
        stack.down(settings, modules=(MODULE,))
    assert stack.status(settings, modules=(MODULE,))[0]["state"] == "stopped"


@pytest.mark.parametrize("path", ["/nope"])
def test_unknown_paths_get_404(settings: Settings, path: str) -> None:
    from http.server import ThreadingHTTPServer
    from threading import Thread

    from infra.local.eventbridge.service import make_handler

    server = ThreadingHTTPServer(("127.0.0.1", settings.eventbus_port), make_handler(LocalEventsClient(settings)))
    thread = Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert _http(settings, "GET", path)[0] == 404
        assert _http(settings, "POST", path, {})[0] == 404
    finally:
        server.shutdown()
        server.server_close()

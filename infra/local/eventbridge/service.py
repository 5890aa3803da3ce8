"""The local EventBridge process: fires scheduled rules at their times and offers a tiny HTTP API.

Run by ``aircast local up`` (``SERVICE``) as ``python -m infra.local.eventbridge.service --data-dir DIR``.
It installs aircast's default rules, then every ``--tick`` seconds fires the scheduled
rules that are due (their deliveries run on a worker thread so a long pipeline start never
delays another schedule). HTTP on ``127.0.0.1:<eventbus_port>``:

- ``GET /health`` → ``{"status": "ok", "rules": N, "next_fire_times": {rule: iso}}``
- ``POST /events`` with a PutEvents body ``{"Entries": [...]}`` → the PutEvents response
  (so processes that cannot import the project can still emit events).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from botocore.exceptions import ClientError

from aircast.settings import Settings, load_settings
from infra.local.eventbridge.client import LocalEventsClient
from infra.local.eventbridge.defaults import ensure_default_rules
from infra.local.stack import ServiceSpec, python_module_argv

log = logging.getLogger("aircast.eventbridge.service")

SERVICE = ServiceSpec(
    name="eventbridge",
    port=lambda s: s.eventbus_port,
    argv=python_module_argv("infra.local.eventbridge.service"),
)

MAX_BODY = 1024 * 1024  # PutEvents accepts at most 256 KiB per entry and 10 entries


class Scheduler:
    """Fires due scheduled rules on a timer thread until stopped."""

    def __init__(self, events: LocalEventsClient, tick_s: float = 1.0) -> None:
        self.events = events
        self.tick_s = tick_s
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="eventbridge-target")
        self._thread = threading.Thread(target=self._run, name="eventbridge-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for fired in self.events.fire_due_schedules(submit=self._pool.submit):
                    log.info("fired scheduled rule %s (event %s, scheduled for %s)", fired["rule"], fired["event_id"],
                             fired["scheduled_for"])
            except Exception:  # noqa: BLE001 - one bad tick (e.g. a locked database) must not stop the schedule
                log.exception("scheduler tick failed")
            self._stop.wait(self.tick_s)


def make_handler(events: LocalEventsClient) -> type[BaseHTTPRequestHandler]:
    """The HTTP handler class bound to ``events``."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "aircast-eventbridge"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            log.debug("%s " + format, self.address_string(), *args)

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, default=str).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            if self.path.rstrip("/") in ("", "/health"):
                times = {k: v.isoformat() if v else None for k, v in events.next_fire_times().items()}
                self._reply(200, {"status": "ok", "rules": len(events.list_rules()["Rules"]),
                                  "next_fire_times": times})
            else:
                self._reply(404, {"message": f"no such path {self.path}; use GET /health or POST /events"})

        def do_POST(self) -> None:  # noqa: N802 - stdlib naming
            if self.path.rstrip("/") != "/events":
                self._reply(404, {"message": f"no such path {self.path}; use POST /events"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._reply(413, {"message": f"body of {length} bytes is over the {MAX_BODY} byte limit"})
                return
            try:
                body = json.loads(self.rfile.read(length) or b"null")
                if not isinstance(body, dict) or not isinstance(body.get("Entries"), list):
                    raise ValueError('body must be a JSON object {"Entries": [...]}')
                self._reply(200, events.put_events(Entries=body["Entries"]))
            except ClientError as exc:
                self._reply(400, {"__type": exc.response["Error"]["Code"], "message": exc.response["Error"]["Message"]})
            except ValueError as exc:
                self._reply(400, {"__type": "ValidationException", "message": str(exc)})

    return Handler


def serve(settings: Settings, tick_s: float = 1.0) -> None:
    """Install the default rules, start the scheduler, serve HTTP until SIGTERM/SIGINT."""
    events = LocalEventsClient(settings)
    ensure_default_rules(settings, events)
    scheduler = Scheduler(events, tick_s=tick_s)
    server = ThreadingHTTPServer(("127.0.0.1", settings.eventbus_port), make_handler(events))
    server.daemon_threads = True

    def _shutdown(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    scheduler.start()
    log.info("eventbridge listening on 127.0.0.1:%d, data in %s", settings.eventbus_port, events.db_path)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        scheduler.stop()
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    """``python -m infra.local.eventbridge.service --data-dir DIR [--port N] [--tick S]``."""
    parser = argparse.ArgumentParser(description="aircast local EventBridge scheduler and event endpoint")
    parser.add_argument("--data-dir", help="aircast data dir (default: settings)")
    parser.add_argument("--port", type=int, help="port on 127.0.0.1 (default: settings.eventbus_port)")
    parser.add_argument("--tick", type=float, default=1.0, help="seconds between schedule checks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    settings = load_settings(data_dir=args.data_dir, eventbus_port=args.port)
    serve(settings, tick_s=args.tick)
    return 0


if __name__ == "__main__":
    sys.exit(main())

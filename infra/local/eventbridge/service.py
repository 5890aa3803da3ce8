"""The local EventBridge process: EventBridge's own JSON protocol on 127.0.0.1, and the scheduler.

Run by ``aircast local up`` (``SERVICE``) as ``python -m infra.local.eventbridge.service --data-dir DIR``.
It answers ``POST /`` exactly as ``events.<region>.amazonaws.com`` does (``X-Amz-Target:
AWSEvents.PutEvents``, ``Content-Type: application/x-amz-json-1.1``), so ``boto3.client("events",
endpoint_url=...)`` works against it unchanged (:func:`infra.local.core.jsonserver.remote_client`,
which ``aircast.clients.get_client("events", ...)`` returns while the bus runs). Every request must be
signed (SigV4) with the data dir's credentials (its token file, mode 0600), so another local user or
a web page gets ``403`` with AWS's error codes; bodies are validated against botocore's model and a
malformed request gets a ``4xx`` in AWS's error shape, never a dropped connection. ``PutEvents``
callers cannot use ``aws.*`` sources (``NotAuthorizedForSourceException``): the services'
own events reach the bus in-process only (:meth:`LocalEventsClient.put_service_events`).

Deliveries run on a worker pool, as EventBridge delivers asynchronously after ``PutEvents`` returns;
every ``--tick`` seconds the scheduler fires the scheduled rules that are due. ``GET /health`` (no
token, read-only) → ``{"status": "ok", "rules": N, "next_fire_times": {rule: iso}}``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import ThreadingHTTPServer
from typing import Any

from aircast.settings import Settings, load_settings
from infra.local.core.jsonserver import make_handler
from infra.local.eventbridge.client import LocalEventsClient
from infra.local.stack import ServiceSpec, python_module_argv

log = logging.getLogger("aircast.eventbridge.service")

SERVICE = ServiceSpec(
    name="eventbridge",
    port=lambda s: s.eventbus_port,
    argv=python_module_argv("infra.local.eventbridge.service"),
)


class Scheduler:
    """Fires due scheduled rules on a timer thread until stopped."""

    def __init__(self, events: LocalEventsClient, submit: Any, tick_s: float = 1.0) -> None:
        self.events = events
        self.tick_s = tick_s
        self._submit = submit
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="eventbridge-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for fired in self.events.fire_due_schedules(submit=self._submit):
                    log.info("fired scheduled rule %s (event %s, scheduled for %s)", fired["rule"], fired["event_id"],
                             fired["scheduled_for"])
            except Exception:  # noqa: BLE001 - one bad tick (e.g. a locked database) must not stop the schedule
                log.exception("scheduler tick failed")
            self._stop.wait(self.tick_s)


def health(events: LocalEventsClient) -> dict[str, Any]:
    """What ``GET /health`` answers: the rule count and when each scheduled rule fires next."""
    times = {k: v.isoformat() if v else None for k, v in events.next_fire_times().items()}
    return {"status": "ok", "rules": len(events.list_rules()["Rules"]), "next_fire_times": times}


def serve(settings: Settings, tick_s: float = 1.0) -> None:
    """Serve EventBridge's API and fire schedules until SIGTERM/SIGINT."""
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="eventbridge-target")
    events = LocalEventsClient(settings, submit=pool.submit)
    scheduler = Scheduler(events, pool.submit, tick_s=tick_s)
    handler = make_handler("events", events, settings.data_dir, settings.eventbus_port,
                           extra_get={"/health": lambda: health(events)})
    server = ThreadingHTTPServer(("127.0.0.1", settings.eventbus_port), handler)
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
        pool.shutdown(wait=False, cancel_futures=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m infra.local.eventbridge.service --data-dir DIR [--port N] [--tick S]``."""
    parser = argparse.ArgumentParser(description="aircast local EventBridge (JSON protocol) and scheduler")
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

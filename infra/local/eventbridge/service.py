"""The local EventBridge process: EventBridge's own JSON protocol on 127.0.0.1, and the scheduler.

Run by the local stack (:func:`service`) as ``python -m infra.local.eventbridge.service --data-dir DIR
--port N [--region R --account-id A --clock-scale S --tick T]``. It answers ``POST /`` exactly as
``events.<region>.amazonaws.com`` does (``X-Amz-Target: AWSEvents.PutEvents``, ``Content-Type:
application/x-amz-json-1.1``), so ``boto3.client("events", endpoint_url=...)`` works against it
unchanged (:func:`infra.local.core.jsonserver.remote_client`). Every request must be signed (SigV4)
with the data dir's credentials (its token file, mode 0600), so another local user or a web page gets
``403`` with AWS's error codes; bodies are validated against botocore's model and a malformed request
gets a ``4xx`` in AWS's error shape, never a dropped connection. ``PutEvents`` callers cannot use
``aws.*`` sources (``NotAuthorizedForSourceException``): the services' own events reach the bus
in-process only (:meth:`LocalEventsClient.put_service_events`).

``--port 0`` binds a free port; the process reports the port it listens on in
``<data_dir>/run/eventbridge.port`` (:func:`infra.local.stack.bound_port` reads it back).

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
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from infra.local.core.config import LocalConfig
from infra.local.core.jsonserver import make_handler
from infra.local.eventbridge.client import LocalEventsClient
from infra.local.eventbridge.scheduler import scheduler as schedule_timer
from infra.local.stack import ServiceSpec, python_module_argv, write_bound_port

__all__ = ["NAME", "health", "main", "serve", "service"]

log = logging.getLogger("aircast.eventbridge.service")

#: the service's name in the stack (PID, port and log files)
NAME = "eventbridge"


def service(config: LocalConfig, port: int, env: Mapping[str, str] | None = None) -> ServiceSpec:
    """The bus as a stack service on 127.0.0.1:``port`` (0: any free port, reported back)."""
    return ServiceSpec(name=NAME, port=port, env=dict(env or {}),
                       argv=python_module_argv("infra.local.eventbridge.service", config, "--port", str(port)))


def health(events: LocalEventsClient) -> dict[str, Any]:
    """What ``GET /health`` answers: the rule count and when each scheduled rule fires next."""
    times = {k: v.isoformat() if v else None for k, v in events.next_fire_times().items()}
    return {"status": "ok", "rules": len(events.list_rules()["Rules"]), "next_fire_times": times}


def serve(config: LocalConfig, port: int, tick_s: float = 1.0) -> None:
    """Serve EventBridge's API on 127.0.0.1:``port`` and fire schedules until SIGTERM/SIGINT."""
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="eventbridge-target")
    events = LocalEventsClient(config, submit=pool.submit)
    scheduler = schedule_timer(events, pool.submit, tick_s=tick_s)
    # bind first: with port 0 the handler must know the port the kernel chose (its Host check names it)
    server = ThreadingHTTPServer(("127.0.0.1", port), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.RequestHandlerClass = make_handler("events", events, config.data_dir, port,
                                              extra_get={"/health": lambda: health(events)})
    server.daemon_threads = True

    def _shutdown(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    scheduler.start()
    write_bound_port(config.run_dir, NAME, port)
    log.info("eventbridge listening on 127.0.0.1:%d, data in %s", port, events.db_path)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        scheduler.stop()
        server.server_close()
        pool.shutdown(wait=False, cancel_futures=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m infra.local.eventbridge.service --data-dir DIR --port N [--tick S]``."""
    parser = argparse.ArgumentParser(description="local EventBridge (JSON protocol) and scheduler")
    LocalConfig.add_arguments(parser)
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--tick", type=float, default=1.0, help="seconds between schedule checks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    serve(LocalConfig.from_arguments(args), args.port, tick_s=args.tick)
    return 0


if __name__ == "__main__":
    sys.exit(main())

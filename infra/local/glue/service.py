"""The local Glue service: one long-lived process with a warm Spark session.

``python -m infra.local.glue.service --config FILE`` (``FILE``: a :class:`GlueConfig` as JSON).
It starts the Spark session at once with a bounded heap (``heap_mib``) and the JIT of
``jit`` (C1 only by default: see ``session.service_conf``), warms it up by running each job
script over a few sample lines until a run arrives (a run never waits for the warm-up),
fires the scheduled triggers on a timer,
and answers Glue's JSON protocol on ``127.0.0.1:<port>`` (:mod:`infra.local.core.jsonserver`:
boto3's ``glue`` client works against it unchanged, requests are SigV4-signed with the data
dir's token and validated against botocore's model). ``GET /health`` (no auth, read-only)
reports the session's state, its heap and resident memory, its JIT, and the triggers' next times.

On SIGTERM it stops what is running (those runs end ``STOPPED``) and exits.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from infra.local.core.jsonserver import make_handler
from infra.local.core.ticker import Ticker
from infra.local.glue.client import GlueEngine, LocalGlueClient
from infra.local.glue.config import GlueConfig
from infra.local.glue.jobs import warm_up
from infra.local.glue.session import WarmSession, service_conf

log = logging.getLogger("aircast.glue.service")


def trigger_timer(engine: GlueEngine, tick_s: float = 1.0) -> Ticker:
    """Fires the scheduled triggers that are due, every ``tick_s`` (start it, stop it)."""
    return Ticker("glue-triggers", engine.triggers.fire_due, tick_s, log)


def health(engine: GlueEngine, session: WarmSession) -> dict[str, Any]:
    times = engine.triggers.next_fire_times()
    return {"status": "ok", "session": session.stats(),
            "next_fire_times": {k: v.isoformat() if v else None for k, v in times.items()}}


def serve(config: GlueConfig, tick_s: float = 1.0) -> None:
    """Serve until SIGTERM/SIGINT."""
    session = WarmSession(service_conf(config.heap_mib, config.jit),
                          warmup=lambda spark, stop: warm_up(spark, config, log.info, stop))
    engine = GlueEngine(config, session)
    backend = LocalGlueClient(config, engine=engine)
    handler = make_handler("glue", backend, config.data_dir, config.port,
                           extra_get={"/health": lambda: health(engine, session)})
    server = ThreadingHTTPServer(("127.0.0.1", config.port), handler)
    server.daemon_threads = True
    timer = trigger_timer(engine, tick_s)

    def _shutdown(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _shutdown)
    signal.signal(signal.SIGINT, _shutdown)
    session.start()
    timer.start()
    log.info("glue listening on 127.0.0.1:%d (heap %d MiB, JIT %s), data in %s", config.port, config.heap_mib,
             config.jit, config.root)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        timer.stop()
        _stop_runs(engine)
        server.server_close()


def _stop_runs(engine: GlueEngine, wait_s: float = 5.0) -> None:
    """Stop the runs this process holds, so none is left RUNNING behind a dead service (runs that another
    process executes, e.g. ``aircast lake etl`` in-process, are that process's to finish)."""
    here = set(engine.jobs.running_here())
    for job in engine.config.jobs:
        with engine.store.transaction() as db:
            ids = [r["Id"] for r in engine.store.active_runs(db, job.name) if r["Id"] in here]
        if ids:
            engine.jobs.stop(job.name, ids)
    deadline = time.monotonic() + wait_s
    for run_id in engine.jobs.running_here():
        engine.jobs.wait(run_id, max(deadline - time.monotonic(), 0.1))


def main(argv: list[str] | None = None) -> int:
    """``python -m infra.local.glue.service --config FILE [--tick S]``."""
    parser = argparse.ArgumentParser(description="aircast local Glue service (warm Spark session)")
    parser.add_argument("--config", required=True, help="the GlueConfig JSON the stack wrote")
    parser.add_argument("--data-dir", help="accepted for the stack's argv; the config names the data dir")
    parser.add_argument("--tick", type=float, default=1.0, help="seconds between trigger checks")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("py4j").setLevel(logging.WARNING)  # a line per closed gateway connection otherwise
    serve(GlueConfig.load(Path(args.config)), tick_s=args.tick)
    return 0


if __name__ == "__main__":
    sys.exit(main())

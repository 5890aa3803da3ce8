"""The console as a process: ``python -m aircast.console.service --data-dir DIR``, and as a service
of the local stack (``SERVICE``; ``LOCAL_STACK`` is the stack with the console last)."""

from __future__ import annotations

import argparse
import logging
import sys
from urllib.parse import quote

from aircast.settings import Settings, load_settings
from infra.local.auth import local_token
from infra.local.stack import STACK, ServiceSpec, python_module_argv

SERVICE = ServiceSpec(
    name="console",
    port=lambda s: s.console_port,
    argv=python_module_argv("aircast.console.service"),
)

#: the local stack with the Glue service and the console, in start order (the console reads what the others serve)
LOCAL_STACK: tuple[str, ...] = (*STACK, "aircast.glue", "aircast.console.service")


def login_url(settings: Settings, next_path: str = "/") -> str:
    """The link that signs a browser in (sets the cookie that lets its forms approve) and opens ``next_path``."""
    return f"{settings.console_url}/login?token={quote(local_token(settings.data_dir))}&next={quote(next_path)}"


def serve(settings: Settings) -> None:
    """Serve the console on 127.0.0.1 until interrupted (loopback only, whatever the settings say)."""
    import uvicorn

    from aircast.console.app import create_app

    app = create_app(settings, local_token(settings.data_dir))
    uvicorn.run(app, host="127.0.0.1", port=settings.console_port, log_level="warning", access_log=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="aircast console (pipelines, registry approval, endpoints, drift)")
    parser.add_argument("--data-dir", help="aircast data dir (default: settings)")
    parser.add_argument("--port", type=int, help="port on 127.0.0.1 (default: settings.console_port)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    settings = load_settings(data_dir=args.data_dir, console_port=args.port)
    print(f"console on {settings.console_url} (data dir {settings.data_dir}, backend {settings.backend})", flush=True)
    serve(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`aircast console`: the web console for reviewers, on 127.0.0.1."""

from __future__ import annotations

import argparse

from aircast.cli import PORT
from aircast.output import CommandError
from aircast.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `console` command."""
    text = ("serve the console (pipelines, model registry with Approve / Reject, endpoints, data and drift) "
            "on 127.0.0.1 and print the link that signs a browser in")
    p = sub.add_parser("console", help=text, description=text)
    p.add_argument("--port", type=PORT, help="port on 127.0.0.1 (env AIRCAST_CONSOLE_PORT, default 8070)")
    p.add_argument("--url", action="store_true",
                   help="only print the sign-in link (for the console `aircast local up` started)")
    p.add_argument("--open", metavar="PATH", default="/", help="page the link opens, e.g. /models/3")
    p.set_defaults(func=cmd_console)


def cmd_console(args: argparse.Namespace, settings: Settings) -> int:
    from aircast.console.service import login_url, serve
    from infra.local.auth import TokenFileError
    from infra.local.stack import port_in_use

    if args.port is not None:
        settings = settings.replace(console_port=args.port)
    try:
        url = login_url(settings, args.open)
    except TokenFileError as exc:
        raise CommandError(str(exc)) from None
    if args.url:
        print(url)
        return 0
    if port_in_use("127.0.0.1", settings.console_port):
        raise CommandError(f"port {settings.console_port} on 127.0.0.1 is in use (a console started by "
                           "`aircast local up`? then `aircast console --url` prints its link; or choose --port)")
    print(f"aircast console ({settings.backend} backend): open {url}", flush=True)
    serve(settings)
    return 0

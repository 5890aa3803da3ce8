"""``python -m infra.local.sagemaker.host --data-dir DIR --port N [--bind ADDR --region R --account-id A
--clock-scale S]``: the endpoint host in the foreground (the local stack runs it, :mod:`..service`)."""

from __future__ import annotations

import argparse
import logging

from infra.local.core.config import LocalConfig
from infra.local.sagemaker.host.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="aircast local SageMaker endpoint host (SageMaker Runtime API)")
    LocalConfig.add_arguments(parser)
    parser.add_argument("--port", type=int, required=True, help="port to listen on (0: any free port, reported)")
    parser.add_argument("--bind", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(LocalConfig.from_arguments(args), args.port, args.bind)


if __name__ == "__main__":
    main()

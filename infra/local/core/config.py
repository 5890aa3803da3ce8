"""The one configuration object of the local emulator: where its state lives and which account it plays.

Every local service takes a :class:`LocalConfig` (or plain values), never the configuration of
the application that uses the emulator: the application builds one from its own settings and
passes it in. A service process reads it from its command line (:meth:`LocalConfig.add_arguments`,
:meth:`LocalConfig.from_arguments`), and whoever starts the process writes that command line
(:meth:`LocalConfig.argv`).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "000000000000"


@dataclass(frozen=True)
class LocalConfig:
    """Data dir, region, account id and clock scale of one local emulator.

    ``clock_scale`` shrinks the emulator's own waits (a ``rate(1 hour)`` schedule fires every
    ``3600 * clock_scale`` seconds) so demos and tests need not wait hours; 1.0 is real time.
    """

    data_dir: Path
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT_ID
    clock_scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if not self.clock_scale > 0:
            raise ValueError(f"clock_scale must be above 0, got {self.clock_scale}")

    # ---- the data dir's layout (one place) --------------------------------------
    @property
    def s3_root(self) -> Path:
        """Folder that plays S3: ``<data_dir>/s3/<bucket>/<key>``."""
        return self.data_dir / "s3"

    @property
    def run_dir(self) -> Path:
        """PID files, bound ports and logs of the emulator's processes."""
        return self.data_dir / "run"

    @property
    def pki_dir(self) -> Path:
        """CA, server and thing certificates of the local IoT Core."""
        return self.data_dir / "pki"

    # ---- as a command line ---------------------------------------------------------
    def argv(self) -> list[str]:
        """The arguments that give a service process exactly this configuration."""
        return ["--data-dir", str(self.data_dir), "--region", self.region, "--account-id", self.account_id,
                "--clock-scale", repr(float(self.clock_scale))]

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        """Add ``--data-dir`` (required), ``--region``, ``--account-id`` and ``--clock-scale`` to ``parser``."""
        parser.add_argument("--data-dir", required=True, type=Path, help="the emulator's data dir")
        parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
                            help="the region the emulator plays (default: AWS_DEFAULT_REGION or us-east-1)")
        parser.add_argument("--account-id", default=DEFAULT_ACCOUNT_ID, help="the account id the emulator plays")
        parser.add_argument("--clock-scale", type=float, default=1.0, help="scale of the emulator's waits")

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> LocalConfig:
        """The configuration :meth:`add_arguments` parsed."""
        return cls(Path(args.data_dir).expanduser().absolute(), args.region, args.account_id, args.clock_scale)

    @classmethod
    def of(cls, source: Any) -> LocalConfig:
        """``source`` itself, or a configuration with its ``data_dir``, ``region``, ``account_id`` and
        ``clock_scale`` attributes (any object that has them)."""
        if isinstance(source, cls):
            return source
        return cls(Path(source.data_dir), source.region, source.account_id, float(source.clock_scale))

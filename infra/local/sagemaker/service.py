"""The endpoint host as a service of the local stack (see :mod:`infra.local.stack`)."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from infra.local.core.config import LocalConfig
from infra.local.stack import ServiceSpec

#: the service's name in the stack (PID and log files)
NAME = "sagemaker-endpoints"


def service(config: LocalConfig, port: int, env: Mapping[str, str] | None = None) -> ServiceSpec:
    """``python -m infra.local.sagemaker.host --data-dir DIR --port N``; the host reads the rest of its
    configuration from ``env`` (until it takes a :class:`LocalConfig` too)."""
    return ServiceSpec(
        name=NAME,
        port=port,
        argv=[sys.executable, "-m", "infra.local.sagemaker.host", "--data-dir", str(config.data_dir),
              "--port", str(port)],
        env=dict(env or {}),
        # importing torch/GluonTS on a busy machine takes a while
        start_timeout_s=120.0,
    )

"""The endpoint host as a service of the local stack (see :mod:`infra.local.stack`)."""

from __future__ import annotations

from collections.abc import Mapping

from infra.local.core.config import LocalConfig
from infra.local.stack import ServiceSpec, python_module_argv

#: the service's name in the stack (PID, port and log files)
NAME = "sagemaker-endpoints"


def service(config: LocalConfig, port: int, env: Mapping[str, str] | None = None,
            bind: str = "127.0.0.1") -> ServiceSpec:
    """The endpoint host (SageMaker Runtime) as a stack service on ``bind``:``port`` (0: any free port,
    reported back in the run dir)."""
    return ServiceSpec(
        name=NAME,
        port=port,
        argv=python_module_argv("infra.local.sagemaker.host", config, "--port", str(port), "--bind", bind),
        env=dict(env or {}),
        # importing torch/GluonTS on a busy machine takes a while
        start_timeout_s=120.0,
    )

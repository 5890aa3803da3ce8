"""The local IoT Core as a stack service (see :mod:`infra.local.stack`)."""

from __future__ import annotations

from collections.abc import Mapping

from infra.local.iot_core import broker
from infra.local.stack import ServiceSpec

#: the service's name in the stack (PID and log files)
NAME = "iot_core"


def service(config: broker.BrokerConfig, env: Mapping[str, str] | None = None) -> ServiceSpec:
    """mosquitto on 127.0.0.1:``config.port`` with the generated certificates, ACL and config.

    mosquitto cannot report a port it chose, so the port is fixed in advance (never 0)."""
    if not config.port:
        raise ValueError("the local IoT Core needs a fixed port: mosquitto cannot report a port it chose")
    return ServiceSpec(
        name=NAME,
        port=config.port,
        argv=broker.argv(config),
        precheck=broker.precheck,
        prepare=lambda: None if broker.prepare(config) else None,
        env=dict(env or {}),
        start_timeout_s=15.0,
    )

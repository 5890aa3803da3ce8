"""The local IoT Core as a stack service (see :mod:`infra.local.stack`)."""

from __future__ import annotations

from infra.local.iot_core import broker
from infra.local.stack import ServiceSpec

SERVICE = ServiceSpec(
    name="iot_core",
    port=lambda s: s.mqtt_port,
    argv=broker.argv,
    precheck=broker.precheck,
    prepare=lambda s: None if broker.prepare(s) else None,
    start_timeout_s=15.0,
)

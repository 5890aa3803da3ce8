"""The delivery stream as a stack service (see :mod:`infra.local.stack`)."""

from __future__ import annotations

from aircast.settings import Settings
from infra.local.firehose.delivery import ready_path
from infra.local.iot_core import pki
from infra.local.stack import ServiceSpec, port_in_use, python_module_argv


def _precheck(settings: Settings) -> str | None:
    if not port_in_use("127.0.0.1", settings.mqtt_port):
        return (f"the local IoT Core is not listening on 127.0.0.1:{settings.mqtt_port}; "
                "start the stack with aircast local up")
    return None


def _ready(settings: Settings, pid: int) -> bool:
    """Ready once the process has connected and subscribed (it writes its pid to the ready file)."""
    try:
        return int(ready_path(settings).read_text().strip()) == pid
    except (OSError, ValueError):
        return False


def _prepare(settings: Settings) -> None:
    pki.delivery_credentials(settings.pki_dir, settings.delivery_stream)
    ready_path(settings).unlink(missing_ok=True)


SERVICE = ServiceSpec(
    name="firehose",
    port=lambda s: None,
    argv=python_module_argv("infra.local.firehose.delivery"),
    precheck=_precheck,
    prepare=_prepare,
    ready=_ready,
    start_timeout_s=30.0,
)

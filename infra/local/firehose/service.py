"""The delivery stream as a stack service (see :mod:`infra.local.stack`)."""

from __future__ import annotations

from collections.abc import Mapping

from infra.local.firehose.config import DeliveryConfig
from infra.local.firehose.delivery import ready_path
from infra.local.iot_core import pki
from infra.local.stack import ServiceSpec, port_in_use, python_module_argv

#: the service's name in the stack (PID and log files)
NAME = "firehose"


def service(config: DeliveryConfig, env: Mapping[str, str] | None = None) -> ServiceSpec:
    """``python -m infra.local.firehose.delivery`` for ``config``; ready once connected and subscribed."""

    def precheck() -> str | None:
        if not port_in_use("127.0.0.1", config.mqtt_port):
            return (f"the local IoT Core is not listening on 127.0.0.1:{config.mqtt_port}; "
                    "start the iot_core service first")
        return None

    def prepare() -> None:
        pki.delivery_credentials(config.local.pki_dir, config.stream)
        ready_path(config).unlink(missing_ok=True)

    def ready(pid: int) -> bool:
        """Ready once the process has connected and subscribed (it writes its pid to the ready file)."""
        try:
            return int(ready_path(config).read_text().strip()) == pid
        except (OSError, ValueError):
            return False

    argv = python_module_argv("infra.local.firehose.delivery", config.local, *config.stream_arguments())
    return ServiceSpec(name=NAME, argv=argv, port=None, precheck=precheck, prepare=prepare,
                       ready=ready, env=dict(env or {}), start_timeout_s=30.0)

"""The endpoint host as a service of the local stack (``aircast local up``)."""

from __future__ import annotations

from infra.local.stack import ServiceSpec, python_module_argv

SERVICE = ServiceSpec(
    name="sagemaker-endpoints",
    port=lambda s: s.endpoint_port,
    argv=python_module_argv("infra.local.sagemaker.host"),
    env=lambda s: {"AIRCAST_ENDPOINT_PORT": str(s.endpoint_port), "AIRCAST_CLOCK_SCALE": str(s.clock_scale)},
    # importing torch/GluonTS on a busy machine takes a while
    start_timeout_s=120.0,
)

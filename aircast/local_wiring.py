"""aircast on the local emulator: everything aircast registers with ``infra/local`` and how it runs it.

``infra/local`` is an emulator of AWS services that knows nothing of aircast; on AWS the
CloudFormation stack (``infra/aws/aircast.yaml``) creates aircast's functions, rules and services.
Locally this module does the same, in one place:

- **Configuration**: the emulator's :class:`~infra.local.core.config.LocalConfig` and each service's
  own configuration, built from aircast's :class:`~aircast.settings.Settings`.
- **Lambda functions**: aircast's handlers (:data:`aircast.functions.FUNCTIONS`) registered on the local
  Lambda by name (:func:`register_local`).
- **Pipeline targets**: how the event bus starts a SageMaker pipeline (:func:`start_pipeline`,
  registered for the data dir so the bus process uses it too).
- **Rules**: aircast's EventBridge rules (:func:`aircast.event_rules.ensure_default_rules`), installed
  when the bus starts (:func:`install_rules`).
- **Services**: which stack services run, in which order, with which ports (:data:`LOCAL_SERVICES`,
  :func:`stack_services`), and ``up`` / ``down`` / ``status`` over them.

Glue jobs and pipelines are still wired inside ``infra/local/glue`` and ``infra/local/sagemaker``
(they import aircast's job and pipeline code); moving that wiring here is the next step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from aircast.settings import Settings, load_settings, settings_env

if TYPE_CHECKING:
    from infra.local.core.config import LocalConfig
    from infra.local.eventbridge.client import LocalEventsClient
    from infra.local.firehose.config import DeliveryConfig
    from infra.local.iot_core.broker import BrokerConfig
    from infra.local.stack import ServiceSpec

#: the local stack's services in start order (the broker before the delivery stream that subscribes
#: to it; the console last, as it reads what the others serve)
LOCAL_SERVICES: tuple[str, ...] = ("iot_core", "firehose", "sagemaker-endpoints", "eventbridge", "glue", "console")


# ---- configuration ------------------------------------------------------------------------------
def broker_config(settings: Settings) -> BrokerConfig:
    """The local IoT Core of these settings."""
    from infra.local.iot_core.broker import BrokerConfig

    return BrokerConfig(settings.local_config(), settings.mqtt_port, settings.delivery_stream,
                        settings.mqtt_autosave_seconds)


def delivery_config(settings: Settings) -> DeliveryConfig:
    """The local delivery stream of these settings (IoT rule → Firehose → the lake bucket)."""
    from infra.local.firehose.config import DeliveryConfig

    return DeliveryConfig(settings.local_config(), settings.delivery_stream, settings.lake_bucket,
                          settings.mqtt_host, settings.mqtt_port, settings.firehose_buffer_mib,
                          settings.firehose_buffer_seconds)


# ---- what aircast registers ---------------------------------------------------------------------
def register_local(settings: Settings) -> None:
    """Register aircast's Lambda functions and its pipeline starter with the local emulator of
    ``settings.data_dir``, as the CloudFormation stack creates them on AWS (idempotent, cheap when unchanged)."""
    from aircast.functions import FUNCTIONS
    from infra.local.awslambda import register_function
    from infra.local.eventbridge.targets import register_pipeline_starter

    for name, spec in FUNCTIONS.items():
        register_function(settings.data_dir, name, spec.handler, timeout_s=spec.timeout_s, memory_mb=spec.memory_mb)
    register_pipeline_starter(settings.data_dir, start_pipeline)


def pipeline_starter(settings: Settings) -> Callable[[str, list[dict[str, str]], str], dict[str, Any]]:
    """How the event bus starts a SageMaker pipeline for these settings: ``StartPipelineExecution`` on
    the local SageMaker's validated client, the event id as idempotency token."""

    def start(pipeline: str, parameters: list[dict[str, str]], event_id: str) -> dict[str, Any]:
        from infra.local.core import local_client
        from infra.local.sagemaker.client import LocalSageMakerClient

        client = local_client("sagemaker", LocalSageMakerClient(settings), region=settings.region)
        response = client.start_pipeline_execution(PipelineName=pipeline, PipelineParameters=parameters,
                                                   ClientRequestToken=event_id[:128])
        return {"PipelineExecutionArn": response["PipelineExecutionArn"]}

    return start


def start_pipeline(config: LocalConfig, pipeline: str, parameters: list[dict[str, str]],
                   event_id: str) -> dict[str, Any]:
    """The pipeline starter registered for the data dir: a bus that was not handed one (the bus process,
    the Model Registry's events) starts pipelines with the settings of its environment and ``config``."""
    settings = load_settings(data_dir=config.data_dir, region=config.region, account_id=config.account_id,
                             clock_scale=config.clock_scale)
    return pipeline_starter(settings)(pipeline, parameters, event_id)


def events_backend(settings: Settings, submit: Callable[..., Any] | None = None) -> LocalEventsClient:
    """The local event bus of these settings, starting pipelines with exactly these settings."""
    from infra.local.eventbridge.client import LocalEventsClient

    return LocalEventsClient(settings.local_config(), submit=submit, start_pipeline=pipeline_starter(settings))


def install_rules(settings: Settings) -> list[str]:
    """aircast's EventBridge rules on the local bus (what the CloudFormation stack creates on AWS)."""
    from aircast.event_rules import ensure_default_rules

    return ensure_default_rules(settings)


# ---- the stack ----------------------------------------------------------------------------------
def stack_services(settings: Settings, names: Sequence[str] = ()) -> list[ServiceSpec]:
    """The named services (all of :data:`LOCAL_SERVICES` when none are named), in start order.

    Every child process gets these settings in ``AIRCAST_*`` (aircast's Lambda handlers run in the
    bus process and read them, as on AWS they read the function's environment)."""
    unknown = [n for n in names if n not in LOCAL_SERVICES]
    if unknown:
        raise ValueError(f"unknown service(s) {', '.join(unknown)}; the stack has {', '.join(LOCAL_SERVICES)}")
    from aircast.console.service import service as console_service
    from aircast.glue import service as glue_service
    from infra.local.eventbridge.service import service as eventbridge_service
    from infra.local.firehose.service import service as firehose_service
    from infra.local.iot_core.service import service as iot_core_service
    from infra.local.sagemaker.service import service as endpoints_service

    config, env = settings.local_config(), settings_env(settings)
    build: dict[str, Callable[[], ServiceSpec]] = {
        "iot_core": lambda: iot_core_service(broker_config(settings), env),
        "firehose": lambda: firehose_service(delivery_config(settings), env),
        "sagemaker-endpoints": lambda: endpoints_service(config, settings.endpoint_port, env),
        "eventbridge": lambda: eventbridge_service(config, settings.eventbus_port, env),
        "glue": lambda: glue_service(settings, env),
        "console": lambda: console_service(settings, env),
    }
    return [build[name]() for name in LOCAL_SERVICES if not names or name in names]


def up(settings: Settings, names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Start the named services (default: all) in order; aircast's functions are registered first."""
    from infra.local import stack

    register_local(settings)
    return stack.up(settings.local_config(), stack_services(settings, names))


def down(settings: Settings, names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Stop the named services (default: all) in reverse order."""
    from infra.local import stack

    return stack.down(settings.local_config(), stack_services(settings, names))


def status(settings: Settings, names: Sequence[str] = ()) -> list[dict[str, Any]]:
    """State, PID, port, listening and log of the named services (default: all)."""
    from infra.local import stack

    return stack.status(settings.local_config(), stack_services(settings, names))


def read_pid(settings: Settings, name: str) -> int | None:
    """PID of the running service ``name``, or None."""
    from infra.local import stack

    return stack.read_pid(settings.local_config(), name)


def event_bus_url(settings: Settings) -> str | None:
    """URL of this data dir's event bus process while it runs and listens (the port it reported), else None."""
    from infra.local import stack
    from infra.local.eventbridge.service import NAME

    port = stack.bound_port(settings.local_config(), NAME)
    if port is None or not stack.port_in_use("127.0.0.1", port):
        return None
    return f"http://127.0.0.1:{port}"


def flush(settings: Settings, timeout: float = 30.0) -> dict[str, Any]:
    """Make the local delivery stream write every record the broker accepted so far; return its counters."""
    from infra.local.firehose import FlushTimeout
    from infra.local.firehose import flush as flush_stream

    try:
        return flush_stream(delivery_config(settings), timeout)
    except FlushTimeout as exc:
        raise FlushTimeout(f"{exc}; see aircast local status") from exc
    except ConnectionError as exc:
        raise ConnectionError(f"{exc}; see aircast local status") from exc

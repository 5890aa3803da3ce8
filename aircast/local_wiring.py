"""aircast on the local emulator: everything aircast registers with ``infra/local`` and how it runs it.

``infra/local`` is an emulator of AWS services that knows nothing of aircast; on AWS the
CloudFormation stack (``infra/aws/aircast.yaml``) creates aircast's functions, rules and services.
Locally this module does the same, in one place:

- **Configuration**: the emulator's :class:`~infra.local.core.config.LocalConfig` and each service's
  own configuration, built from aircast's :class:`~aircast.settings.Settings`.
- **Lambda functions**: aircast's handlers (:data:`aircast.functions.FUNCTIONS`) registered on the local
  Lambda by name (:func:`register_local`).
- **Backends**: the local SageMaker and CloudWatch of these settings (:func:`sagemaker_backend`,
  :func:`cloudwatch_backend`), the endpoint host's URL (:func:`endpoint_host_url`).
- **Pipelines**: aircast's own pipeline built, upserted and run on the local SageMaker
  (:func:`run_local_pipeline`); the event bus starts pipeline targets on the local SageMaker itself.
- **Rules**: aircast's EventBridge rules (:func:`aircast.event_rules.ensure_default_rules`), installed
  when the bus starts (:func:`install_rules`).
- **Services**: which stack services run, in which order, with which ports (:data:`LOCAL_SERVICES`,
  :func:`stack_services`), and ``up`` / ``down`` / ``status`` over them.

aircast's Glue job, crawlers and triggers are described to the local Glue by :mod:`aircast.glue`
(:func:`aircast.glue.glue_config`); this module starts its service with the others.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aircast.settings import Settings, settings_env

if TYPE_CHECKING:
    from infra.local.eventbridge.client import LocalEventsClient
    from infra.local.firehose.config import DeliveryConfig
    from infra.local.iot_core.broker import BrokerConfig
    from infra.local.sagemaker.client import LocalSageMakerClient
    from infra.local.sagemaker.cloudwatch import LocalCloudWatchClient
    from infra.local.stack import ServiceSpec

#: the local stack's services in start order: the Glue service first (its JVM takes seconds to start, in
#: the background while the others start), the broker before the delivery stream that subscribes to it,
#: the console last, as it reads what the others serve
LOCAL_SERVICES: tuple[str, ...] = ("glue", "iot_core", "firehose", "sagemaker-endpoints", "eventbridge", "console")


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
    """Register aircast's Lambda functions with the local emulator of ``settings.data_dir``, as the
    CloudFormation stack creates them on AWS (idempotent, cheap when unchanged)."""
    from aircast.functions import FUNCTIONS
    from infra.local.awslambda import register_function

    for name, spec in FUNCTIONS.items():
        register_function(settings.data_dir, name, spec.handler, timeout_s=spec.timeout_s, memory_mb=spec.memory_mb)


def sagemaker_backend(settings: Settings) -> LocalSageMakerClient:
    """The local SageMaker of these settings (a model created without a role gets aircast's)."""
    from infra.local.sagemaker.client import LocalSageMakerClient

    return LocalSageMakerClient(settings.local_config(), default_role_arn=settings.role_arn)


def cloudwatch_backend(settings: Settings) -> LocalCloudWatchClient:
    """The local CloudWatch (endpoint alarms and metrics) of these settings."""
    from infra.local.sagemaker.cloudwatch import LocalCloudWatchClient

    return LocalCloudWatchClient(settings.local_config())


def events_backend(settings: Settings, submit: Callable[..., Any] | None = None) -> LocalEventsClient:
    """The local event bus of these settings."""
    from infra.local.eventbridge.client import LocalEventsClient

    return LocalEventsClient(settings.local_config(), submit=submit)


def install_rules(settings: Settings) -> list[str]:
    """aircast's EventBridge rules on the local bus (what the CloudFormation stack creates on AWS)."""
    from aircast.event_rules import ensure_default_rules

    return ensure_default_rules(settings)


# ---- aircast's pipeline, run here -------------------------------------------------------------
def run_local_pipeline(settings: Settings, parameters: Mapping[str, Any] | None = None, *, progress: bool = True,
                       pipeline_name: str | None = None, wait: bool = True,
                       definition: tuple[str, str] | None = None) -> dict[str, Any]:
    """Build the aircast pipeline, upload its scripts to local S3, upsert it and run one execution.

    ``parameters``: pipeline parameter overrides by name (e.g. ``{"Epochs": 2}``; None values are skipped).
    ``definition``: an already built (definition JSON, script prefix), to skip rebuilding it.
    With ``wait`` the execution runs in this process (progress lines on stderr) and the result is
    :func:`pipelines.executions.execution_summary`; without, the local SageMaker runs it detached and
    only the ARN is returned.
    """
    from aircast.clients import get_client
    from infra.local.sagemaker.pipelines import run_execution
    from pipelines.code import definition_code_version, upload_code
    from pipelines.definition import build_definition
    from pipelines.executions import execution_summary, pipeline_parameters, upsert_pipeline

    local = settings.replace(backend="local")
    name = pipeline_name or local.pipeline_name
    definition_json, prefix = definition or build_definition(local, pipeline_name=name)
    upload_code(get_client("s3", local), local.artifacts_bucket, prefix, version=definition_code_version(definition_json))
    client = get_client("sagemaker", local)
    upsert_pipeline(client, name, definition_json, local.role_arn)
    # None means "the parameter's default", as when a caller's option was not given
    params = pipeline_parameters({k: v for k, v in (parameters or {}).items() if v is not None})
    if not wait:
        arn = client.start_pipeline_execution(PipelineName=name, PipelineParameters=params)["PipelineExecutionArn"]
        return {"execution_arn": arn, "status": "Executing"}
    arn = sagemaker_backend(local).create_pipeline_execution_record(name, params)
    say = (lambda line: print(line, file=sys.stderr, flush=True)) if progress else None
    if say:
        say(f"pipeline {name}: execution {arn}")
    run_execution(local.local_config(), arn, progress=say)
    return execution_summary(client, arn)


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
        "sagemaker-endpoints": lambda: endpoints_service(config, settings.endpoint_port, env, settings.endpoint_host),
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


def endpoint_host_url(settings: Settings) -> str:
    """URL of this data dir's endpoint host: the port it reported while it runs (it may have been given
    port 0), else the configured one."""
    from infra.local import stack
    from infra.local.sagemaker.service import NAME

    port = stack.bound_port(settings.local_config(), NAME)
    return f"http://{settings.endpoint_host}:{port}" if port is not None else settings.endpoint_url


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

"""Where the bus delivers: one sender per target service, and the delivery of an event to a rule's targets.

A target is what ``PutTargets`` stored: ``Id``, ``Arn`` and how to shape the payload (``Input``,
``InputPath``, or the whole event as EventBridge delivers it). The target's ARN picks its sender:

- Lambda functions (``arn:aws:lambda:...:function:NAME``): invoked asynchronously
  (``InvocationType=Event``) on the local Lambda (:mod:`infra.local.awslambda`), which knows the
  functions registered in the data dir.
- SageMaker pipelines (``arn:aws:sagemaker:...:pipeline/NAME``): ``StartPipelineExecution`` with the
  target's ``SageMakerPipelineParameters``, through a :data:`PipelineStarter`. The emulator's
  SageMaker needs its user's configuration to run a pipeline, so whoever runs the emulator gives the
  starter: in-process to :class:`~infra.local.eventbridge.client.LocalEventsClient`, or registered
  for the data dir by name (:func:`register_pipeline_starter`, Lambda's ``module.function``
  notation) so every process of the data dir (the bus process too) starts pipelines the same way.

:class:`Delivery` records each event and its matching rules in the store, runs each target's sender
(at once, or on the ``submit`` executor of the bus process), stops event chains that would recurse
forever, and records every invocation's outcome. A failing target never reaches the producer.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.local.core.config import LocalConfig
from infra.local.eventbridge.store import EventStore

log = logging.getLogger("aircast.eventbridge")

MAX_CHAIN_DEPTH = 8  # a target that emits events matching its own rule must not recurse forever
TARGET_ID = re.compile(r"^[.\-_A-Za-z0-9]{1,64}$")
LAMBDA_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]*:\d*:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]+)?$")
PIPELINE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]*:\d*:pipeline/([A-Za-z0-9-]{1,256})$")
INPUT_PATH = re.compile(r"^\$(\.[A-Za-z0-9_-]+)*$")
#: the registered pipeline starter's handler name, relative to the data dir
PIPELINE_STARTER_PATH = Path("eventbridge") / "pipeline-starter.json"

#: ``start(pipeline_name, parameters, event_id)`` → ``StartPipelineExecution``'s response
PipelineStarter = Callable[[str, list[dict[str, str]], str], dict[str, Any]]
#: a registered starter: ``start(config, pipeline_name, parameters, event_id)``
RegisteredStarter = Callable[[LocalConfig, str, list[dict[str, str]], str], dict[str, Any]]
#: ``(result, error)`` of one delivery: the target's answer, and its error or None
Outcome = tuple[Any, str | None]

_depth = threading.local()


# ---- what a target may be ------------------------------------------------------------------
def needs_role(target: dict[str, Any]) -> bool:
    """Targets other than Lambda, SNS, SQS, CloudWatch Logs and event buses act with a role."""
    return bool(PIPELINE_ARN.match(str(target.get("Arn", ""))))


def target_problem(target: dict[str, Any]) -> str | None:
    """Why the local bus cannot keep ``target`` (it comes back in ``FailedEntries``), or None."""
    tid, arn = target.get("Id"), target.get("Arn")
    if not isinstance(tid, str) or not TARGET_ID.match(tid):
        return f"target Id {tid!r} is not valid: use 1-64 characters from A-Z a-z 0-9 . - _"
    if not isinstance(arn, str) or not arn:
        return f"target {tid}: Arn is required"
    if "InputTransformer" in target:
        return f"target {tid}: the local bus does not deliver with InputTransformer; use Input or InputPath"
    if "Input" in target and "InputPath" in target:
        return f"target {tid}: give only one of Input and InputPath"
    if "Input" in target:
        try:
            json.loads(target["Input"])
        except (TypeError, json.JSONDecodeError):
            return f"target {tid}: Input must be valid JSON text"
    if "InputPath" in target and not INPUT_PATH.match(str(target["InputPath"])):
        return f"target {tid}: InputPath {target['InputPath']!r} must look like $ or $.detail.field"
    if LAMBDA_ARN.match(arn) or PIPELINE_ARN.match(arn):
        return None
    return (f"target {tid}: the local bus delivers to Lambda function ARNs "
            f"(arn:aws:lambda:REGION:ACCOUNT:function:NAME) and SageMaker pipeline ARNs "
            f"(arn:aws:sagemaker:REGION:ACCOUNT:pipeline/NAME); got {arn!r}")


def payload(target: dict[str, Any], event: dict[str, Any]) -> Any:
    """What the target receives: its constant ``Input``, the ``InputPath`` part of the event, or the event."""
    if "Input" in target:
        return json.loads(target["Input"])
    if "InputPath" in target:
        return json_path(event, target["InputPath"])
    return event


def json_path(event: dict[str, Any], path: str) -> Any:
    """The subset of JSONPath EventBridge's ``InputPath`` uses: ``$`` and ``$.a.b``."""
    if path == "$":
        return event
    value: Any = event
    for part in path[2:].split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


# ---- the pipeline starter registry -----------------------------------------------------------
def register_pipeline_starter(data_dir: Path, handler: str | Callable[..., Any]) -> str:
    """Record who starts SageMaker pipelines for the bus of ``data_dir``: a module-level function
    ``start(config, pipeline_name, parameters, event_id)`` (or its ``module.function`` name)."""
    from infra.local.awslambda import handler_name

    name = handler_name(handler)
    path = Path(data_dir) / PIPELINE_STARTER_PATH
    if _read_starter_name(path) == name:
        return name
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".pipeline-starter-")
    with os.fdopen(fd, "w") as fh:
        json.dump({"handler": name}, fh)
    os.replace(tmp, path)  # whole or not at all: a bus reading it never sees half a file
    return name


def _read_starter_name(path: Path) -> str | None:
    try:
        return str(json.loads(path.read_text())["handler"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def registered_pipeline_starter(config: LocalConfig) -> PipelineStarter | None:
    """The data dir's registered starter, bound to ``config``; None when nobody registered one."""
    from infra.local.awslambda import resolve_handler

    name = _read_starter_name(config.data_dir / PIPELINE_STARTER_PATH)
    if name is None:
        return None
    start: RegisteredStarter = resolve_handler(name)
    return lambda pipeline, parameters, event_id: start(config, pipeline, parameters, event_id)


# ---- one sender per target service -----------------------------------------------------------
class LambdaSender:
    """Invokes a Lambda function asynchronously, as EventBridge does, on the local Lambda."""

    def __init__(self, config: LocalConfig) -> None:
        self.config = config

    def send(self, target: dict[str, Any], body: Any, event: dict[str, Any]) -> Outcome:
        from infra.local.awslambda import LocalLambdaBackend

        functions = LocalLambdaBackend(self.config.data_dir, self.config.region, self.config.account_id)
        record = functions.run(target["Arn"], json.dumps(body).encode(), invocation_type="Event")
        return record.result(), record.error()


class PipelineSender:
    """Starts a SageMaker pipeline execution with the target's ``SageMakerPipelineParameters``."""

    def __init__(self, config: LocalConfig, start: PipelineStarter | None = None) -> None:
        self.config = config
        self._start = start

    def send(self, target: dict[str, Any], body: Any, event: dict[str, Any]) -> Outcome:
        match = PIPELINE_ARN.match(target["Arn"])
        assert match is not None  # chosen by its ARN
        start = self._start or registered_pipeline_starter(self.config)
        if start is None:
            raise RuntimeError(f"no local SageMaker starts pipelines for {self.config.data_dir} "
                               "(register one with infra.local.eventbridge.targets.register_pipeline_starter)")
        params = target.get("SageMakerPipelineParameters", {}).get("PipelineParameterList", [])
        return start(match.group(1), list(params), event["id"]), None


class Delivery:
    """Delivers events to the targets of the rules they match, and records what happened."""

    def __init__(self, config: LocalConfig, store: EventStore, *, submit: Callable[..., Any] | None = None,
                 start_pipeline: PipelineStarter | None = None) -> None:
        self.store = store
        self._submit = submit
        self.lambda_sender = LambdaSender(config)
        self.pipeline_sender = PipelineSender(config, start_pipeline)

    def dispatch(self, event: dict[str, Any], only_rule: str | None = None) -> list[dict[str, Any]]:
        """Record ``event``, find matching rules (or the one scheduled rule) and deliver to their targets.

        Returns the deliveries' outcomes when they ran here (no ``submit``), else an empty list."""
        targets = self.store.record_event(event, only_rule)
        # the store's transaction is closed before any target runs: targets may put events themselves
        outcomes = []
        for rule, rule_targets in targets.items():
            for target in rule_targets:
                if self._submit is not None:
                    self._submit(self.invoke, rule, target, event)
                else:
                    outcomes.append(self.invoke(rule, target, event))
        return outcomes

    def invoke(self, rule: str, target: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        """Deliver ``event`` to one target of ``rule`` and record the outcome (never raises)."""
        started = time.time()
        depth = getattr(_depth, "value", 0)
        status, result, error = "succeeded", None, None
        try:
            if depth >= MAX_CHAIN_DEPTH:
                raise RuntimeError(f"event chain deeper than {MAX_CHAIN_DEPTH} (a target keeps emitting events "
                                   "that trigger rules); not delivered")
            _depth.value = depth + 1
            try:
                result, error = self.send(target, event)
            finally:
                _depth.value = depth
            status = "failed" if error else "succeeded"
        except Exception as exc:  # noqa: BLE001 - a failing target must never crash the producer
            status = "failed"
            error = f"{type(exc).__name__}: {exc}"
            log.warning("eventbridge: target %s of rule %s failed: %s\n%s", target.get("Id"), rule, error,
                        traceback.format_exc(limit=5))
        duration_ms = (time.time() - started) * 1000
        self.store.record_invocation(event["id"], rule, target, status, result, error, started, duration_ms)
        return {"rule": rule, "target_id": target["Id"], "status": status, "result": result, "error": error}

    def send(self, target: dict[str, Any], event: dict[str, Any]) -> Outcome:
        """Hand ``event`` (shaped by the target's input settings) to the sender of the target's service."""
        arn = target["Arn"]
        body = payload(target, event)
        if LAMBDA_ARN.match(arn):
            return self.lambda_sender.send(target, body, event)
        if PIPELINE_ARN.match(arn):
            return self.pipeline_sender.send(target, body, event)
        raise ValueError(f"no local delivery for target ARN {arn!r}")

"""Where the bus delivers: one sender per target service, and the delivery of an event to a rule's targets.

A target is what ``PutTargets`` stored: ``Id``, ``Arn`` and how to shape the payload (``Input``,
``InputPath``, or the whole event as EventBridge delivers it). The target's ARN picks its sender:

- Lambda functions (``arn:aws:lambda:...:function:NAME``): invoked asynchronously
  (``InvocationType=Event``) on the local Lambda (:mod:`infra.local.awslambda`), which knows the
  functions registered in the data dir.
- SageMaker pipelines (``arn:aws:sagemaker:...:pipeline/NAME``): ``StartPipelineExecution`` with the
  target's ``SageMakerPipelineParameters`` (the event id as idempotency token) on the emulator's own
  SageMaker (:mod:`infra.local.sagemaker`), which runs whatever definition was upserted under that name.

:class:`Delivery` records each event and its matching rules in the store, runs each target's sender
(at once, or on the ``submit`` executor of the bus process), stops event chains that would recurse
forever, and records every invocation's outcome. A failing target never reaches the producer.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from infra.local.core.config import LocalConfig
from infra.local.eventbridge.store import EventStore

log = logging.getLogger("aircast.eventbridge")

MAX_CHAIN_DEPTH = 8  # a target that emits events matching its own rule must not recurse forever
TARGET_ID = re.compile(r"^[.\-_A-Za-z0-9]{1,64}$")
LAMBDA_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:[a-z0-9-]*:\d*:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]+)?$")
PIPELINE_ARN = re.compile(r"^arn:aws[a-z-]*:sagemaker:[a-z0-9-]*:\d*:pipeline/([A-Za-z0-9-]{1,256})$")
INPUT_PATH = re.compile(r"^\$(\.[A-Za-z0-9_-]+)*$")
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

    def __init__(self, config: LocalConfig) -> None:
        self.config = config

    def send(self, target: dict[str, Any], body: Any, event: dict[str, Any]) -> Outcome:
        from infra.local.core import local_client
        from infra.local.sagemaker.client import LocalSageMakerClient

        match = PIPELINE_ARN.match(target["Arn"])
        assert match is not None  # chosen by its ARN
        params = target.get("SageMakerPipelineParameters", {}).get("PipelineParameterList", [])
        sagemaker = local_client("sagemaker", LocalSageMakerClient(self.config), region=self.config.region)
        response = sagemaker.start_pipeline_execution(PipelineName=match.group(1), PipelineParameters=list(params),
                                                      ClientRequestToken=event["id"][:128])
        return {"PipelineExecutionArn": response["PipelineExecutionArn"]}, None


class Delivery:
    """Delivers events to the targets of the rules they match, and records what happened."""

    def __init__(self, config: LocalConfig, store: EventStore, *, submit: Callable[..., Any] | None = None) -> None:
        self.store = store
        self._submit = submit
        self.lambda_sender = LambdaSender(config)
        self.pipeline_sender = PipelineSender(config)

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

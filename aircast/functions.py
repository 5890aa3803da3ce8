"""aircast's Lambda functions: the handlers, timeouts and memory the CloudFormation stack gives them
(``infra/aws/aircast.yaml``), and their registration on the local Lambda.

On AWS the stack creates the functions; locally :func:`aircast.local_wiring.register_local` records the
same names and handlers in the data dir's function registry (``infra.local.awslambda``), as the stack
would, so the event bus's targets and the pipeline's Deploy step invoke them by name. It runs
whenever aircast hands out a local client that can invoke a function (``aircast.clients``).
"""

from __future__ import annotations

from dataclasses import dataclass

DEPLOY_FUNCTION = "aircast-deploy"
DRIFT_MONITOR_FUNCTION = "aircast-drift-monitor"


@dataclass(frozen=True)
class FunctionSpec:
    """One function as the stack defines it: handler (``module.function``), timeout, memory."""

    handler: str
    timeout_s: int
    memory_mb: int


#: the same values as the DeployFunction / DriftMonitorFunction resources of infra/aws/aircast.yaml
FUNCTIONS: dict[str, FunctionSpec] = {
    DEPLOY_FUNCTION: FunctionSpec("deployment.handler.lambda_handler", timeout_s=300, memory_mb=512),
    DRIFT_MONITOR_FUNCTION: FunctionSpec("aircast.monitoring.lambda_handler", timeout_s=900, memory_mb=3008),
}


def function_arn(region: str, account_id: str, name: str) -> str:
    """The ARN a function of the project has in this region and account."""
    return f"arn:aws:lambda:{region}:{account_id}:function:{name}"


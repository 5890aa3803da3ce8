"""Lambda stand-in: the project's Lambda functions, invoked in-process by name or ARN.

The pipeline's Lambda step and EventBridge targets both go through ``invoke``, so
the same handler code runs locally and as the Lambda function on AWS.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

#: function name → "module:callable" (the handler CloudFormation deploys on AWS)
LOCAL_FUNCTIONS: dict[str, str] = {
    "aircast-deploy": "deployment.handler:lambda_handler",
    "aircast-drift-monitor": "aircast.monitoring:lambda_handler",
}


class LocalLambdaContext:
    """The attributes of a Lambda context object that handlers read."""

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name
        self.aws_request_id = "local"
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def function_name_of(name_or_arn: str) -> str:
    """``arn:aws:lambda:r:a:function:NAME[:qualifier]`` or ``NAME`` → ``NAME``."""
    if name_or_arn.startswith("arn:"):
        parts = name_or_arn.split(":")
        if len(parts) < 7 or parts[5] != "function":
            raise ValueError(f"not a Lambda function ARN: {name_or_arn!r}")
        return parts[6]
    return name_or_arn


def invoke(name_or_arn: str, payload: dict[str, Any]) -> Any:
    """Call a local Lambda function's handler with ``payload``; return its result."""
    name = function_name_of(name_or_arn)
    if name not in LOCAL_FUNCTIONS:
        raise ValueError(f"no local Lambda function named {name!r}; known: {', '.join(sorted(LOCAL_FUNCTIONS))}")
    module, _, attr = LOCAL_FUNCTIONS[name].partition(":")
    handler = getattr(importlib.import_module(module), attr)
    # round-trip through JSON as Lambda does, so handlers never see Python-only objects
    return handler(json.loads(json.dumps(payload)), LocalLambdaContext(name))

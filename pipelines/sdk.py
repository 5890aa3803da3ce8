"""The SageMaker Python SDK v3, imported and used offline, without changing the caller's process.

Building a pipeline definition makes no AWS call, but the SDK reads two things from the
environment: a region while it is imported (``sagemaker.mlops`` creates a boto3 client at import
time, which fails without one) and whether to validate the execution role against IAM
(``SAGEMAKER_VALIDATE_ROLE``; validating calls ``iam:SimulatePrincipalPolicy``). :func:`offline_sdk`
provides both for one block, keeps any value the caller already set, and takes back what it added
when the block ends, so importing or building a pipeline leaves ``os.environ`` as it found it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


def sdk_environment(region: str) -> dict[str, str]:
    """The variables the SDK reads while a definition is built offline, for ``region``."""
    return {"AWS_DEFAULT_REGION": region, "SAGEMAKER_VALIDATE_ROLE": "false"}


@contextmanager
def offline_sdk(region: str) -> Iterator[None]:
    """:func:`sdk_environment` in ``os.environ`` for the block (a caller's own values win), removed after it."""
    added = [name for name in sdk_environment(region) if name not in os.environ]
    os.environ.update({name: value for name, value in sdk_environment(region).items() if name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)

"""The local SageMaker control plane: one boto3-shaped backend over the local Model Registry, pipeline
executions, hyperparameter tuning jobs and endpoints (like the SageMaker SDK's ``LocalSagemakerClient``).
Each part lives in its own module as a mixin; callers reach it through a real boto3 client
(``infra.local.core.local_client("sagemaker", LocalSageMakerClient(config), region=...)``)."""

from __future__ import annotations

from infra.local.core.config import LocalConfig
from infra.local.sagemaker.endpoints import EndpointsAPI
from infra.local.sagemaker.pipelines import PipelinesAPI
from infra.local.sagemaker.registry import ModelRegistryAPI
from infra.local.sagemaker.tuning import TuningAPI


class LocalSageMakerClient(ModelRegistryAPI, PipelinesAPI, EndpointsAPI, TuningAPI):
    """The ``sagemaker`` service of the local emulator of ``config``.

    ``default_role_arn``: the execution role a model records when ``CreateModel`` names none.
    """

    def __init__(self, config: LocalConfig, *, default_role_arn: str | None = None) -> None:
        self.config = config
        self.default_role_arn = default_role_arn

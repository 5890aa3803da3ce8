"""The local SageMaker control plane: one boto3-shaped client over the local
Model Registry, pipeline executions, hyperparameter tuning jobs and endpoints (like the SageMaker SDK's
``LocalSagemakerClient``). Each part lives in its own module as a mixin."""

from __future__ import annotations

from aircast.settings import Settings
from infra.local.sagemaker.endpoints import EndpointsAPI
from infra.local.sagemaker.pipelines import PipelinesAPI
from infra.local.sagemaker.registry import ModelRegistryAPI
from infra.local.sagemaker.tuning import TuningAPI


class LocalSageMakerClient(ModelRegistryAPI, PipelinesAPI, EndpointsAPI, TuningAPI):
    """``boto3.client("sagemaker")`` for the local backend."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

"""Waiting for an endpoint (deployment.deploy.wait_for_endpoint): the settled description, or a refusal that
says which status the endpoint was still in."""

from __future__ import annotations

import pytest

from aircast.clients import get_client
from deployment.deploy import DeploymentError, wait_for_endpoint


def test_wait_for_endpoint_gives_up_naming_the_status(settings) -> None:
    sm = get_client("sagemaker", settings)
    model = settings.s3_root / settings.artifacts_bucket / "m/model.tar.gz"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"placeholder")  # CreateModel checks it exists; no host loads it here
    sm.create_model(ModelName="m", PrimaryContainer={"Image": "local/deepar:1",
                                                     "ModelDataUrl": f"s3://{settings.artifacts_bucket}/m/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName="c", ProductionVariants=[
        {"VariantName": "v", "ModelName": "m", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName="e", EndpointConfigName="c")
    with pytest.raises(DeploymentError, match="endpoint e still Creating after 0 s"):
        wait_for_endpoint(sm, "e", timeout_s=0.3, poll_s=0.05)

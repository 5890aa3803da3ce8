"""moto helpers shared by the AWS tests: one isolated, in-process AWS account per context."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from infra.aws import provision

REGION = "us-east-1"
SECOND_REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's account
CODE_BUCKET = "aircast-cfn-assets-test"


def make_checkout(root: Path, handler_body: str = "def lambda_handler(event, context):\n    return {}\n") -> Path:
    """A minimal aircast checkout: what build_assets packages."""
    for package in ("deployment", "awsrules", "aircast", "evaluation", "processing"):
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    (root / "deployment" / "handler.py").write_text(handler_body)
    (root / "aircast" / "settings.py").write_text("X = 1\n")
    (root / "processing" / "glue_etl.py").write_text("print('etl')\n")
    (root / "deployment" / "__pycache__").mkdir()
    (root / "deployment" / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"junk")
    return root


def moto_clients(region: str = REGION) -> dict:
    """boto3 clients of the services the stack touches, in the moto account."""
    session = boto3.session.Session(region_name=region)
    return {name: session.client(name)
            for name in ("s3", "cloudformation", "iot", "events", "lambda", "iam", "ssm", "sagemaker")}


def publish_public_parameter(region: str, name: str, value: str) -> None:
    """Put a public SSM parameter AWS publishes (``/aws/service/...``) into the moto account.

    AWS refuses PutParameter under ``/aws`` (and so does moto), and moto's SSM carries only some of
    AWS's public trees (AMIs, regions, services), so the others are laid in as AWS has them.
    """
    from moto.core.utils import utcnow
    from moto.ssm.models import Parameter, ssm_backends

    ssm_backends[ACCOUNT][region]._parameters[name].append(Parameter(
        account_id=ACCOUNT, name=name, value=value, parameter_type="String", description=None, allowed_pattern=None,
        keyid=None, last_modified_date=utcnow(), version=1, data_type="text"))


def pandas_layer_arn(region: str) -> str:
    """What /aws/service/aws-sdk-pandas/3.15.0/py3.12/x86_64/layer-arn holds (from the layers page's table)."""
    return f"arn:aws:lambda:{region}:336392948345:layer:AWSSDKPandas-Python312:21"


def publish_the_stacks_public_parameters(region: str) -> None:
    """The public SSM parameters the template's SSM-typed parameters name by default, as AWS publishes them."""
    template = provision.parse_template(provision.TEMPLATE_PATH.read_text())
    for name in provision.ssm_parameter_names(template, {}).values():
        assert name.startswith("/aws/service/aws-sdk-pandas/"), f"no published value known for {name}"
        publish_public_parameter(region, name, pandas_layer_arn(region))


@contextlib.contextmanager
def moto_account():
    """An empty moto account for the duration of the block (state resets when the block ends)."""
    with pytest.MonkeyPatch.context() as mp, mock_aws(), warnings.catch_warnings():
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        # moto warns for every resource type its CloudFormation skips (see tests/aws/test_provision.py)
        warnings.filterwarnings("ignore", message="Tried to parse")
        for region in (REGION, SECOND_REGION):
            publish_the_stacks_public_parameters(region)
        yield moto_clients()


def deploy(aws: dict, root: Path, region: str = REGION) -> tuple[dict, provision.StackDeployment]:
    """Package a minimal checkout at ``root``, upload it, create the stack in ``region``; return (parameters, result)."""
    clients = aws if region == REGION else moto_clients(region)
    assets = provision.build_assets(make_checkout(root))
    code_bucket = CODE_BUCKET if region == REGION else f"{CODE_BUCKET}-{region}"
    provision.ensure_code_bucket(clients["s3"], code_bucket, region)
    provision.upload_assets(clients["s3"], code_bucket, assets)
    params = {"CodeBucket": code_bucket, **{k: a.key for k, a in assets.items()}}
    return params, provision.deploy_stack(clients["cloudformation"], "aircast", params, ssm=clients["ssm"],
                                          sleep=lambda s: None)



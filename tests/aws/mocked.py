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
ACCOUNT = "123456789012"  # moto's account
CODE_BUCKET = "aircast-cfn-assets-test"


def make_checkout(root: Path, handler_body: str = "def lambda_handler(event, context):\n    return {}\n") -> Path:
    """A minimal aircast checkout: what build_assets packages."""
    for package in ("deployment", "aircast", "evaluation", "processing"):
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    (root / "deployment" / "handler.py").write_text(handler_body)
    (root / "aircast" / "settings.py").write_text("X = 1\n")
    (root / "processing" / "glue_etl.py").write_text("print('etl')\n")
    (root / "deployment" / "__pycache__").mkdir()
    (root / "deployment" / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"junk")
    return root


def moto_clients() -> dict:
    """boto3 clients of the services the stack touches, in the moto account."""
    session = boto3.session.Session(region_name=REGION)
    return {name: session.client(name) for name in ("s3", "cloudformation", "iot", "events", "lambda", "iam")}


@contextlib.contextmanager
def moto_account():
    """An empty moto account for the duration of the block (state resets when the block ends)."""
    with pytest.MonkeyPatch.context() as mp, mock_aws(), warnings.catch_warnings():
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", REGION)
        # moto warns for every resource type its CloudFormation skips (see tests/aws/test_provision.py)
        warnings.filterwarnings("ignore", message="Tried to parse")
        yield moto_clients()


def deploy(aws: dict, root: Path) -> tuple[dict, provision.StackDeployment]:
    """Package a minimal checkout at ``root``, upload it, create the stack; return (parameters, result)."""
    assets = provision.build_assets(make_checkout(root))
    provision.ensure_code_bucket(aws["s3"], CODE_BUCKET, REGION)
    provision.upload_assets(aws["s3"], CODE_BUCKET, assets)
    params = {"CodeBucket": CODE_BUCKET, **{k: a.key for k, a in assets.items()}}
    return params, provision.deploy_stack(aws["cloudformation"], "aircast", params, sleep=lambda s: None)



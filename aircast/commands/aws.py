"""`aircast aws ...`: provision aircast in an AWS account.

* ``deploy-stack``: package the deploy Lambda and the Glue ETL script to a code bucket,
  create or update the CloudFormation stack through a change set, print its outputs.
* ``destroy-stack``: delete the stack (lake/artifacts buckets and the model registry are kept).
* ``register-thing NAME``: an IoT thing with its own certificate and the stack's policy,
  certificate files written for the device.

These always talk to AWS (credentials from the usual boto3 chain), whatever the backend.
The work is done by ``infra.aws.provision``, which takes the boto3 clients made here.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aircast.cli import add_group
from aircast.output import CommandError, UsageError, parse_assignments, print_json, print_kv
from aircast.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `aws` command group."""
    aws = add_group(sub, "aws", "provision aircast in an AWS account (CloudFormation, IoT things)")

    deploy = aws.add_parser("deploy-stack", help="package code, create/update the stack via a change set, print outputs")
    deploy.add_argument("--stack-name", default="aircast", help="CloudFormation stack name (default aircast)")
    deploy.add_argument("--parameter", action="append", default=[], metavar="KEY=VALUE",
                        help="template parameter override, repeatable (e.g. FirehoseBufferSeconds=60)")
    deploy.add_argument("--github-repository", metavar="OWNER/NAME",
                        help="create the GitHub OIDC role that lets this repository's main branch run the pipeline")
    deploy.add_argument("--json", action="store_true", help="print the result as JSON")
    deploy.set_defaults(func=deploy_stack_command)

    destroy = aws.add_parser("destroy-stack", help="delete the stack (buckets and model registry are retained)")
    destroy.add_argument("--stack-name", default="aircast")
    destroy.add_argument("--yes", action="store_true", help="confirm: devices lose their policy, schedules stop")
    destroy.add_argument("--delete-endpoint", action="store_true",
                         help="also delete the real-time endpoint the deploy Lambda created (it bills per hour)")
    destroy.add_argument("--json", action="store_true")
    destroy.set_defaults(func=destroy_stack_command)

    thing = aws.add_parser("register-thing", help="create an IoT thing, its certificate and policy attachment")
    thing.add_argument("name", help="thing name ([A-Za-z0-9_-]{1,64}); the device publishes to sensors/NAME/telemetry")
    thing.add_argument("--stack-name", default="aircast", help="stack whose IoT policy and thing type to use")
    thing.add_argument("--policy-name", help="IoT policy to attach (default: the stack's)")
    thing.add_argument("--thing-type", help="thing type (default: the stack's)")
    thing.add_argument("--pki-dir", help="where to write things/NAME/{cert,key}.pem (default <data_dir>/aws/pki)")
    thing.add_argument("--json", action="store_true")
    thing.set_defaults(func=register_thing_command)


# ------------------------------------------------------------------ helpers
def _session(settings: Settings) -> Any:
    import boto3

    return boto3.session.Session(region_name=settings.region)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Provisioning problems and botocore's errors become one line for the user, not a traceback."""
    from infra.aws import provision

    try:
        yield
    except provision.ProvisionError as exc:
        raise CommandError(str(exc)) from exc
    except Exception as exc:
        if type(exc).__module__.startswith("botocore"):
            raise _aws_errors(exc) from exc
        raise


def _aws_errors(exc: Exception) -> CommandError:
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    if isinstance(exc, NoCredentialsError):
        return UsageError("no AWS credentials found: run `aws configure` or set AWS_PROFILE / AWS_ACCESS_KEY_ID")
    if isinstance(exc, NoRegionError):
        return UsageError("no AWS region: set AIRCAST_REGION or AWS_DEFAULT_REGION")
    if isinstance(exc, ClientError):
        return CommandError(f"AWS refused: {exc}")
    return CommandError(str(exc))


def default_parameters(settings: Settings) -> dict[str, str]:
    """Stack parameters that follow from aircast's settings (names, buffering, retraining)."""
    defaults = Settings()
    params = {
        "DeliveryStreamName": settings.delivery_stream,
        "GlueDatabaseName": settings.glue_database,
        "GlueJobName": settings.glue_job_name,
        "PipelineName": settings.pipeline_name,
        "ModelPackageGroupName": settings.model_package_group,
        "EndpointName": settings.endpoint_name,
        "FirehoseBufferMiB": str(max(1, round(settings.firehose_buffer_mib))),
        "FirehoseBufferSeconds": str(min(900, max(0, round(settings.firehose_buffer_seconds)))),
    }
    # the deploy Lambda's policy and the stack's rollback alarms come from the same settings
    for setting, param, convert in (("deploy_strategy", "DeployStrategy", str),
                                    ("deploy_instance_type", "DeployInstanceType", str),
                                    ("deploy_instance_count", "DeployInstanceCount", str),
                                    ("deploy_error_rate_threshold", "ErrorRateThreshold", _number),
                                    ("deploy_latency_p99_ms", "ModelLatencyP99Millis", lambda v: str(round(v)))):
        if hasattr(settings, setting):
            params[param] = convert(getattr(settings, setting))
    schedule = getattr(settings, "retrain_schedule", None)
    if schedule:
        params["RetrainingSchedule"] = schedule
    if getattr(settings, "retrain_auto_approve", False):
        params["RetrainingApprovalStatus"] = "Approved"
    # bucket names are global: pass them only when the user chose them, else the stack derives unique ones
    if settings.lake_bucket != defaults.lake_bucket:
        params["LakeBucketName"] = settings.lake_bucket
    if settings.artifacts_bucket != defaults.artifacts_bucket:
        params["ArtifactsBucketName"] = settings.artifacts_bucket
    return params


def _number(value: float) -> str:
    return f"{value:g}"


def backend_environment(outputs: dict[str, str], region: str, account_id: str) -> dict[str, str]:
    """The ``AIRCAST_*`` variables that point aircast (backend aws) at the stack's resources."""
    env = {"AIRCAST_BACKEND": "aws", "AIRCAST_REGION": region, "AIRCAST_ACCOUNT_ID": account_id}
    mapping = {"LakeBucketName": "AIRCAST_LAKE_BUCKET", "ArtifactsBucketName": "AIRCAST_ARTIFACTS_BUCKET",
               "SageMakerExecutionRoleArn": "AIRCAST_ROLE_ARN", "DeliveryStreamName": "AIRCAST_DELIVERY_STREAM",
               "GlueDatabaseName": "AIRCAST_GLUE_DATABASE", "GlueJobName": "AIRCAST_GLUE_JOB_NAME",
               "PipelineName": "AIRCAST_PIPELINE_NAME", "ModelPackageGroupName": "AIRCAST_MODEL_PACKAGE_GROUP",
               "EndpointName": "AIRCAST_ENDPOINT_NAME", "DeployFunctionArn": "AIRCAST_DEPLOY_FUNCTION_ARN"}
    env.update({var: outputs[key] for key, var in mapping.items() if key in outputs})
    return env


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ handlers
def deploy_stack_command(args: argparse.Namespace, settings: Settings) -> int:
    """``aircast aws deploy-stack``."""
    from infra.aws import provision, retained

    overrides = parse_assignments(args.parameter, "--parameter", "FirehoseBufferSeconds=60", form="KEY=VALUE")
    if args.github_repository:
        overrides["GitHubRepository"] = args.github_repository
    with _user_errors():
        session = _session(settings)
        account_id = session.client("sts").get_caller_identity()["Account"]
        region = session.region_name or settings.region
        s3, cfn = session.client("s3"), session.client("cloudformation")
        if overrides.get("GitHubRepository") and "GitHubOidcProviderArn" not in overrides:
            # IAM holds one GitHub OIDC provider per account: a stack in another region may have made it
            provider = retained.github_oidc_provider(session.client("iam"), cfn, args.stack_name)
            if provider:
                _log(f"using the account's GitHub OIDC provider {provider}")
                overrides["GitHubOidcProviderArn"] = provider
        code_bucket = provision.code_bucket_name(account_id, region)
        _log(f"packaging the deploy Lambda and the Glue job into s3://{code_bucket}")
        assets = provision.build_assets()
        provision.ensure_code_bucket(s3, code_bucket, region, log=_log)
        provision.upload_assets(s3, code_bucket, assets, log=_log)
        params = {**default_parameters(settings), "CodeBucket": code_bucket,
                  **{name: asset.key for name, asset in assets.items()}, **overrides}
        result = provision.deploy_stack(cfn, args.stack_name, params, s3=s3, code_bucket=code_bucket,
                                        ssm=session.client("ssm"), account_id=account_id, log=_log,
                                        retained_clients={"s3": s3, "sagemaker": session.client("sagemaker")})
    env = backend_environment(result.outputs, region, account_id)
    if args.json:
        print_json({"stack_name": result.stack_name, "change_set_type": result.change_set_type,
                    "status": result.status, "changes": result.changes, "outputs": result.outputs,
                    "adopted": result.adopted, "environment": env})
        return 0
    print_kv({"stack": result.stack_name, "status": result.status, **result.outputs})
    print("\n# point aircast at this stack:")
    for key, value in env.items():
        print(f"export {key}={value}")
    return 0


def destroy_stack_command(args: argparse.Namespace, settings: Settings) -> int:
    """``aircast aws destroy-stack``."""
    from infra.aws import provision

    if not args.yes:
        raise UsageError(f"this deletes stack {args.stack_name}: devices lose their IoT policy, ingestion, ETL, "
                           "approvals and retraining stop; buckets and registered models are kept. Pass --yes")
    with _user_errors():
        session = _session(settings)
        cfn = session.client("cloudformation")
        endpoint = provision.stack_outputs(cfn, args.stack_name).get("EndpointName", settings.endpoint_name)
        status = provision.destroy_stack(cfn, session.client("iot"), args.stack_name, log=_log)
        endpoint_state = _endpoint_cleanup(session.client("sagemaker"), endpoint, args.delete_endpoint)
    result = {"stack_name": args.stack_name, "status": status, "endpoint": endpoint, "endpoint_state": endpoint_state,
              "retained": "lake and artifacts buckets, Model Package Group (deploy-stack takes them back), code bucket, "
                          "GitHub OIDC provider, things and certificates"}
    if args.json:
        print_json(result)
    else:
        print_kv(result)
    return 0


def _endpoint_cleanup(sagemaker: Any, endpoint: str, delete: bool) -> str:
    from botocore.exceptions import ClientError

    try:
        sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError:
        return "absent"
    if delete:
        _log(f"deleting endpoint {endpoint}")
        sagemaker.delete_endpoint(EndpointName=endpoint)
        return "deleted"
    _log(f"endpoint {endpoint} still exists and bills per instance-hour; "
         f"rerun with --delete-endpoint or `aws sagemaker delete-endpoint --endpoint-name {endpoint}`")
    return "kept"


def register_thing_command(args: argparse.Namespace, settings: Settings) -> int:
    """``aircast aws register-thing NAME``."""
    from infra.aws import provision

    pki_dir = Path(args.pki_dir) if args.pki_dir else settings.data_dir / "aws" / "pki"
    with _user_errors():
        session = _session(settings)
        policy, thing_type = args.policy_name, args.thing_type
        if policy is None or thing_type is None:
            outputs = provision.stack_outputs(session.client("cloudformation"), args.stack_name)
            policy = policy or outputs.get("IotPolicyName")
            thing_type = thing_type or outputs.get("ThingTypeName")
        if not policy:
            raise CommandError(f"stack {args.stack_name} has no IotPolicyName output; pass --policy-name")
        reg = provision.register_thing(session.client("iot"), args.name, policy_name=policy,
                                       thing_type=thing_type, pki_dir=pki_dir, log=_log)
    if args.json:
        print_json(reg.as_dict())
        return 0
    print_kv(reg.as_dict())
    print(f"\n# the device connects to {reg.endpoint}:8883 as client id {reg.thing_name}:")
    print(f"export AIRCAST_IOT_ENDPOINT={reg.endpoint}")
    return 0

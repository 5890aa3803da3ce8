"""`aircast models ...`: the Model Registry group of the DeepAR forecaster.

``approve`` / ``reject`` change a package's approval status; on the local backend the
status change publishes the EventBridge event that drives the deploy Lambda (on AWS,
SageMaker publishes it).
"""

from __future__ import annotations

import argparse
from typing import Any

from aircast.cli import add_group
from aircast.output import CommandError, UsageError, print_json, print_kv, print_table
from aircast.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `models` command group."""
    group = add_group(sub, "models", "model packages in the Model Registry")

    ls = group.add_parser("list", help="versions of the model package group, newest first")
    ls.add_argument("--status", choices=("PendingManualApproval", "Approved", "Rejected"))
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    show = group.add_parser("describe", help="one model package (metrics, container, status)")
    show.add_argument("package", metavar="VERSION_OR_ARN")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=cmd_describe)

    for name, status in (("approve", "Approved"), ("reject", "Rejected")):
        p = group.add_parser(name, help=f"set a package's approval status to {status}")
        p.add_argument("package", metavar="VERSION_OR_ARN")
        p.add_argument("--description", "-m", default=f"{status} with aircast models {name}")
        p.set_defaults(func=cmd_set_status, status=status)


def _client(settings: Settings) -> Any:
    from aircast.clients import get_client

    return get_client("sagemaker", settings)


def package_arn(settings: Settings, version_or_arn: str) -> str:
    """A version number of the configured group, or a model package ARN, → the ARN."""
    from aircast.reads import package_arn as arn_of

    try:
        return arn_of(settings, version_or_arn)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _call(func: Any, **kwargs: Any) -> Any:
    from botocore.exceptions import ClientError

    try:
        return func(**kwargs)
    except ClientError as exc:
        raise CommandError(exc.response["Error"]["Message"]) from exc


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from aircast.reads import as_float

    client = _client(settings)
    kwargs: dict[str, Any] = {"ModelPackageGroupName": settings.model_package_group, "SortBy": "CreationTime",
                              "SortOrder": "Descending"}
    if args.status:
        kwargs["ModelApprovalStatus"] = args.status
    from botocore.exceptions import ClientError

    try:
        packages = client.list_model_packages(**kwargs)["ModelPackageSummaryList"]
    except ClientError as exc:
        raise CommandError(exc.response["Error"]["Message"]) from exc
    rows = []
    for pkg in packages:
        meta = _call(client.describe_model_package, ModelPackageName=pkg["ModelPackageArn"]).get(
            "CustomerMetadataProperties", {})
        rows.append({"version": pkg["ModelPackageVersion"], "status": pkg["ModelApprovalStatus"],
                     "created": pkg["CreationTime"], "mean_wQL": as_float(meta.get("mean_wQuantileLoss")),
                     # the ratio to the best baseline the gate compared with (named beside it)
                     "vs_baseline": as_float(meta.get("relative_mean_wQuantileLoss")),
                     "baseline": meta.get("best_baseline"),
                     "execution": meta.get("pipeline_execution_id"), "arn": pkg["ModelPackageArn"]})
    if args.json:
        print_json(rows)
        return 0
    for row in rows:
        row["created"] = row["created"].strftime("%Y-%m-%d %H:%M:%S")
    print_table(rows, ["version", "status", "created", "mean_wQL", "vs_baseline", "baseline", "execution"],
                empty=f"(no model packages in {settings.model_package_group})")
    return 0


def cmd_describe(args: argparse.Namespace, settings: Settings) -> int:
    pkg = _call(_client(settings).describe_model_package, ModelPackageName=package_arn(settings, args.package))
    if args.json:
        print_json(pkg)
        return 0
    container = pkg["InferenceSpecification"]["Containers"][0]
    print_kv({"arn": pkg["ModelPackageArn"], "status": pkg["ModelApprovalStatus"], "created": pkg["CreationTime"],
              "image": container.get("Image"), "model data": container.get("ModelDataUrl"),
              "metrics": pkg.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri"),
              **pkg.get("CustomerMetadataProperties", {})})
    return 0


def cmd_set_status(args: argparse.Namespace, settings: Settings) -> int:
    arn = package_arn(settings, args.package)
    client = _client(settings)
    before = _call(client.describe_model_package, ModelPackageName=arn)["ModelApprovalStatus"]
    _call(client.update_model_package, ModelPackageArn=arn, ModelApprovalStatus=args.status,
          ApprovalDescription=args.description)
    print(f"{arn}: {before} → {args.status}")
    return 0

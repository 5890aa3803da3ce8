"""`aircast endpoint ...`: list, describe, invoke, deploy, weights and delete real-time endpoints."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from aircast.clients import deployment_history
from aircast.output import CommandError, UsageError, parse_assignments, print_json, print_kv, print_table
from aircast.settings import Settings


def _sm(settings: Settings) -> Any:
    from aircast.clients import get_client

    return get_client("sagemaker", settings)


def _client_error(exc: Exception) -> CommandError:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        return CommandError(exc.response.get("Error", {}).get("Message", str(exc)))
    return CommandError(str(exc))


def _list(args: argparse.Namespace, settings: Settings) -> int:
    rows = _sm(settings).list_endpoints(SortBy="Name", SortOrder="Ascending")["Endpoints"]
    if args.json:
        print_json(rows)
    else:
        print_table([{"name": r["EndpointName"], "status": r["EndpointStatus"], "created": r["CreationTime"],
                      "modified": r["LastModifiedTime"]} for r in rows], empty="(no endpoints)")
    return 0


def _describe(args: argparse.Namespace, settings: Settings) -> int:
    from botocore.exceptions import ClientError

    try:
        desc = _sm(settings).describe_endpoint(EndpointName=args.name)
    except ClientError as exc:
        raise _client_error(exc) from None
    desc.pop("ResponseMetadata", None)
    if args.json:
        print_json(desc)
        return 0
    summary = {"endpoint": desc["EndpointName"], "status": desc["EndpointStatus"],
               "endpoint config": desc["EndpointConfigName"]}
    if desc.get("FailureReason"):
        summary["failure reason"] = desc["FailureReason"]
    pending = desc.get("PendingDeploymentSummary")
    if pending:
        status = pending["ProductionVariants"][0]["VariantStatus"][0] if pending["ProductionVariants"] else {}
        summary["deploying"] = f"{pending['EndpointConfigName']}: {status.get('Status')} {status.get('StatusMessage', '')}"
    print_kv(summary)
    print()
    print_table([{"variant": v["VariantName"], "current weight": v.get("CurrentWeight"),
                  "desired weight": v.get("DesiredWeight"), "instances": v.get("CurrentInstanceCount")}
                 for v in desc["ProductionVariants"]])
    history = deployment_history(settings, args.name)
    if history:
        print("\nhistory:")
        for h in history[-15:]:
            print(f"  {h['Time']:%Y-%m-%d %H:%M:%S}  {h['Message']}")
    return 0


def _invoke(args: argparse.Namespace, settings: Settings) -> int:
    from botocore.exceptions import ClientError, EndpointConnectionError

    from aircast.clients import get_client

    path = Path(args.file)
    if args.file == "-":
        body = sys.stdin.buffer.read()
    elif not path.is_file():
        raise UsageError(f"request file {path} does not exist; write a DeepAR request "
                           '({"instances": [{"start": ..., "target": [...]}], "configuration": {...}})')
    else:
        body = path.read_bytes()
    kwargs: dict[str, Any] = {"EndpointName": args.name, "Body": body, "ContentType": "application/json",
                              "Accept": "application/json"}
    if args.variant:
        kwargs["TargetVariant"] = args.variant
    if args.target_model:
        kwargs["TargetModel"] = args.target_model
    runtime = get_client("sagemaker-runtime", settings)
    try:
        resp = runtime.invoke_endpoint(**kwargs)
    except EndpointConnectionError:
        raise CommandError(f"no endpoint host answers at {runtime.meta.endpoint_url}; start it with "
                           "`aircast local up`") from None
    except ClientError as exc:
        raise _client_error(exc) from None
    payload = json.loads(resp["Body"].read())
    print(f"variant: {resp.get('InvokedProductionVariant')}", file=sys.stderr)
    print_json(payload if args.json else payload.get("predictions", payload))
    return 0


def _deploy(args: argparse.Namespace, settings: Settings) -> int:
    from botocore.exceptions import ClientError

    from awsrules.sagemaker_endpoints import DeploymentConfigError
    from deployment.deploy import DeploymentError, deploy_model_package, wait_for_endpoint
    from deployment.handler import clients
    from deployment.policy import DeploymentPolicy

    base = DeploymentPolicy.from_settings(settings)
    policy = DeploymentPolicy(
        strategy=args.strategy or base.strategy,
        step_percent=args.step_percent if args.step_percent is not None else base.step_percent,
        wait_seconds=args.wait_seconds if args.wait_seconds is not None else base.wait_seconds,
        termination_wait_seconds=(args.termination_wait_seconds if args.termination_wait_seconds is not None
                                  else base.termination_wait_seconds),
        max_timeout_seconds=args.max_timeout_seconds if args.max_timeout_seconds is not None else base.max_timeout_seconds,
        error_rate_threshold=(args.error_rate_threshold if args.error_rate_threshold is not None
                              else base.error_rate_threshold),
        latency_p99_ms=args.latency_p99_ms if args.latency_p99_ms is not None else base.latency_p99_ms,
        instance_type=base.instance_type,
        instance_count=args.instance_count if args.instance_count is not None else base.instance_count)
    environment = {"AIRCAST_FAULT_INJECTION": args.fault_injection} if args.fault_injection else None
    if environment and settings.backend == "aws":
        raise UsageError("--fault-injection is a local chaos hook; it has no effect on AWS")
    sm, cw = clients(settings)
    endpoint = args.endpoint or settings.endpoint_name
    try:
        result = deploy_model_package(sm, args.model_package, endpoint, policy, role_arn=settings.role_arn,
                                      cw_client=cw, model_package_group=settings.model_package_group,
                                      environment=environment,
                                      data_capture_uri=f"s3://{settings.artifacts_bucket}/datacapture")
    except (DeploymentError, DeploymentConfigError, ClientError) as exc:
        raise _client_error(exc) from None
    out: dict[str, Any] = result.as_dict()
    if args.wait:
        print(f"deploying {result.model_package_arn} to {endpoint} ({policy.effective_strategy()}); waiting...",
              file=sys.stderr)
        desc = wait_for_endpoint(sm, endpoint, timeout_s=args.timeout)
        out.update(endpoint_status=desc["EndpointStatus"], endpoint_config_name=desc["EndpointConfigName"],
                   failure_reason=desc.get("FailureReason"))
        out["status"] = "deployed" if desc["EndpointConfigName"] == result.endpoint_config_name and \
            desc["EndpointStatus"] == "InService" else "rolled back"
    if args.json:
        print_json(out)
    else:
        print_kv({k: v for k, v in out.items() if k != "deployment_config"})
    return 0 if out["status"] != "rolled back" else 3


def _weights(args: argparse.Namespace, settings: Settings) -> int:
    from deployment.deploy import set_variant_weights

    weights: dict[str, float] = {}
    for name, value in parse_assignments(args.weights, "weight", "A=0.8 B=0.2").items():
        try:
            weights[name] = float(value)
        except ValueError:
            raise UsageError(f"weight of variant {name}: {value!r} is not a number (e.g. A=0.8 B=0.2)") from None
    try:
        set_variant_weights(_sm(settings), args.name, weights)
    except Exception as exc:
        raise _client_error(exc) from None
    if args.json:
        print_json({"endpoint": args.name, "weights": weights})
    else:
        print(f"{args.name}: weights {weights} requested")
    return 0


def _delete(args: argparse.Namespace, settings: Settings) -> int:
    from botocore.exceptions import ClientError

    sm = _sm(settings)
    try:
        desc = sm.describe_endpoint(EndpointName=args.name)
        sm.delete_endpoint(EndpointName=args.name)
        if args.delete_config:
            sm.delete_endpoint_config(EndpointConfigName=desc["EndpointConfigName"])
    except ClientError as exc:
        raise _client_error(exc) from None
    out = {"endpoint": args.name, "deleted": True,
           "endpoint_config_deleted": desc["EndpointConfigName"] if args.delete_config else None}
    print_json(out) if args.json else print(f"deleted endpoint {args.name}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `endpoint` command group."""
    from aircast.cli import add_group, bounded_float, bounded_int

    group = add_group(sub, "endpoint", "real-time endpoints: list, describe, invoke, deploy (blue/green), delete")
    p = group.add_parser("list", help="endpoints and their status")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_list)

    p = group.add_parser("describe", help="status, variant weights, deployment progress and history")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_describe)

    p = group.add_parser("invoke", help="send a DeepAR request file, print the predictions")
    p.add_argument("name")
    p.add_argument("--file", required=True, help="DeepAR JSON request ('-' for stdin)")
    p.add_argument("--variant", help="TargetVariant (A/B)")
    p.add_argument("--target-model", help="TargetModel (multi-model endpoints only; DeepAR endpoints refuse it)")
    p.add_argument("--json", action="store_true", help="print the whole response object")
    p.set_defaults(func=_invoke)

    p = group.add_parser("deploy", help="deploy one Approved model package (blue/green with auto-rollback)")
    p.add_argument("--model-package", required=True, help="model package ARN or version number of the group")
    p.add_argument("--endpoint", help="endpoint name (default: settings endpoint_name)")
    p.add_argument("--strategy", choices=("auto", "canary", "linear", "all-at-once"),
                   help="auto: a canary when the variant has 2+ instances, else all at once")
    p.add_argument("--step-percent", type=bounded_int(1, 100), help="canary size / linear step in %% of the variant's instances")
    p.add_argument("--instance-count", type=bounded_int(1, 100), help="instances of the variant (a canary needs 2 or more)")
    p.add_argument("--wait-seconds", type=bounded_int(0, 3600), help="baking period after each traffic shift (0-3600)")
    p.add_argument("--termination-wait-seconds", type=bounded_int(0, 3600), help="blue kept after the last shift (0-3600)")
    p.add_argument("--max-timeout-seconds", type=bounded_int(600, 28800), help="whole deployment limit (600-28800)")
    p.add_argument("--error-rate-threshold", type=bounded_float(0.0, 1.0), help="rollback when green's error rate exceeds this (0-1)")
    p.add_argument("--latency-p99-ms", type=bounded_float(0.0, low_open=True), help="rollback when green's p99 model latency exceeds this")
    p.add_argument("--fault-injection", help="local chaos hook: AIRCAST_FAULT_INJECTION for the new model "
                                             "(error, error_rate=0.3, latency_ms=800, load_failure)")
    p.add_argument("--wait", action="store_true", help="wait until the deployment completes or rolls back")
    p.add_argument("--timeout", type=bounded_float(0.0, low_open=True), default=3600.0, help="seconds to wait with --wait")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_deploy)

    p = group.add_parser("weights", help="set A/B variant weights (update_endpoint_weights_and_capacities)")
    p.add_argument("name")
    p.add_argument("weights", nargs="+", metavar="VARIANT=WEIGHT")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_weights)

    p = group.add_parser("delete", help="delete an endpoint")
    p.add_argument("name")
    p.add_argument("--delete-config", action="store_true", help="also delete its endpoint config")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_delete)

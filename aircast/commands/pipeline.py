"""`aircast pipeline ...`: run the model-build pipeline and inspect its executions.

Locally (the default backend) ``run`` builds the definition, uploads the job scripts to
the local S3, upserts the pipeline and executes it here with a progress line per step.
With ``--backend aws`` the same commands go through boto3 (``run`` then starts the
execution on SageMaker and returns its ARN unless ``--wait``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from aircast.cli import add_group
from aircast.output import (
    CommandError,
    UsageError,
    check_output_file,
    parse_assignments,
    print_json,
    print_kv,
    print_table,
)
from aircast.settings import Settings


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `pipeline` command group."""
    group = add_group(sub, "pipeline", "the SageMaker model-build pipeline (DeepAR)")

    run = group.add_parser("run", help="upsert the pipeline and run (locally) or start (AWS) an execution")
    run.add_argument("--local", action="store_true", help="run on the local stand-ins (the default backend)")
    run.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE",
                     help="override a pipeline parameter (repeatable), e.g. --param Epochs=5")
    run.add_argument("--no-wait", action="store_true", help="start the execution and return its ARN at once")
    run.add_argument("--json", action="store_true", help="print the execution summary as JSON")
    run.set_defaults(func=cmd_run)

    definition = group.add_parser("definition", help="print the pipeline definition JSON (no AWS call)")
    definition.add_argument("--output", "-o", help="write to this file instead of stdout")
    definition.set_defaults(func=cmd_definition)

    params = group.add_parser("parameters", help="list the pipeline parameters and their defaults")
    params.add_argument("--json", action="store_true")
    params.set_defaults(func=cmd_parameters)

    execs = group.add_parser("executions", help="list executions of the pipeline, newest first")
    execs.add_argument("--json", action="store_true")
    execs.set_defaults(func=cmd_executions)

    steps = group.add_parser("steps", help="the steps of one execution (default: the latest)")
    steps.add_argument("execution", nargs="?", help="execution ARN or id (default: latest)")
    steps.add_argument("--json", action="store_true")
    steps.set_defaults(func=cmd_steps)


def _definition(settings: Settings) -> tuple[str, str]:
    from pipelines.definition import build_definition

    return build_definition(settings)


def _client(settings: Settings) -> Any:
    from aircast.clients import get_client

    return get_client("sagemaker", settings)


def _check_param_names(definition: str, params: dict[str, str]) -> None:
    names = [p["Name"] for p in json.loads(definition).get("Parameters", [])]
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise UsageError(f"unknown pipeline parameter(s): {', '.join(unknown)}; accepted: {', '.join(names)}")


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    params = parse_assignments(args.param, "--param", "Epochs=5")
    if args.local:
        settings = settings.replace(backend="local")
    definition, prefix = _definition(settings)
    _check_param_names(definition, params)
    if settings.backend == "local":
        from aircast import local_wiring

        summary = local_wiring.run_local_pipeline(settings, params, progress=True, wait=not args.no_wait,
                                     definition=(definition, prefix))
    else:
        summary = _run_aws(settings, definition, prefix, params, wait=not args.no_wait)
    if args.json:
        print_json(summary)
    else:
        _print_summary(summary)
    return 0 if summary["status"] in ("Succeeded", "Executing") else 1


def _run_aws(settings: Settings, definition: str, prefix: str, params: dict[str, str], wait: bool) -> dict[str, Any]:
    from aircast.clients import get_client
    from pipelines.code import definition_code_version, upload_code
    from pipelines.executions import execution_summary, pipeline_parameters, upsert_pipeline, wait_for_execution

    upload_code(get_client("s3", settings), settings.artifacts_bucket, prefix,
                version=definition_code_version(definition))
    client = _client(settings)
    upsert_pipeline(client, settings.pipeline_name, definition, settings.role_arn, "aircast model build")
    arn = client.start_pipeline_execution(
        PipelineName=settings.pipeline_name,
        PipelineParameters=pipeline_parameters(params))["PipelineExecutionArn"]
    print(f"started {arn}", file=sys.stderr)
    if not wait:
        return {"execution_arn": arn, "status": "Executing"}
    wait_for_execution(client, arn, timeout_s=6 * 3600, poll_s=30)
    return execution_summary(client, arn)


def _print_summary(summary: dict[str, Any]) -> None:
    print_kv({"execution": summary["execution_arn"], "status": summary["status"]})
    if summary.get("steps"):
        print()
        print_table(summary["steps"], ["step", "status", "seconds", "detail"])
    if summary.get("failure_reason"):
        print(f"\nfailure: {summary['failure_reason']}")
    if summary.get("model_package_arn"):
        print(f"\nregistered: {summary['model_package_arn']}")
    elif summary["status"] != "Executing":
        print("\nno model package was registered")


def cmd_definition(args: argparse.Namespace, settings: Settings) -> int:
    if args.output is not None:
        check_output_file(args.output, "--output")
    definition, _ = _definition(settings)
    text = json.dumps(json.loads(definition), indent=2)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        with open(args.output, "w") as fh:
            fh.write(text + "\n")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(text)
    return 0


def cmd_parameters(args: argparse.Namespace, settings: Settings) -> int:
    definition, _ = _definition(settings)
    rows = [{"name": p["Name"], "type": p["Type"], "default": p.get("DefaultValue")}
            for p in json.loads(definition)["Parameters"]]
    if args.json:
        print_json(rows)
    else:
        print_table(rows)
    return 0


def _executions(settings: Settings) -> list[dict[str, Any]]:
    from aircast.reads import NotFound, pipeline_executions

    try:
        return pipeline_executions(_client(settings), settings.pipeline_name)
    except NotFound as exc:
        raise CommandError(str(exc)) from exc


def cmd_executions(args: argparse.Namespace, settings: Settings) -> int:
    rows = _executions(settings)
    if args.json:
        print_json(rows)
        return 0
    print_table([{"execution": r["PipelineExecutionArn"].rsplit("/", 1)[-1], "status": r["PipelineExecutionStatus"],
                  "started": r["StartTime"].strftime("%Y-%m-%d %H:%M:%S"),
                  "failure": r.get("PipelineExecutionFailureReason", "")} for r in rows],
                empty=f"(no executions of {settings.pipeline_name})")
    return 0


def cmd_steps(args: argparse.Namespace, settings: Settings) -> int:
    from botocore.exceptions import ClientError

    from pipelines.executions import execution_summary

    rows = _executions(settings)
    if args.execution:
        match = [r["PipelineExecutionArn"] for r in rows
                 if r["PipelineExecutionArn"] == args.execution or r["PipelineExecutionArn"].endswith("/" + args.execution)]
        if not match:
            raise UsageError(f"no execution {args.execution!r} of {settings.pipeline_name}; "
                               "see `aircast pipeline executions`")
        arn = match[0]
    elif rows:
        arn = rows[0]["PipelineExecutionArn"]
    else:
        raise CommandError(f"pipeline {settings.pipeline_name} has no executions yet")
    try:
        summary = execution_summary(_client(settings), arn)
    except ClientError as exc:
        raise CommandError(str(exc)) from exc
    if args.json:
        print_json(summary)
    else:
        _print_summary(summary)
    return 0

"""``run-pipeline``: upload the job scripts, upsert the pipeline and start an execution.

Like the SageMaker project templates' script, for CI::

    run-pipeline --module-name pipelines.aircast.pipeline --role-arn ARN \\
        --kwargs '{"region": "eu-west-1", "default_bucket": "..."}' --tags '[{"Key": "k", "Value": "v"}]' \\
        [--parameters '{"Epochs": 5}'] [--wait]

It prints the execution ARN and returns at once unless ``--wait`` (CI must not hang).
The backend (``--backend``, env ``AIRCAST_BACKEND``) picks boto3 or the local stand-ins.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections.abc import Sequence
from typing import Any

from pipelines.definition import (
    DEFAULT_MODULE,
    PipelineArgumentError,
    accepted_arguments,
    check_arguments,
    load_get_pipeline,
)


def _json_arg(text: str, what: str, kind: type) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PipelineArgumentError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(value, kind):
        raise PipelineArgumentError(f"{what} must be a JSON {kind.__name__}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run-pipeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module-name", default=DEFAULT_MODULE)
    parser.add_argument("--role-arn", required=True, help="SageMaker execution role for the pipeline")
    parser.add_argument("--kwargs", default="{}", help="JSON object of get_pipeline arguments")
    parser.add_argument("--tags", default="[]", help='pipeline tags, JSON [{"Key": ..., "Value": ...}]')
    parser.add_argument("--parameters", default="{}", help="JSON object of pipeline parameter overrides")
    parser.add_argument("--description", default="aircast model build")
    parser.add_argument("--backend", choices=("local", "aws"), help="default: AIRCAST_BACKEND or local")
    parser.add_argument("--wait", action="store_true", help="block until the execution ends")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except PipelineArgumentError as exc:
        print(f"run-pipeline: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from aircast.clients import get_client
    from aircast.settings import load_settings
    from pipelines.code import CodeChanged, definition_code_version, upload_code
    from pipelines.executions import pipeline_parameters, upsert_pipeline, wait_for_execution

    kwargs = _json_arg(args.kwargs, "--kwargs", dict)
    tags = _json_arg(args.tags, "--tags", list)
    parameters = _json_arg(args.parameters, "--parameters", dict)
    settings = load_settings(backend=args.backend)
    get_pipeline = load_get_pipeline(args.module_name)
    params = accepted_arguments(get_pipeline)
    kwargs.setdefault("region", settings.region)
    kwargs["role"] = args.role_arn
    if "tags" in params:
        kwargs.setdefault("tags", tags)
    check_arguments(get_pipeline, kwargs)
    pipeline = get_pipeline(**kwargs)
    definition = pipeline.definition()

    def arg(name: str) -> Any:
        default = params[name].default if name in params else None
        return kwargs.get(name, None if default is inspect.Parameter.empty else default)

    try:
        # the definition names the code by content version; upload exactly that version
        version = definition_code_version(definition)
        uris = upload_code(get_client("s3", settings), arg("default_bucket"), arg("default_bucket_prefix"),
                           version=version)
        print(f"uploaded {len(uris)} job files to {uris[0].split('/code/')[0]}/code/{version}/", file=sys.stderr)
        client = get_client("sagemaker", settings)
        arn = upsert_pipeline(client, pipeline.name, definition, args.role_arn, args.description, tags)
        print(f"upserted {arn}", file=sys.stderr)
        start = client.start_pipeline_execution(PipelineName=pipeline.name,
                                                PipelineParameters=pipeline_parameters(parameters))
    except (ClientError, BotoCoreError, CodeChanged) as exc:
        print(f"run-pipeline: error: {exc}", file=sys.stderr)
        return 1
    execution_arn = start["PipelineExecutionArn"]
    print(execution_arn)
    if not args.wait:
        return 0
    desc = wait_for_execution(client, execution_arn, timeout_s=6 * 3600, poll_s=5 if settings.backend == "local" else 30)
    print(json.dumps({"status": desc["PipelineExecutionStatus"], "failure_reason": desc.get("FailureReason")}))
    return 0 if desc["PipelineExecutionStatus"] == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())

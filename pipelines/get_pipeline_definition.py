"""``get-pipeline-definition``: print (or write) the pipeline definition JSON; no AWS call."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from pipelines.definition import DEFAULT_MODULE, PipelineArgumentError, check_arguments, load_get_pipeline


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="get-pipeline-definition", description=__doc__)
    parser.add_argument("--module-name", default=DEFAULT_MODULE, help=f"module with get_pipeline (default {DEFAULT_MODULE})")
    parser.add_argument("--file-name", "-f", help="write the JSON here instead of stdout")
    parser.add_argument("--kwargs", default="{}", help="JSON object of get_pipeline arguments")
    args = parser.parse_args(argv)
    try:
        kwargs = json.loads(args.kwargs)
        if not isinstance(kwargs, dict):
            raise ValueError("--kwargs must be a JSON object")
        get_pipeline = load_get_pipeline(args.module_name)
        kwargs.setdefault("region", "us-east-1")
        kwargs.setdefault("role", "arn:aws:iam::000000000000:role/aircast-sagemaker-execution")
        check_arguments(get_pipeline, kwargs)
        definition = json.dumps(json.loads(get_pipeline(**kwargs).definition()), indent=2)
    except (ValueError, PipelineArgumentError) as exc:
        print(f"get-pipeline-definition: error: {exc}", file=sys.stderr)
        return 2
    if args.file_name:
        with open(args.file_name, "w") as fh:
            fh.write(definition + "\n")
    else:
        print(definition)
    return 0


if __name__ == "__main__":
    sys.exit(main())

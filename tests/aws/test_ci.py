"""CI/CD definitions: tests on every push, the pipeline upserted and started on main with OIDC
credentials and without waiting, the same from CodeBuild; the arguments CI hands to
``run-pipeline`` are ones ``get_pipeline`` accepts."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"
BUILDSPEC = REPO_ROOT / "codebuild-buildspec.yml"


def get_pipeline_arguments() -> set[str]:
    """Parameter names of ``pipelines.aircast.pipeline.get_pipeline`` (read from the source: no SDK import)."""
    tree = ast.parse((REPO_ROOT / "pipelines" / "aircast" / "pipeline.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "get_pipeline")
    return {a.arg for a in fn.args.args + fn.args.kwonlyargs}


def _workflow() -> dict[str, Any]:
    # PyYAML reads the key `on` as True (YAML 1.1); normalise it
    doc = yaml.safe_load(WORKFLOW.read_text())
    doc["on"] = doc.pop(True, doc.get("on"))
    return doc


def _capture_run_pipeline(script: str, env: dict[str, str], tmp_path: Path) -> list[str]:
    """Run a CI shell snippet with ``.venv/bin/run-pipeline`` replaced by an argv recorder."""
    fake = tmp_path / ".venv" / "bin" / "run-pipeline"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/usr/bin/env python3\nimport json, sys\n'
                    'open("argv.json", "w").write(json.dumps(sys.argv[1:]))\n'
                    'print("arn:aws:sagemaker:eu-west-1:123456789012:pipeline/aircast-deepar/execution/x")\n')
    fake.chmod(0o755)
    summary = tmp_path / "summary.md"
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         env={"PATH": os.environ["PATH"], "GITHUB_STEP_SUMMARY": str(summary), **env}, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads((tmp_path / "argv.json").read_text())


def _check_run_pipeline_argv(argv: list[str]) -> dict[str, Any]:
    assert "--wait" not in argv, "CI must not block on the execution"
    assert len(argv) % 2 == 0, argv  # every option has its value
    args = dict(zip(argv[::2], argv[1::2], strict=True))
    assert args["--backend"] == "aws" and args["--module-name"] == "pipelines.aircast.pipeline"
    kwargs = json.loads(args["--kwargs"])
    assert set(kwargs) <= get_pipeline_arguments(), set(kwargs) - get_pipeline_arguments()
    tags = json.loads(args["--tags"])
    assert all(set(t) == {"Key", "Value"} for t in tags)
    return {"kwargs": kwargs, "tags": tags, "role": args["--role-arn"]}


def test_workflow_tests_every_push_with_the_ci_script() -> None:
    doc = _workflow()
    assert "push" in doc["on"] and doc["on"]["push"] in (None, {}), "tests run on every push, every branch"
    steps = doc["jobs"]["test"]["steps"]
    assert any(step.get("run") == ".ci/run" for step in steps)
    assert (REPO_ROOT / ".ci" / "run").read_text().rstrip().endswith("make test")


def test_pipeline_job_runs_on_main_with_oidc_credentials() -> None:
    job = _workflow()["jobs"]["pipeline"]
    assert job["needs"] == "test"
    assert "github.ref == 'refs/heads/main'" in job["if"] and "github.event_name == 'push'" in job["if"]
    assert job["permissions"]["id-token"] == "write"
    creds = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("aws-actions/configure-aws-credentials@"))
    assert "role-to-assume" in creds["with"] and "aws-access-key-id" not in creds["with"]
    names = [s.get("uses") or s.get("name") for s in job["steps"]]
    assert names.index(creds["uses"]) < names.index("Upsert and start the pipeline")


#: the stack's DeployFunctionArn output, as a repository variable / CodeBuild environment value
DEPLOY_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:my-deploy"
KWARGS = {"region": "eu-west-1", "default_bucket": "arts", "input_data_uri": "s3://lake/curated/hourly/"}


@pytest.mark.skipif(shutil.which("jq") is None, reason="the workflow builds its JSON with jq (on GitHub's runners)")
@pytest.mark.parametrize("deploy_arn", ["", DEPLOY_ARN])
def test_workflow_hands_run_pipeline_arguments_get_pipeline_accepts(tmp_path: Path, deploy_arn: str) -> None:
    step = next(s for s in _workflow()["jobs"]["pipeline"]["steps"] if s.get("name") == "Upsert and start the pipeline")
    env = {k: v for k, v in step["env"].items() if "${{" not in str(v)}
    env.update({"AIRCAST_REGION": "eu-west-1", "ROLE_ARN": "arn:aws:iam::123456789012:role/aircast-sagemaker-execution",
                "ARTIFACTS_BUCKET": "arts", "LAKE_BUCKET": "lake", "GITHUB_SHA": "abc123",
                "DEPLOY_FUNCTION_ARN": deploy_arn})
    assert step["env"]["DEPLOY_FUNCTION_ARN"] == "${{ vars.AIRCAST_DEPLOY_FUNCTION_ARN }}"
    got = _check_run_pipeline_argv(_capture_run_pipeline(step["run"], env, tmp_path))
    assert got["kwargs"] == (KWARGS | {"deploy_function_arn": deploy_arn} if deploy_arn else KWARGS)
    assert {"Key": "git-sha", "Value": "abc123"} in got["tags"]
    assert got["role"].endswith(":role/aircast-sagemaker-execution")
    assert "execution/x" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize("deploy_arn", [None, DEPLOY_ARN])
def test_buildspec_does_the_same_as_the_workflow(tmp_path: Path, deploy_arn: str | None) -> None:
    spec = yaml.safe_load(BUILDSPEC.read_text())
    assert spec["version"] == 0.2
    assert spec["env"]["variables"]["AIRCAST_BACKEND"] == "aws"
    script = "\n".join(spec["phases"]["build"]["commands"])
    env = {"AWS_REGION": "eu-west-1", "SAGEMAKER_PIPELINE_ROLE_ARN": "arn:aws:iam::123456789012:role/r",
           "ARTIFACT_BUCKET": "arts", "LAKE_BUCKET": "lake", "CODEBUILD_RESOLVED_SOURCE_VERSION": "abc123"}
    if deploy_arn:
        env["DEPLOY_FUNCTION_ARN"] = deploy_arn
    got = _check_run_pipeline_argv(_capture_run_pipeline(script, env, tmp_path))
    assert got["kwargs"] == (KWARGS | {"deploy_function_arn": deploy_arn} if deploy_arn else KWARGS)

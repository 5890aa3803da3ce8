"""CI/CD definitions: tests on every push, the pipeline upserted and started on main with OIDC
credentials and without waiting; CodeBuild runs the same tests first and the same upsert script;
the arguments CI hands to ``run-pipeline`` are ones ``get_pipeline`` accepts.

The CI snippets run here for real with ``bash``, on a PATH that holds only ``bash`` and ``python3``
(no jq or other tool a fresh machine may lack), with ``.venv/bin/run-pipeline`` replaced by a
recorder of its arguments.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO_ROOT

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "ci.yml"
BUILDSPEC = REPO_ROOT / "codebuild-buildspec.yml"
START_PIPELINE = REPO_ROOT / ".ci" / "start-pipeline"
STACK_ENV = {"AIRCAST_REGION": "eu-west-1", "AIRCAST_ROLE_ARN": "arn:aws:iam::123456789012:role/r",
             "AIRCAST_ARTIFACTS_BUCKET": "arts", "AIRCAST_LAKE_BUCKET": "lake", "GIT_SHA": "abc123"}


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


def _buildspec() -> dict[str, Any]:
    return yaml.safe_load(BUILDSPEC.read_text())


def _minimal_path(tmp_path: Path) -> str:
    """A PATH with only bash and python3 on it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "bash").symlink_to(shutil.which("bash"))
    (bin_dir / "python3").symlink_to(sys.executable)
    return str(bin_dir)


def _run_ci_snippet(script: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run a CI shell snippet in a checkout holding .ci/ and a fake ``.venv/bin/run-pipeline``."""
    checkout = tmp_path / "checkout"
    shutil.copytree(REPO_ROOT / ".ci", checkout / ".ci")
    fake = checkout / ".venv" / "bin" / "run-pipeline"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/usr/bin/env python3\nimport json, sys\n'
                    'open("argv.json", "w").write(json.dumps(sys.argv[1:]))\n'
                    'print("arn:aws:sagemaker:eu-west-1:123456789012:pipeline/aircast-deepar/execution/x")\n')
    fake.chmod(0o755)
    return subprocess.run([shutil.which("bash"), "-euo", "pipefail", "-c", script], cwd=checkout,
                          capture_output=True, text=True, timeout=30,
                          env={"PATH": _minimal_path(tmp_path), "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
                               **env})


def _captured_argv(tmp_path: Path) -> list[str]:
    return json.loads((tmp_path / "checkout" / "argv.json").read_text())


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


def test_workflow_hands_run_pipeline_arguments_get_pipeline_accepts(tmp_path: Path) -> None:
    step = next(s for s in _workflow()["jobs"]["pipeline"]["steps"] if s.get("name") == "Upsert and start the pipeline")
    assert step["run"].strip() == ".ci/start-pipeline"
    # the step's env names exactly the variables the script reads (their values come from GitHub)
    assert set(step["env"]) == set(STACK_ENV) | {"AIRCAST_DEPLOY_FUNCTION_ARN"}
    out = _run_ci_snippet(step["run"], STACK_ENV, tmp_path)
    assert out.returncode == 0, out.stderr
    got = _check_run_pipeline_argv(_captured_argv(tmp_path))
    assert got["kwargs"] == {"region": "eu-west-1", "default_bucket": "arts", "input_data_uri": "s3://lake/curated/hourly/"}
    assert {"Key": "git-sha", "Value": "abc123"} in got["tags"]
    assert got["role"] == STACK_ENV["AIRCAST_ROLE_ARN"]
    assert "execution/x" in (tmp_path / "summary.md").read_text()


def test_codebuild_runs_the_tests_then_the_same_upsert(tmp_path: Path) -> None:
    spec = _buildspec()
    assert spec["version"] == 0.2
    phases = spec["phases"]
    # the README's promise: CodeBuild runs the tests, and a failure stops the build before the upsert
    assert phases["pre_build"]["commands"] == [".ci/run"] and phases["pre_build"]["on-failure"] == "ABORT"
    assert list(phases) == ["install", "pre_build", "build"]
    assert not any(k.startswith("AIRCAST_") for k in spec.get("env", {}).get("variables", {})), \
        "AIRCAST_* variables would reach the tests, which run on the local backend"
    # a custom (Debian) image: CodeBuild supports runtime-versions only on its own images
    assert "runtime-versions" not in phases["install"]
    script = "\n".join(phases["build"]["commands"])
    assert ".ci/start-pipeline" in script
    env = {"AWS_REGION": "eu-west-1", "SAGEMAKER_PIPELINE_ROLE_ARN": "arn:aws:iam::123456789012:role/r",
           "ARTIFACT_BUCKET": "arts", "LAKE_BUCKET": "lake", "CODEBUILD_RESOLVED_SOURCE_VERSION": "abc123"}
    out = _run_ci_snippet(script, env, tmp_path)
    assert out.returncode == 0, out.stderr
    got = _check_run_pipeline_argv(_captured_argv(tmp_path))
    assert got["kwargs"] == {"region": "eu-west-1", "default_bucket": "arts", "input_data_uri": "s3://lake/curated/hourly/"}
    assert {"Key": "git-sha", "Value": "abc123"} in got["tags"] and got["role"] == env["SAGEMAKER_PIPELINE_ROLE_ARN"]


def test_both_ci_systems_use_the_debian_image_bootstrap_installs_on() -> None:
    jobs = _workflow()["jobs"]
    images = {jobs[name]["container"] for name in ("test", "pipeline")}
    assert len(images) == 1
    (image,) = images
    assert image.endswith("-bookworm"), "scripts/bootstrap.sh installs Debian packages"
    # CodeBuild's environment image is set on the project; the buildspec names it
    assert f"public.ecr.aws/docker/library/{image}" in BUILDSPEC.read_text()
    assert "apt-get install" in (REPO_ROOT / "scripts" / "bootstrap.sh").read_text()


@pytest.mark.parametrize("missing", sorted(STACK_ENV))
def test_start_pipeline_names_a_missing_variable(tmp_path: Path, missing: str) -> None:
    env = {k: v for k, v in STACK_ENV.items() if k != missing}
    out = _run_ci_snippet(".ci/start-pipeline", env, tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == f"start-pipeline: {missing} is not set (see the header of .ci/start-pipeline)"
    assert not (tmp_path / "checkout" / "argv.json").exists(), "nothing may reach SageMaker"


@pytest.mark.parametrize("system", ["github", "codebuild"])
def test_the_stacks_deploy_function_reaches_get_pipeline(tmp_path: Path, system: str) -> None:
    # the stack's DeployFunctionArn output (repository variable / CodeBuild environment) names the
    # function the Deploy step invokes (issue 12, finding 14); unset, get_pipeline's default applies
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:team-a-deploy"
    if system == "github":
        step = next(s for s in _workflow()["jobs"]["pipeline"]["steps"]
                    if s.get("name") == "Upsert and start the pipeline")
        assert step["env"]["AIRCAST_DEPLOY_FUNCTION_ARN"] == "${{ vars.AIRCAST_DEPLOY_FUNCTION_ARN }}"
        script, env = step["run"], {**STACK_ENV, "AIRCAST_DEPLOY_FUNCTION_ARN": arn}
    else:
        script = "\n".join(_buildspec()["phases"]["build"]["commands"])
        env = {"AWS_REGION": "eu-west-1", "SAGEMAKER_PIPELINE_ROLE_ARN": "arn:aws:iam::123456789012:role/r",
               "ARTIFACT_BUCKET": "arts", "LAKE_BUCKET": "lake", "CODEBUILD_RESOLVED_SOURCE_VERSION": "abc123",
               "DEPLOY_FUNCTION_ARN": arn}
    out = _run_ci_snippet(script, env, tmp_path)
    assert out.returncode == 0, out.stderr
    assert _check_run_pipeline_argv(_captured_argv(tmp_path))["kwargs"]["deploy_function_arn"] == arn

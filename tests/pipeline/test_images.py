"""Every image the pipeline names has a manifest, and the code that runs in it fits it: its Python
(vermin, since the local interpreter may be newer) and its modules; the same for the Glue job and
the Lambda functions. The stack's SageMaker role may pull each image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.local.runtimes import load_runtimes, runtime_for_image, runtime_named
from infra.local.runtimes.contract import job_code, missing_modules, python_violations
from tests.conftest import REPO_ROOT


def _images(obj: Any) -> set[str]:
    """Every image URI in a definition (processing, training, model, tuning)."""
    found: set[str] = set()
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in ("ImageUri", "TrainingImage", "Image") and isinstance(value, str):
                found.add(value)
            found |= _images(value)
    elif isinstance(obj, list):
        for value in obj:
            found |= _images(value)
    return found


def _processing_steps(definition: dict) -> list[dict]:
    steps, todo = [], list(definition["Steps"])
    while todo:
        step = todo.pop()
        todo += step.get("Arguments", {}).get("IfSteps", []) + step.get("Arguments", {}).get("ElseSteps", [])
        if step["Type"] == "Processing":
            steps.append(step)
    return steps


def _script(step: dict) -> Path:
    """The repo file a processing step runs (its code input is ``.../code/<version>/<package>/<script>.py``)."""
    code = [i for i in step["Arguments"]["ProcessingInputs"] if i["InputName"] == "code"][0]
    uri = code["S3Input"]["S3Uri"]
    return REPO_ROOT / uri.split("/code/", 1)[1].split("/", 1)[1]


def test_every_image_of_the_pipeline_has_a_manifest(definition: dict) -> None:
    images = _images(definition)
    assert len(images) >= 2
    kinds = {runtime_for_image(uri).kind for uri in images}
    assert kinds == {"script", "builtin-algorithm"}


def test_processing_image_is_the_one_its_manifest_describes() -> None:
    from sagemaker.core import image_uris

    from pipelines.aircast.pipeline import PROCESSING_IMAGE

    runtime = runtime_named("autogluon-training:1.4.0-cpu-py311")
    assert PROCESSING_IMAGE == runtime.sdk_retrieve
    for region in ("us-east-1", "eu-west-1", "ap-southeast-2"):
        assert runtime_for_image(image_uris.retrieve(**runtime.retrieve_kwargs(region))) is not None


def test_each_processing_script_fits_its_image(definition: dict) -> None:
    steps = _processing_steps(definition)
    assert {s["Name"] for s in steps} >= {"Preprocess", "Evaluate"}
    for step in steps:
        runtime = runtime_for_image(step["Arguments"]["AppSpecification"]["ImageUri"])
        script = _script(step)
        assert script.is_file(), script
        # the job packages are mounted as /opt/ml/processing/input/lib, which is the repo root's layout
        files = job_code(script, [REPO_ROOT])
        assert python_violations(files, runtime.python) == [], f"{step['Name']} in {runtime.name}"
        assert missing_modules(runtime, script, [REPO_ROOT]) == {}, f"{step['Name']} in {runtime.name}"


def test_glue_script_fits_glue_5() -> None:
    glue = runtime_named("glue-5.0")
    script = REPO_ROOT / "processing" / "glue_etl.py"
    assert python_violations(job_code(script, []), glue.python) == []
    assert missing_modules(glue, script, []) == {}


@pytest.mark.parametrize("handler", ["deployment/handler.py", "aircast/monitoring.py"])
def test_lambda_code_fits_its_runtime_python(handler: str) -> None:
    runtime = runtime_named("lambda-python3.12")
    files = job_code(REPO_ROOT / handler, [REPO_ROOT])
    assert len(files) > 1
    assert python_violations(files, runtime.python) == []


def test_the_stack_role_may_pull_every_pipeline_image(definition: dict) -> None:
    from cfnlint.decode.decode import decode_str

    from infra.aws import provision

    template, errors = decode_str(provision.TEMPLATE_PATH.read_text())
    assert not errors
    role = template["Resources"]["SageMakerExecutionRole"]["Properties"]
    allowed = set()
    for policy in role["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "ecr:BatchGetImage" in statement["Action"]:
                allowed |= {r["Fn::Sub"].rsplit("repository/", 1)[1] for r in statement["Resource"]}
    needed = {runtime_for_image(uri).repository for uri in _images(definition)}
    assert needed <= allowed, f"the SageMaker role cannot pull {sorted(needed - allowed)}"


def test_manifests_cover_only_what_is_used_or_documented() -> None:
    # a manifest nobody uses rots: each is the pipeline's, the stack's, or named in docs/aws.md
    text = (REPO_ROOT / "docs" / "aws.md").read_text()
    for runtime in load_runtimes().values():
        assert runtime.name in text, f"docs/aws.md does not mention runtime {runtime.name}"

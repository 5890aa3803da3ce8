"""Job code is uploaded under its content version and the definition names that version, so a push
while an execution runs cannot change the code the execution reads (issue 12, finding 15)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aircast.clients import get_client
from pipelines.code import (
    CodeChanged,
    code_prefix_uri,
    code_version,
    definition_code_version,
    script_uri,
    upload_code,
)
from tests.conftest import REPO_ROOT


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the job packages, to edit as a developer would between two pushes."""
    for package in ("processing", "evaluation"):
        shutil.copytree(REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_version_follows_content_names_and_files(checkout: Path) -> None:
    first = code_version(checkout)
    assert first == code_version(checkout) == code_version(REPO_ROOT)  # content, not place or time
    script = checkout / "evaluation" / "evaluate.py"
    script.write_text(script.read_text() + "\n# a change\n")
    second = code_version(checkout)
    (checkout / "processing" / "extra.py").write_text("X = 1\n")
    third = code_version(checkout)
    (checkout / "processing" / "extra.py").rename(checkout / "processing" / "other.py")
    assert len({first, second, third, code_version(checkout)}) == 4


def test_uris_name_the_version() -> None:
    assert code_prefix_uri("b", "p/q/", "0123456789abcdef") == "s3://b/p/q/code/0123456789abcdef"
    assert script_uri("b", "", "evaluation", "evaluate.py", "0123456789abcdef") == \
        "s3://b/code/0123456789abcdef/evaluation/evaluate.py"
    assert script_uri("b", "p", "processing", "preprocess.py") == f"s3://b/p/code/{code_version()}/processing/preprocess.py"


def test_a_push_during_an_execution_leaves_its_code_alone(settings, checkout: Path) -> None:
    s3 = get_client("s3", settings)
    bucket, prefix = settings.artifacts_bucket, "pipelines/aircast-deepar"
    running = upload_code(s3, bucket, prefix, checkout)  # what the running execution's definition names
    evaluate_uri = next(u for u in running if u.endswith("/evaluation/evaluate.py"))
    before = s3.get_object(Bucket=bucket, Key=evaluate_uri.split(f"{bucket}/", 1)[1])["Body"].read()
    # the next push changes the script and uploads again (CI: run-pipeline)
    script = checkout / "evaluation" / "evaluate.py"
    script.write_text(script.read_text().replace("def main(", "def main_v2(", 1))
    pushed = upload_code(s3, bucket, prefix, checkout)
    assert set(pushed).isdisjoint(running)
    after = s3.get_object(Bucket=bucket, Key=evaluate_uri.split(f"{bucket}/", 1)[1])["Body"].read()
    assert after == before and b"def main_v2(" not in after


def test_definition_names_one_version_and_upload_refuses_other_code(settings, checkout: Path) -> None:
    version = code_version(checkout)
    definition = f'{{"a": "s3://b/p/code/{version}/processing/preprocess.py", "lib": "s3://b/p/code/{version}"}}'
    assert definition_code_version(definition) == version
    with pytest.raises(CodeChanged, match="names 2 job-code versions"):
        definition_code_version(definition + '"s3://b/p/code/0123456789abcdef"')  # a lib of another version
    (checkout / "processing" / "preprocess.py").write_text("# edited after the definition was built\n")
    s3 = get_client("s3", settings)
    with pytest.raises(CodeChanged, match=f"names version {version}, the files are version"):
        upload_code(s3, settings.artifacts_bucket, "p", checkout, version=version)
    assert "Contents" not in s3.list_objects_v2(Bucket=settings.artifacts_bucket, Prefix="p/")  # nothing uploaded


def test_the_definition_reads_every_script_from_one_version(definition: dict) -> None:
    import json

    assert definition_code_version(json.dumps(definition)) == code_version()

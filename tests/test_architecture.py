"""One direction of dependency: the import-linter contracts of pyproject.toml hold (the layers: aircast >
deployment, pipelines, device, the emulator, infra/aws > job code and AWS's rules in awsrules/; the local
AWS emulator imports nothing of aircast, aircast wires it in aircast/local_wiring.py; the code that runs on
AWS imports nothing of the emulator; awsrules imports nothing of ours), and importing a module changes
nothing in the process that imports it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib

import pytest
from importlinter.cli import lint_imports

from tests.conftest import REPO_ROOT


def test_the_import_contracts_hold(capsys: pytest.CaptureFixture[str]) -> None:
    code = lint_imports(config_filename=str(REPO_ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out


def test_every_package_of_ours_sits_in_a_layer() -> None:
    """The layers contract (docs/DESIGN.md, "Layers") covers every package: a new top-level package, or a new
    part of infra/, has to be given its place instead of escaping the contract unchecked."""
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    placed = {name.strip(" ()") for layer in layers for name in layer.split("|")}
    ours = set()
    for root in config["root_packages"]:
        parts = [p.name for p in (REPO_ROOT / root).iterdir() if (p / "__init__.py").is_file()]
        ours |= {f"{root}.{part}" for part in parts} if root not in placed and parts else {root}
    assert ours <= placed, sorted(ours - placed)
    assert layers[0] == "aircast" and {"processing", "evaluation"} <= {n.strip(" ()") for n in layers[-1].split("|")}


#: what the modules below import from elsewhere, imported first: libraries that set warning filters of
#: their own when imported (urllib3, torch, Lightning) are not ours to judge
THIRD_PARTY = ("boto3", "numpy", "pandas", "torch", "lightning.pytorch")
#: modules that used to change the process when imported: warning filters (the local DeepAR), environment
#: variables for the SageMaker SDK (the pipeline)
OURS = ("infra.local.sagemaker.deepar", "pipelines.aircast.pipeline")


@pytest.mark.slow
def test_importing_the_pipeline_and_the_local_deepar_changes_nothing_in_the_process() -> None:
    """No import-time side effects: importing leaves os.environ and the warning filters as they were, imports
    no SageMaker SDK, prints no library chatter; building a definition, which imports the SDK, works with no
    region in the environment and gives the environment back as it found it."""
    script = textwrap.dedent(f"""
        import importlib, json, os, sys, warnings
        for name in {THIRD_PARTY!r}:
            importlib.import_module(name)
        env, filters = dict(os.environ), list(warnings.filters)
        for name in {OURS!r}:
            importlib.import_module(name)
        report = {{"filters": [repr(f[:3]) for f in warnings.filters if f not in filters],
                   "env": sorted(set(os.environ.items()) ^ set(env.items())),
                   "sdk_imported": "sagemaker" in sys.modules}}
        from pipelines.aircast.pipeline import get_pipeline
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            definition = json.loads(get_pipeline(region="eu-west-1",
                                                 role="arn:aws:iam::123456789012:role/r").definition())
        report["steps"] = len(definition["Steps"])
        report["env_after_build"] = sorted(set(os.environ.items()) ^ set(env.items()))
        report["lambda_warning"] = [str(w.message) for w in caught if "won't be updated" in str(w.message)]
        print(json.dumps(report))
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_DEFAULT_REGION", "AWS_REGION", "SAGEMAKER_"))}
    env["PYTHONPATH"] = str(REPO_ROOT)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["filters"] == [] and report["env"] == [] and not report["sdk_imported"], report
    assert "Using `json`-module" not in done.stderr  # gluonts' import-time chatter stays quiet all the same
    assert report["steps"] == 6 and report["env_after_build"] == [] and report["lambda_warning"] == [], report

"""Runtime manifests and the contract a local job runs under: the import guard (ModuleNotFoundError
for a module the image lacks, as the container raises it), the Python-version check, image lookup."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from infra.local.runtimes import UnknownImage, load_runtimes, parse_image_uri, runtime_for_image, runtime_named
from infra.local.runtimes.contract import (
    allowed_modules,
    job_code,
    missing_modules,
    python_violations,
    stdlib_modules,
    write_guard,
)
from infra.local.runtimes.manifests import ModuleSpec, Runtime, parse_manifest

AUTOGLUON = "autogluon-training:1.4.0-cpu-py311"


def test_every_manifest_loads_and_names_its_sources() -> None:
    runtimes = load_runtimes()
    assert {AUTOGLUON, "forecasting-deepar:1", "glue-5.0", "lambda-python3.12"} <= set(runtimes)
    for runtime in runtimes.values():
        assert all(s["url"].startswith("https://") for s in runtime.sources), runtime.name
        if runtime.kind == "script":
            assert runtime.python is not None and runtime.python >= (3, 9), runtime.name
        if runtime.service == "sagemaker":
            assert runtime.repository and runtime.tags and runtime.sdk_retrieve, runtime.name
    assert runtimes[AUTOGLUON].python == (3, 11)
    assert {"numpy", "pandas", "pyarrow", "statsforecast", "matplotlib"} <= set(runtimes[AUTOGLUON].modules)


def test_bad_manifest_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="a script runtime must name its python"):
        parse_manifest({"name": "x", "service": "sagemaker", "kind": "script", "modules": {}, "sources": [{"url": "u"}]})
    with pytest.raises(ValueError, match="top-level import names"):
        parse_manifest({"name": "x", "service": "sagemaker", "kind": "script", "python": "3.11",
                        "modules": {"scikit-learn": {"distribution": "scikit-learn"}}, "sources": [{"url": "u"}]})


@pytest.mark.parametrize("uri", [
    "763104351884.dkr.ecr.eu-west-1.amazonaws.com/autogluon-training:1.4.0-cpu-py311",
    "626614931356.dkr.ecr.af-south-1.amazonaws.com/autogluon-training:1.4.0-cpu-py311-ubuntu22.04",
    "727897471807.dkr.ecr.cn-north-1.amazonaws.com.cn/autogluon-training:1.4.0-cpu-py311",
])
def test_an_image_is_found_by_repository_and_tag_in_any_region(uri: str) -> None:
    assert runtime_for_image(uri).name == AUTOGLUON


def test_unknown_images_are_refused() -> None:
    with pytest.raises(UnknownImage, match="no manifest .* describes image autogluon-training:1.3.0-cpu-py311"):
        runtime_for_image("763104351884.dkr.ecr.eu-west-1.amazonaws.com/autogluon-training:1.3.0-cpu-py311")
    with pytest.raises(UnknownImage, match="not an ECR image URI"):
        runtime_for_image("python:3.11")
    assert parse_image_uri("1" * 12 + ".dkr.ecr.us-east-1.amazonaws.com/a/b") == ("a/b", "latest")
    with pytest.raises(UnknownImage, match="known: "):
        runtime_named("glue-9.9")


def test_stdlib_follows_the_image_python() -> None:
    assert "tomllib" not in stdlib_modules((3, 9)) and "tomllib" in stdlib_modules((3, 11))
    assert "distutils" in stdlib_modules((3, 11)) and "distutils" not in stdlib_modules((3, 12))
    assert {"json", "argparse", "pathlib"} <= stdlib_modules((3, 9))


# ---- the import guard, in a real Python process -----------------------------------------------
def _runtime(*modules: str, python: tuple[int, int] = (3, 11)) -> Runtime:
    return Runtime(name="test-image:1", service="sagemaker", kind="script", python=python,
                   modules={m: ModuleSpec(m, "", "test") for m in modules}, entrypoint=("python3",))


def _job(tmp_path: Path, script: str, runtime: Runtime) -> subprocess.CompletedProcess:
    """Run ``script`` as a processing job would: code dir + lib dir on PYTHONPATH, under the guard."""
    root = tmp_path / "opt" / "ml"
    code, lib = root / "processing" / "input" / "code", root / "processing" / "input" / "lib"
    (lib / "jobpkg").mkdir(parents=True)
    code.mkdir(parents=True)
    (lib / "jobpkg" / "__init__.py").write_text("")
    (lib / "jobpkg" / "helper.py").write_text("import json\nVALUE = json.dumps(1)\n")
    (code / "job.py").write_text(textwrap.dedent(script))
    guard = write_guard(tmp_path / "guard", runtime, [root])
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{guard}:{lib}"}
    return subprocess.run([sys.executable, str(code / "job.py")], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)


def test_an_import_the_image_lacks_fails_as_in_the_container(tmp_path: Path) -> None:
    proc = _job(tmp_path, """
        import json, sys
        import numpy                  # the image has it
        import pandas                 # ... and pandas' own imports (dateutil, pytz) are pandas' business
        from jobpkg.helper import VALUE   # the job's own code from the lib folder
        try:
            import duckdb             # not in the image
        except ModuleNotFoundError as exc:
            print("fallback:", exc)
        import importlib
        try:
            importlib.import_module("fastapi")
        except ModuleNotFoundError as exc:
            print("import_module:", exc)
        print("ok", VALUE, "sitecustomize" in sys.modules, any("guard" in p for p in sys.path))
        import matplotlib.pyplot      # not in this image: the job dies here
    """, _runtime("numpy", "pandas"))
    assert proc.returncode == 1, proc.stderr
    assert "fallback: No module named 'duckdb'" in proc.stdout
    assert "import_module: No module named 'fastapi'" in proc.stdout
    assert "ok 1 True False" in proc.stdout  # the guard's folder is off sys.path once installed
    assert proc.stderr.strip().splitlines()[-1] == "ModuleNotFoundError: No module named 'matplotlib'"


def test_the_same_job_runs_where_the_image_has_the_module(tmp_path: Path) -> None:
    proc = _job(tmp_path, "import matplotlib.pyplot\nprint('plotted')\n", _runtime("matplotlib"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "plotted"


def test_allowed_modules_are_stdlib_plus_the_manifest() -> None:
    allowed = allowed_modules(runtime_named(AUTOGLUON))
    assert {"json", "statsforecast", "pandas"} <= allowed and "duckdb" not in allowed and "aircast" not in allowed
    with pytest.raises(ValueError, match="built-in algorithm"):
        allowed_modules(runtime_named("forecasting-deepar:1"))


# ---- static checks: Python version, import closure ---------------------------------------------------
def test_python_violations_finds_what_an_older_python_rejects(tmp_path: Path) -> None:
    code = tmp_path / "job.py"
    code.write_text(textwrap.dedent("""
        from __future__ import annotations

        def f(a: list[int] | None, b) -> int | None:   # annotations are strings: fine on 3.9
            for x, y in zip(a, b, strict=True):
                pass
            return isinstance(a, list | tuple)
    """))
    problems = python_violations([code], (3, 9))
    assert [p.split(":", 1)[1] for p in problems] == [
        "5: 'zip(strict)' requires Python 3.10",
        "7: union types as `X | Y` (in isinstance()) requires Python 3.10"]
    assert python_violations([code], (3, 11)) == []


@pytest.mark.parametrize(("source", "lines"), [
    # postponed annotations are strings: never evaluated, fine on 3.9 (vermin's own check flags line 3)
    ("from __future__ import annotations\nimport pandas as pd\ndef f(a: str | pd.Timestamp) -> int | None: ...\n",
     []),
    ("import pandas as pd\ndef f(a: str | pd.Timestamp) -> None: ...\n", [2]),  # evaluated at def time
    ("from __future__ import annotations\nMaybe = int | None\n", [2]),          # a runtime type alias
    ("def f(a, b):\n    x: int | None = a | b\n    return x\n", []),              # int | int, local annotation
    ("import numpy as np\nok = isinstance(1, (int, np.integer))\n", []),
])
def test_union_types_only_where_python_evaluates_them(tmp_path: Path, source: str, lines: list[int]) -> None:
    code = tmp_path / "job.py"
    code.write_text(source)
    assert [int(p.split(":")[1]) for p in python_violations([code], (3, 9))] == lines


def test_job_code_follows_the_jobs_own_imports(tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    (lib / "pkg").mkdir(parents=True)
    (lib / "pkg" / "__init__.py").write_text("")
    (lib / "pkg" / "a.py").write_text("from . import b\nimport numpy\n")
    (lib / "pkg" / "b.py").write_text("import statsforecast\nimport nothere_at_all\n")
    (lib / "pkg" / "unused.py").write_text("import duckdb\n")
    script = tmp_path / "code" / "job.py"
    script.parent.mkdir()
    script.write_text("import json\nfrom pkg.a import x\n")
    files = {p.name for p in job_code(script, [lib])}
    assert files == {"job.py", "__init__.py", "a.py", "b.py"}
    missing = missing_modules(runtime_named(AUTOGLUON), script, [lib])
    assert set(missing) == {"nothere_at_all"} and missing["nothere_at_all"][0].endswith("b.py:2")


def test_guard_file_is_inert_when_imported_from_the_repo() -> None:
    import builtins

    before = builtins.__import__
    import infra.local.runtimes.guard  # noqa: F401

    assert builtins.__import__ is before
    assert json.loads(json.dumps(sorted(load_runtimes())))  # still importable/serialisable after

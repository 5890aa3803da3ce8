"""One direction of dependency: the import-linter contracts of pyproject.toml hold (the local AWS
emulator imports nothing of aircast, aircast wires it in aircast/local_wiring.py; the code that runs on
AWS imports nothing of the emulator; AWS's rules in awsrules/ import nothing of ours)."""

from __future__ import annotations

import pytest
from importlinter.cli import lint_imports

from tests.conftest import REPO_ROOT


def test_the_import_contracts_hold(capsys: pytest.CaptureFixture[str]) -> None:
    code = lint_imports(config_filename=str(REPO_ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out

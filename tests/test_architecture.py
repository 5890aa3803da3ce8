"""One direction of dependency: the import-linter contracts of pyproject.toml hold (the local AWS
emulator's services import nothing of aircast; aircast wires them in aircast/local_wiring.py)."""

from __future__ import annotations

import pytest
from importlinter.cli import lint_imports

from tests.conftest import REPO_ROOT


def test_the_import_contracts_hold(capsys: pytest.CaptureFixture[str]) -> None:
    code = lint_imports(config_filename=str(REPO_ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out

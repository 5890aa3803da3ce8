"""The local stack's per-data-dir token: owner-only file, stable, refused when others can read it."""

from __future__ import annotations

import os
import stat

import pytest

from infra.local.auth import TokenFileError, local_token, token_file, token_matches


def test_token_is_created_owner_only_and_stable(tmp_path):
    token = local_token(tmp_path)
    assert len(token) >= 32
    assert stat.S_IMODE(os.stat(token_file(tmp_path)).st_mode) == 0o600
    assert local_token(tmp_path) == token
    assert token_matches(tmp_path, token)
    assert not token_matches(tmp_path, token + "x")
    assert not token_matches(tmp_path, None)


def test_token_readable_by_others_is_refused(tmp_path):
    local_token(tmp_path)
    os.chmod(token_file(tmp_path), 0o644)
    with pytest.raises(TokenFileError, match="readable by other users"):
        local_token(tmp_path)

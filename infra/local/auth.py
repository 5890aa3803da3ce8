"""The local stack's shared secret: one random token per data dir, in a 0600 file.

The local services bind 127.0.0.1, but another local user or a web page in a local
browser can still reach a loopback port. A state-changing request to a local service
(the event bus, the console's approve button, the Glue service) must carry this token,
which only the owner of the data dir can read. On AWS, IAM plays this role.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from pathlib import Path

#: header a client sends the token in
TOKEN_HEADER = "X-Aircast-Token"
#: the token file, relative to the data dir
TOKEN_PATH = Path("run") / "local-token"


class TokenFileError(RuntimeError):
    """The token file is readable by others, or is not a file; the message says what to do."""


def token_file(data_dir: Path) -> Path:
    return Path(data_dir) / TOKEN_PATH


def local_token(data_dir: Path) -> str:
    """The data dir's token, created (0600, owner only) on first use."""
    path = token_file(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise TokenFileError(f"{path} is not a regular file; remove it and start the stack again")
    if info.st_mode & 0o077:
        raise TokenFileError(f"{path} is readable by other users (mode {stat.S_IMODE(info.st_mode):o}); "
                             f"run 'chmod 600 {path}' or remove it")
    token = path.read_text().strip()
    if not token:
        raise TokenFileError(f"{path} is empty; remove it and start the stack again")
    return token


def token_matches(data_dir: Path, presented: str | None) -> bool:
    """Whether ``presented`` is the data dir's token (constant-time comparison)."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode(), local_token(data_dir).encode())

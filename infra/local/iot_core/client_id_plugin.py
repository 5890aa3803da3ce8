"""Build the broker plugin that binds an MQTT client id to its certificate (``client_id_plugin.c``).

AWS IoT Core refuses a connection whose client id is not the thing the certificate
is attached to (policy ``iot:Connect`` on ``client/${iot:Connection.Thing.ThingName}``).
mosquitto has no option that refuses it: ``use_username_as_clientid`` silently
replaces the client id, and ``use_identity_as_username`` skips authentication
plugins. So a small plugin (about 150 lines of C) does it at CONNECT; it is compiled once per source
version into the user's cache (``$XDG_CACHE_HOME/aircast``, 0700) with the system C
compiler and the headers of Debian's ``mosquitto-dev``, ``libmosquitto-dev`` and
``libssl-dev``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

SOURCE = Path(__file__).with_name("client_id_plugin.c")
HEADERS = {
    "mosquitto-dev": "/usr/include/mosquitto_plugin.h",
    "libmosquitto-dev": "/usr/include/mosquitto.h",
    "libssl-dev": "/usr/include/openssl/x509.h",
}


class PluginBuildError(RuntimeError):
    """The plugin could not be compiled; the message says what to install."""


def compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")


def missing_build_tools() -> str | None:
    """A one-line reason the plugin cannot be built here, or None when it can."""
    missing = [] if compiler() else ["gcc"]
    missing += [pkg for pkg, header in HEADERS.items() if not Path(header).is_file()]
    if not missing:
        return None
    return (f"building the local IoT Core's client-id check needs {', '.join(missing)}: "
            f"apt-get install {' '.join(missing)} (make demo does)")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aircast"


def build(out_dir: Path | None = None) -> Path:
    """Path of the compiled plugin, compiling it first when this source version is not built yet."""
    source = SOURCE.read_bytes()
    out_dir = out_dir or cache_dir()
    target = out_dir / f"aircast_client_id-{hashlib.sha256(source).hexdigest()[:16]}.so"
    if target.is_file():
        return target
    problem = missing_build_tools()
    if problem:
        raise PluginBuildError(problem)
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = out_dir / f".{target.name}.{uuid.uuid4().hex}.tmp"
    cmd = [compiler() or "cc", "-O2", "-Wall", "-fPIC", "-shared", str(SOURCE), "-o", str(tmp), "-lcrypto"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise PluginBuildError(f"compiling {SOURCE.name} failed: {proc.stderr.strip()[-1000:]}")
    os.replace(tmp, target)  # atomic: two stacks starting at once both end with a whole file
    return target

"""The local stack: the embedded stand-ins that run as background processes.

Each service module offers a ``SERVICE`` (:class:`ServiceSpec`): how to prepare
its files and the argv to run. ``up`` starts them in order (refusing clearly
when a port is taken or a program is missing), ``down`` stops them, ``status``
reports PIDs and ports. PID files and logs live in ``<data_dir>/run``.

A PID file holds the PID and the process's start time (``/proc/PID/stat``), so a
stale file whose PID now belongs to another process (PIDs are reused) is
recognised as stale: ``down`` never signals a process it did not start.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aircast.settings import Settings
from infra.local.proc import alive, process_start_time

# Start order matters: the broker before the delivery stream that subscribes to it.
STACK: tuple[str, ...] = (
    "infra.local.iot_core.service",
    "infra.local.firehose.service",
    "infra.local.sagemaker.service",
    "infra.local.eventbridge.service",
)


class StackError(RuntimeError):
    """A service could not be started or stopped; the message says why."""


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one local service as a child process."""

    name: str
    #: the TCP port the service listens on, or None for a service without one
    port: Callable[[Settings], int | None]
    argv: Callable[[Settings], list[str]]
    #: returns an error message when the service cannot run here (e.g. program missing)
    precheck: Callable[[Settings], str | None] = lambda s: None
    #: prepares files (certificates, configs) before start
    prepare: Callable[[Settings], None] = lambda s: None
    env: Callable[[Settings], dict[str, str]] = field(default=lambda s: {})
    start_timeout_s: float = 30.0
    #: readiness check (settings, pid) for services without a port (default: the port accepts connections)
    ready: Callable[[Settings, int], bool] | None = None
    #: one line about a running service for ``status`` (e.g. the memory it holds), None when unknown
    detail: Callable[[Settings], str | None] | None = None


def python_module_argv(module: str, *extra: str) -> Callable[[Settings], list[str]]:
    """argv that runs ``python -m module --data-dir DIR *extra`` with this interpreter."""
    return lambda s: [sys.executable, "-m", module, "--data-dir", str(s.data_dir), *extra]


def settings_env(settings: Settings) -> dict[str, str]:
    """``AIRCAST_*`` variables that give a child process exactly these settings."""
    return {f"AIRCAST_{f.name.upper()}": str(getattr(settings, f.name)) for f in dataclasses.fields(settings)}


def load_services(modules: tuple[str, ...] = STACK) -> list[ServiceSpec]:
    return [importlib.import_module(m).SERVICE for m in modules]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.run_dir / f"{name}.pid"


def _write_pid_file(settings: Settings, name: str, pid: int) -> None:
    _pid_file(settings, name).write_text(f"{pid} {process_start_time(pid) or '-'}\n")


def _ours(settings: Settings, pid: int, started: str | None) -> bool:
    """Whether ``pid`` is still the process the PID file was written for."""
    now = process_start_time(pid)
    if now is None:
        return not Path("/proc/self/stat").exists()  # no /proc (not Linux): trust the PID
    if started is not None:
        return started == now
    # a PID file of an earlier version (PID only): ours if it runs on this data dir
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(str(settings.data_dir).encode() in arg for arg in cmdline)


def read_pid(settings: Settings, name: str) -> int | None:
    """PID of the running service, or None when it is not running (or its PID file is stale)."""
    path = _pid_file(settings, name)
    try:
        parts = path.read_text().split()
        pid = int(parts[0])
    except (OSError, ValueError, IndexError):
        return None
    started = parts[1] if len(parts) > 1 and parts[1] != "-" else None
    return pid if alive(pid) and _ours(settings, pid, started) else None


def start_service(spec: ServiceSpec, settings: Settings) -> dict[str, Any]:
    """Start one service unless it already runs; wait until its port accepts connections."""
    pid = read_pid(settings, spec.name)
    port = spec.port(settings)
    if pid is not None:
        return {"service": spec.name, "pid": pid, "port": port, "state": "already running"}
    problem = spec.precheck(settings)
    if problem:
        raise StackError(f"cannot start {spec.name}: {problem}")
    if port is not None and port_in_use("127.0.0.1", port):
        raise StackError(f"cannot start {spec.name}: port {port} on 127.0.0.1 is already in use "
                         f"(another process holds it; stop it or choose another port in the settings)")
    spec.prepare(settings)
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.run_dir / f"{spec.name}.log"
    # the child gets these exact settings (overrides included), not just the data dir
    env = {**os.environ, **settings_env(settings), **spec.env(settings)}
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(spec.argv(settings), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, start_new_session=True)
    _write_pid_file(settings, spec.name, proc.pid)
    deadline = time.monotonic() + spec.start_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise StackError(f"{spec.name} exited with code {proc.returncode} at start; log {log_path}:\n{tail}")
        if _is_ready(spec, settings, proc.pid):
            return {"service": spec.name, "pid": proc.pid, "port": port, "state": "started"}
        time.sleep(0.1)
    stop_service(spec, settings)
    what = f"open port {port}" if port is not None else "become ready"
    raise StackError(f"{spec.name} did not {what} within {spec.start_timeout_s:.0f} s; see {log_path}")


def _is_ready(spec: ServiceSpec, settings: Settings, pid: int) -> bool:
    if spec.ready is not None:
        return spec.ready(settings, pid)
    port = spec.port(settings)
    return port is not None and port_in_use("127.0.0.1", port)


def stop_service(spec: ServiceSpec, settings: Settings, timeout_s: float = 10.0) -> dict[str, Any]:
    pid = read_pid(settings, spec.name)
    _pid_file(settings, spec.name).unlink(missing_ok=True) if pid is None else None
    if pid is None:
        return {"service": spec.name, "pid": None, "state": "not running"}
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and alive(pid):
        _reap(pid)
        time.sleep(0.1)
    if alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _reap(pid)
    _pid_file(settings, spec.name).unlink(missing_ok=True)
    return {"service": spec.name, "pid": pid, "state": "stopped"}


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def up(settings: Settings, modules: tuple[str, ...] = STACK) -> list[dict[str, Any]]:
    """Start every service of the stack in order; on failure stop what this call started."""
    started: list[ServiceSpec] = []
    results = []
    try:
        for spec in load_services(modules):
            result = start_service(spec, settings)
            if result["state"] == "started":
                started.append(spec)
            results.append(result)
    except BaseException:
        for spec in reversed(started):
            stop_service(spec, settings)
        raise
    return results


def down(settings: Settings, modules: tuple[str, ...] = STACK) -> list[dict[str, Any]]:
    return [stop_service(spec, settings) for spec in reversed(load_services(modules))]


def status(settings: Settings, modules: tuple[str, ...] = STACK) -> list[dict[str, Any]]:
    rows = []
    for spec in load_services(modules):
        pid = read_pid(settings, spec.name)
        port = spec.port(settings)
        rows.append({
            "service": spec.name,
            "state": "running" if pid else "stopped",
            "pid": pid,
            "port": port,
            "listening": _is_ready(spec, settings, pid) if pid else False,
            "detail": _detail(spec, settings) if pid else None,
            "log": str(settings.run_dir / f"{spec.name}.log"),
        })
    return rows


def _detail(spec: ServiceSpec, settings: Settings) -> str | None:
    if spec.detail is None:
        return None
    try:
        return spec.detail(settings)
    except Exception as exc:  # noqa: BLE001 - a status line must never fail the status command
        return f"(no detail: {exc})"

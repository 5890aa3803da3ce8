"""The local stack: the emulator's services that run as background processes, supervised.

A :class:`ServiceSpec` says how to run one service: its argv, its port, the files to prepare and
how to tell it is ready. Each service package builds its own spec from plain values (e.g.
:func:`infra.local.eventbridge.service.service`); whoever runs the emulator picks the services and
their order. ``up`` starts them in order (refusing clearly when a port is taken or a program is
missing), ``down`` stops them, ``status`` reports PIDs and ports. PID files, bound ports and logs
live in the run dir (``<data_dir>/run``).

A PID file holds the PID and the process's start time (``/proc/PID/stat``), so a
stale file whose PID now belongs to another process (PIDs are reused) is
recognised as stale: ``down`` never signals a process it did not start.

A service given port 0 binds a free port itself and reports it in ``<run_dir>/<name>.port``
(:func:`write_bound_port`); ``up`` and ``status`` read it back (:func:`bound_port`), so tests and
parallel stacks never race for a port chosen in advance.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.local.core.config import LocalConfig
from infra.local.core.poll import PollTimeout, poll_until
from infra.local.proc import alive, process_start_time


class StackError(RuntimeError):
    """A service could not be started or stopped; the message says why."""


@dataclass(frozen=True)
class ServiceSpec:
    """How to run one local service as a child process."""

    name: str
    argv: list[str]
    #: the TCP port the service listens on; 0: it binds a free one and reports it; None: it has no port
    port: int | None = None
    #: returns an error message when the service cannot run here (e.g. program missing)
    precheck: Callable[[], str | None] = lambda: None
    #: prepares files (certificates, configs) before start
    prepare: Callable[[], None] = lambda: None
    #: environment variables of the child on top of this process's
    env: Mapping[str, str] = field(default_factory=dict)
    start_timeout_s: float = 30.0
    #: readiness check (pid) for services without a port (default: the port accepts connections)
    ready: Callable[[int], bool] | None = None
    #: one line about a running service for ``status`` (e.g. the memory it holds), None when unknown
    detail: Callable[[], str | None] | None = None


def python_module_argv(module: str, config: LocalConfig, *extra: str) -> list[str]:
    """argv that runs ``python -m module`` with this interpreter and ``config``'s arguments."""
    return [sys.executable, "-m", module, *config.argv(), *extra]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def _pid_file(config: LocalConfig, name: str) -> Path:
    return config.run_dir / f"{name}.pid"


def port_file(run_dir: Path, name: str) -> Path:
    """Where the service ``name`` reports the port it bound."""
    return Path(run_dir) / f"{name}.port"


def write_bound_port(run_dir: Path, name: str, port: int) -> None:
    """Report the port the service ``name`` (this process) listens on (written whole, then renamed)."""
    path = port_file(run_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(f"{port} {os.getpid()}\n")
    os.replace(tmp, path)


def bound_port(config: LocalConfig, name: str) -> int | None:
    """The port the running service ``name`` reported, or None (not running, or it reports none)."""
    pid = read_pid(config, name)
    try:
        port, reporter = (int(part) for part in port_file(config.run_dir, name).read_text().split())
    except (OSError, ValueError):
        return None
    return port if pid is not None and reporter == pid else None


def service_port(spec: ServiceSpec, config: LocalConfig) -> int | None:
    """The port the service listens on: the one it reported, else the configured one (None if it has none)."""
    if spec.port is None:
        return None
    return bound_port(config, spec.name) or spec.port or None


def _write_pid_file(config: LocalConfig, name: str, pid: int) -> None:
    _pid_file(config, name).write_text(f"{pid} {process_start_time(pid) or '-'}\n")


def _ours(config: LocalConfig, pid: int, started: str | None) -> bool:
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
    return any(str(config.data_dir).encode() in arg for arg in cmdline)


def read_pid(config: LocalConfig, name: str) -> int | None:
    """PID of the running service, or None when it is not running (or its PID file is stale)."""
    path = _pid_file(config, name)
    try:
        parts = path.read_text().split()
        pid = int(parts[0])
    except (OSError, ValueError, IndexError):
        return None
    started = parts[1] if len(parts) > 1 and parts[1] != "-" else None
    return pid if alive(pid) and _ours(config, pid, started) else None


def start_service(spec: ServiceSpec, config: LocalConfig) -> dict[str, Any]:
    """Start one service unless it already runs; wait until its port accepts connections."""
    pid = read_pid(config, spec.name)
    if pid is not None:
        return {"service": spec.name, "pid": pid, "port": service_port(spec, config), "state": "already running"}
    problem = spec.precheck()
    if problem:
        raise StackError(f"cannot start {spec.name}: {problem}")
    if spec.port and port_in_use("127.0.0.1", spec.port):
        raise StackError(f"cannot start {spec.name}: port {spec.port} on 127.0.0.1 is already in use "
                         f"(another process holds it; stop it or choose another port in the settings)")
    spec.prepare()
    config.run_dir.mkdir(parents=True, exist_ok=True)
    port_file(config.run_dir, spec.name).unlink(missing_ok=True)
    log_path = config.run_dir / f"{spec.name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(spec.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **spec.env}, start_new_session=True)
    _write_pid_file(config, spec.name, proc.pid)

    def started() -> bool:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise StackError(f"{spec.name} exited with code {proc.returncode} at start; log {log_path}:\n{tail}")
        return _is_ready(spec, config, proc.pid)

    try:
        poll_until(started, spec.start_timeout_s, 0.1, f"start of {spec.name}")
    except PollTimeout:
        stop_service(spec, config)
        what = f"open port {spec.port}" if spec.port else "open a port" if spec.port == 0 else "become ready"
        raise StackError(f"{spec.name} did not {what} within {spec.start_timeout_s:.0f} s; see {log_path}") from None
    return {"service": spec.name, "pid": proc.pid, "port": service_port(spec, config), "state": "started"}


def _is_ready(spec: ServiceSpec, config: LocalConfig, pid: int) -> bool:
    if spec.ready is not None:
        return spec.ready(pid)
    port = service_port(spec, config)
    return port is not None and port_in_use("127.0.0.1", port)


def stop_service(spec: ServiceSpec, config: LocalConfig, timeout_s: float = 10.0) -> dict[str, Any]:
    pid = read_pid(config, spec.name)
    if pid is None:
        _pid_file(config, spec.name).unlink(missing_ok=True)
        port_file(config.run_dir, spec.name).unlink(missing_ok=True)
        return {"service": spec.name, "pid": None, "state": "not running"}
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass

    def gone() -> bool:
        _reap(pid)
        return not alive(pid)

    try:
        poll_until(gone, timeout_s, 0.1, f"stop of {spec.name}")
    except PollTimeout:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _reap(pid)
    _pid_file(config, spec.name).unlink(missing_ok=True)
    port_file(config.run_dir, spec.name).unlink(missing_ok=True)
    return {"service": spec.name, "pid": pid, "state": "stopped"}


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def up(config: LocalConfig, services: Sequence[ServiceSpec]) -> list[dict[str, Any]]:
    """Start ``services`` in order; on failure stop what this call started."""
    started: list[ServiceSpec] = []
    results = []
    try:
        for spec in services:
            result = start_service(spec, config)
            if result["state"] == "started":
                started.append(spec)
            results.append(result)
    except BaseException:
        for spec in reversed(started):
            stop_service(spec, config)
        raise
    return results


def down(config: LocalConfig, services: Sequence[ServiceSpec]) -> list[dict[str, Any]]:
    """Stop ``services`` in reverse order."""
    return [stop_service(spec, config) for spec in reversed(services)]


def status(config: LocalConfig, services: Sequence[ServiceSpec]) -> list[dict[str, Any]]:
    """Each service's state, PID, port, whether it listens, and its log."""
    rows = []
    for spec in services:
        pid = read_pid(config, spec.name)
        rows.append({
            "service": spec.name,
            "state": "running" if pid else "stopped",
            "pid": pid,
            "port": service_port(spec, config),
            "listening": _is_ready(spec, config, pid) if pid else False,
            "detail": _detail(spec) if pid else None,
            "log": str(config.run_dir / f"{spec.name}.log"),
        })
    return rows


def _detail(spec: ServiceSpec) -> str | None:
    if spec.detail is None:
        return None
    try:
        return spec.detail()
    except Exception as exc:  # noqa: BLE001 - a status line must never fail the status command
        return f"(no detail: {exc})"

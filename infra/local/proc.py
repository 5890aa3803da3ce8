"""Processes of the local stack: is a PID still the process it was (PIDs are reused)?"""

from __future__ import annotations

import os


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None when unknown."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except OSError:
        return None
    # field 22; the command name (field 2, in parentheses) may itself hold spaces and ')'
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return True


def same_process(pid: int, started: str | None) -> bool:
    """Whether ``pid`` is alive and still the process that had start time ``started``."""
    if not alive(pid):
        return False
    now = process_start_time(pid)
    return now is None or started is None or now == started


def this_process() -> tuple[int, str | None]:
    """This process's (pid, start time), to record who owns something."""
    return os.getpid(), process_start_time(os.getpid())

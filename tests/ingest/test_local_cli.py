"""`aircast local ...` and `aircast device` on real processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from aircast.cli import main
from aircast.local_wiring import flush, read_pid, status
from aircast.settings import Settings
from device.publisher import main as device_main
from infra.local.iot_core import broker, client_id_plugin, pki
from tests.helpers import wait_until

SERVICES = ["iot_core", "firehose"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_up_refuses_clearly_when_the_mqtt_port_is_taken(settings: Settings, capsys) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", settings.mqtt_port))
        holder.listen()
        rc, out, err = _run(capsys, "local", "up")
    assert rc == 1
    assert f"port {settings.mqtt_port} on 127.0.0.1 is already in use" in err and "Traceback" not in err
    rc, out, _ = _run(capsys, "local", "status", "--json")
    assert rc == 0 and all(row["state"] == "stopped" for row in json.loads(out))


def test_up_refuses_clearly_when_mosquitto_is_missing(settings: Settings, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(broker, "MOSQUITTO_CANDIDATES", ())
    rc, _, err = _run(capsys, "local", "up", *SERVICES)
    assert rc == 1 and "apt-get install mosquitto or run make demo" in err


@pytest.mark.parametrize("content", ["{pid}\n", "{pid} 12345\n"], ids=["pid-only", "another-start-time"])
def test_down_never_signals_a_process_that_a_stale_pid_file_names(settings: Settings, capsys, content: str) -> None:
    # the PID of a service that died long ago now belongs to someone else's process
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        for name in SERVICES:
            (settings.run_dir / f"{name}.pid").write_text(content.format(pid=other.pid))
        rc, out, _ = _run(capsys, "local", "status", *SERVICES, "--json")
        assert rc == 0 and [r["state"] for r in json.loads(out)] == ["stopped", "stopped"]
        rc, out, _ = _run(capsys, "local", "down", *SERVICES, "--json")
        assert rc == 0 and {r["state"] for r in json.loads(out)} == {"not running"}
        assert other.poll() is None, "down killed a process it did not start"
        assert not [n for n in SERVICES if (settings.run_dir / f"{n}.pid").exists()]  # stale files removed
    finally:
        other.kill()
        other.wait()


def test_up_refuses_clearly_when_the_client_id_plugin_cannot_be_built(settings: Settings, tmp_path: Path,
                                                                        monkeypatch, capsys) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))  # nothing built yet
    monkeypatch.setattr(client_id_plugin, "HEADERS", {"mosquitto-dev": str(tmp_path / "missing.h")})
    rc, _, err = _run(capsys, "local", "up", *SERVICES)
    assert rc == 1 and "needs mosquitto-dev: apt-get install mosquitto-dev" in err and "Traceback" not in err


def test_register_thing_prints_what_a_client_needs(settings: Settings, capsys) -> None:
    rc, out, _ = _run(capsys, "local", "register-thing", "kitchen-sensor", "--json")
    info = json.loads(out)
    assert rc == 0 and info["thing_name"] == "kitchen-sensor"
    assert all(Path(info[k]).is_file() for k in ("cert", "key", "ca"))
    assert (info["host"], info["port"]) == ("127.0.0.1", settings.mqtt_port)
    assert info["topic"] == "sensors/kitchen-sensor/telemetry" and info["client_id"] == "kitchen-sensor"
    rc, _, err = _run(capsys, "local", "register-thing", "no spaces please")
    assert rc == 2 and "invalid thing name" in err


def test_up_device_status_down(settings: Settings, capsys) -> None:
    rc, out, err = _run(capsys, "local", "up", *SERVICES, "--json")
    try:
        assert rc == 0, err
        assert [r["service"] for r in json.loads(out)] == SERVICES
        rc, out, _ = _run(capsys, "local", "status", *SERVICES, "--json")
        rows = json.loads(out)
        assert all(r["state"] == "running" and r["pid"] and r["listening"] for r in rows)
        assert rows[0]["port"] == settings.mqtt_port
        rc, out, err = _run(capsys, "device", "--simulate", "2", "--hours", "6", "--start", "2024-01-01T00:00:00Z",
                            "--json")
        report = json.loads(out)
        assert rc == 0, err
        assert report["failed"] == 0 and report["published"] == report["acknowledged"] > 0
        assert flush(settings, 20)["delivered"] == report["published"]
        # seq keeps counting across runs of the same device
        rc, out, _ = _run(capsys, "device", "--simulate", "1", "--hours", "2", "--start", "2024-01-02T00:00:00Z",
                          "--json")
        assert json.loads(out)["last_seq"]["sim-sensor-001"] > report["last_seq"]["sim-sensor-001"]
        # SIGUSR1 makes the stream write its buffer now (the buffer hints here are 5 MiB / 300 s)
        flush(settings, 20)
        before = _lake_lines(settings)
        rc, out, _ = _run(capsys, "device", "--simulate", "1", "--hours", "3", "--start", "2024-01-03T00:00:00Z",
                          "--json")
        sent = json.loads(out)["acknowledged"]
        os.kill(read_pid(settings, "firehose"), signal.SIGUSR1)
        wait_until(lambda: _lake_lines(settings) >= before + sent, 10, what="the SIGUSR1 flush")
        assert _lake_lines(settings) == before + sent
        # the iot-device script with explicit endpoint, port and certificate paths (as on AWS)
        creds = pki.register_thing(settings.pki_dir, "explicit-thing")
        rc = device_main(["--simulate", "1", "--thing", "explicit-thing", "--hours", "4", "--endpoint", "127.0.0.1", "--port",
                          str(settings.mqtt_port), "--cert", str(creds.cert_path), "--key", str(creds.key_path),
                          "--ca", str(creds.ca_path), "--data-dir", str(settings.data_dir), "--json"])
        out = capsys.readouterr().out
        report = json.loads(out)
        assert rc == 0 and report["failed"] == 0 and report["last_seq"] == {"explicit-thing": report["published"]}
        flush(settings, 20)
        root = settings.s3_root / settings.lake_bucket / "raw/telemetry"
        lines = [json.loads(x) for p in root.rglob("*") if p.is_file() for x in p.read_bytes().splitlines()]
        assert sum(r["thing_name"] == "explicit-thing" for r in lines) == report["published"]
        rc, _, err = _run(capsys, "local", "up", "nonsense")
        assert rc == 2 and "unknown service" in err
    finally:
        rc, out, _ = _run(capsys, "local", "down", *SERVICES, "--json")
    assert rc == 0 and {r["state"] for r in json.loads(out)} == {"stopped"}
    assert all(r["state"] == "stopped" for r in status(settings))
    with pytest.raises(ConnectionError, match="aircast local status"):
        flush(settings, 2)


def _lake_lines(settings: Settings) -> int:
    root = settings.s3_root / settings.lake_bucket / "raw/telemetry"
    return sum(len(p.read_bytes().splitlines()) for p in root.rglob("*") if p.is_file()) if root.is_dir() else 0

"""The CLI never shows a traceback for a user's mistake: each case an audit hit is one line on stderr
and exit code 2 (the command cannot run as given), and long work refuses bad values before it starts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from aircast.cli import main
from aircast.settings import Settings


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "error" in lines[0] and "internal error" not in lines[0], err
    return lines[0]


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance metadata lookup: fail at once
    # boto3's default session keeps the credentials it found first: an earlier test's client would lend
    # them to this one (a fresh session looks them up again, and finds none)
    import boto3

    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


@pytest.fixture
def no_demo(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The demo's work, recorded instead of run: a refused option must never get there."""
    from aircast import demo

    started: list[Any] = []
    monkeypatch.setattr(demo.Demo, "run", lambda self: started.append(self.options) or demo.DemoReport())
    return started


def test_data_dir_that_is_a_file(settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    rc, _, err = _run(capsys, "--data-dir", str(afile), "models", "list")
    assert rc == 2 and "is a file, not a folder" in _one_line_error(err)
    rc, _, err = _run(capsys, "--data-dir", str(afile / "below"), "events", "rules")
    assert rc == 2 and f"{afile} is a file" in _one_line_error(err)


def test_aws_backend_without_credentials(settings: Settings, capsys: pytest.CaptureFixture[str],
                                         no_aws_credentials: None) -> None:
    for argv in (["--backend", "aws", "models", "list"], ["--backend", "aws", "events", "rules"],
                 ["aws", "register-thing", "sensor-01"]):
        rc, _, err = _run(capsys, *argv)
        assert rc == 2 and "no AWS credentials found" in _one_line_error(err), argv


def test_output_paths_that_are_folders(settings: Settings, capsys: pytest.CaptureFixture[str],
                                       tmp_path: Path) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    rc, _, err = _run(capsys, "pipeline", "definition", "-o", str(folder))
    assert rc == 2 and "is a folder" in _one_line_error(err)
    rc, _, err = _run(capsys, "monitor", "plot", "--output", str(folder))
    assert rc == 2 and "is a folder" in _one_line_error(err)
    rc, _, err = _run(capsys, "monitor", "plot", "--output", str(tmp_path / "timeline.txt"))
    assert rc == 2 and ".png" in _one_line_error(err)


def test_a_quote_in_the_data_dir_path(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "o'brien's data"
    folder = data_dir / "s3" / "aircast-lake" / "curated" / "hourly" / "dt=2024-01-01"
    folder.mkdir(parents=True)
    pd.DataFrame({"thing_name": ["s1", "s2"], "pollutant": ["pm2_5", "pm2_5"],
                  "hour": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 01:00"]), "mean": [1.0, 2.0],
                  "count": [1, 1], "min": [1.0, 2.0], "max": [1.0, 2.0]}).to_parquet(folder / "part.parquet")
    monkeypatch.delenv("AIRCAST_DATA_DIR", raising=False)
    rc, out, err = _run(capsys, "--data-dir", str(data_dir), "lake", "query", "SELECT count(*) AS n FROM hourly",
                        "--csv")
    assert rc == 0, err
    assert out.splitlines() == ["n", "2"]


@pytest.mark.parametrize("argv, fragment", [
    (["demo", "--days", "0"], "argument --days: 0 is out of range"),
    (["demo", "--epochs", "0"], "argument --epochs: 0 is out of range"),
    (["demo", "--sim-sensors", "-1"], "argument --sim-sensors: -1 is out of range"),
    (["demo", "--days", "2"], "--days 2: the first run needs 17 to 213 days"),
    (["demo", "--days", "400"], "the Beijing data covers 213 days"),
    (["demo", "--sim-sensors", "5000"], "give 0 to 100 simulated sensors"),
    (["demo", "--plot", "forecast.jpg"], "give a .png file"),
    (["--backend", "aws", "demo"], "the demo runs on the local stand-ins"),
])
def test_demo_refuses_bad_values_before_starting(settings: Settings, capsys: pytest.CaptureFixture[str],
                                                 no_demo: list[Any], argv: list[str], fragment: str) -> None:
    rc, _, err = _run(capsys, *argv)
    assert rc == 2 and fragment in _one_line_error(err)
    assert no_demo == []  # nothing started
    assert _run(capsys, "demo", "--days", "30", "--epochs", "1", "--sim-sensors", "0")[0] == 0
    assert len(no_demo) == 1


def test_usage_errors_and_failures_have_their_own_exit_codes(settings: Settings,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    rc, _, err = _run(capsys, "events")  # a group without its command
    assert rc == 2 and "choose a command" in _one_line_error(err)
    rc, _, err = _run(capsys, "events", "history", "--limit", "many")
    assert rc == 2 and "--limit" in _one_line_error(err)  # argparse's own error, on one line too
    rc, _, err = _run(capsys, "endpoint", "deploy", "--model-package", "1", "--step-percent", "0")
    assert rc == 2 and "--step-percent" in _one_line_error(err)
    rc, _, err = _run(capsys, "endpoint", "describe", "nowhere")  # ran, and the service said no
    assert rc == 1 and "nowhere" in _one_line_error(err)


def test_a_bug_is_one_line_that_says_so_and_keeps_the_traceback(settings: Settings, capsys: pytest.CaptureFixture[str],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from aircast.commands import models

    def broken(args: Any, settings: Settings) -> int:
        raise RuntimeError("unexpected state")

    monkeypatch.setattr(models, "cmd_list", broken)
    rc, _, err = _run(capsys, "models", "list")
    assert rc == 1 and "Traceback" not in err
    assert "internal error (a bug, not your input): RuntimeError: unexpected state" in err
    saved = Path(err.split("traceback in ")[1].split(";")[0])
    assert "RuntimeError: unexpected state" in saved.read_text() and "Traceback" in saved.read_text()
    monkeypatch.setenv("AIRCAST_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["models", "list"])


def test_in_process_handlers_see_the_commands_settings(settings: Settings, capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`aircast --data-dir X models approve` runs the deploy Lambda in-process: it must deploy in X."""
    seen: list[str | None] = []
    from aircast.commands import models

    monkeypatch.setattr(models, "cmd_list", lambda args, s: seen.append(os.environ.get("AIRCAST_DATA_DIR")) or 0)
    other = tmp_path / "elsewhere"
    assert _run(capsys, "--data-dir", str(other), "models", "list")[0] == 0
    assert seen == [str(other)] and os.environ["AIRCAST_DATA_DIR"] == str(settings.data_dir)  # restored after


def test_a_bad_glue_jit_is_one_line(settings: Settings, capsys: pytest.CaptureFixture[str],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRCAST_GLUE_JIT", "fast")
    rc, _, err = _run(capsys, "local", "status")
    assert rc == 2 and "glue_jit must be one of ('c1', 'tiered'), got 'fast' (AIRCAST_GLUE_JIT)" in _one_line_error(err)

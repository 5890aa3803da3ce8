"""Property-based: every ``aircast`` subcommand, driven in-process with generated option and argument
values, exits 0, 1 or 2, never prints a traceback, and says what went wrong in one line.

The subcommands and their options come from the parser itself, so a new command or option is fuzzed
without touching this file. Work that would take minutes or reach the network (the demo, a pipeline run,
starting the stack, publishing, serving the console) is replaced by a recorder *after* argument
handling: the command must refuse bad values before it gets there. ``--backend aws`` runs without AWS
credentials or instance metadata, so it must fail at once with "no AWS credentials found".
``AIRCAST_FUZZ_EXAMPLES`` sets the examples per subcommand (default 10).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import string
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from aircast.cli import build_parser, main
from aircast.commands.pipeline import _definition as _real_definition
from aircast.settings import Settings

pytestmark = pytest.mark.slow  # about half a minute on a quiet 2-core machine
EXAMPLES = int(os.environ.get("AIRCAST_FUZZ_EXAMPLES", "10"))
#: global options, sometimes given before the command
GLOBAL = ("--backend", "--data-dir", "--config")


def _leaves() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(command path, parser) of every runnable subcommand."""
    out = []

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            out.append((path, parser))
            return
        for name, child in subs[0].choices.items():
            walk(child, (*path, name))

    walk(build_parser(), ())
    return out


LEAVES = _leaves()


@cache
def _fixtures(root: str) -> dict[str, str]:
    """Paths a user might type: a folder, a file, a JSON file, junk TOML, a path below a file."""
    base = Path(root)
    (base / "folder").mkdir(parents=True, exist_ok=True)
    (base / "afile.txt").write_text("hello")
    (base / "detail.json").write_text('{"n": 1}')
    (base / "bad.toml").write_text("this is = = not toml")
    (base / "empty.toml").write_text("")
    return {"folder": str(base / "folder"), "file": str(base / "afile.txt"), "json": str(base / "detail.json"),
            "bad_toml": str(base / "bad.toml"), "toml": str(base / "empty.toml"),
            "below_file": str(base / "afile.txt" / "x.png")}


def _values(root: str) -> st.SearchStrategy[str]:
    paths = _fixtures(root)
    specials = ["", "-", "'", '"', "0", "-1", "1", "3", "2.5", "nan", "inf", "1e9", "99999999999", "abc", "latest",
                "x" * 300, "@missing.json", "@" + paths["json"], "@" + paths["folder"], paths["folder"], paths["file"],
                paths["below_file"], "out.png", "sub/dir/out.json", "rate(1 hour)", "rate(1 hours)",
                "cron(0 3 ? * SUN *)", "cron(0 3 * * * *)", '{"source": ["aircast.test"]}', '{"source": "x"}',
                "{oops", "NAME=VALUE", "Epochs=2", "Epochs", "aws.sagemaker", "aircast.test",
                "arn:aws:lambda:us-east-1:000000000000:function:aircast-deploy",
                "arn:aws:sagemaker:us-east-1:000000000000:pipeline/aircast-deepar",
                "arn:aws:sagemaker:us-east-1:000000000000:model-package/aircast-deepar/1",
                "SELECT 1", "SELECT * FROM nowhere", "2024-01-01T00:00:00Z", "sensor-01", "no spaces please"]
    text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=24)
    return st.one_of(st.sampled_from(specials), st.integers(-5, 8).map(str), text,
                     st.text(string.ascii_letters + string.digits + "-_./", min_size=1, max_size=16))


def _option_values(action: argparse.Action, root: str) -> st.SearchStrategy[list[str]]:
    values = _values(root)
    if action.choices:
        values = st.one_of(st.sampled_from(sorted(map(str, action.choices))), values)
    if action.nargs == 0:
        return st.just([])
    if action.nargs in (None, "?"):
        return values.map(lambda v: [v])
    return st.lists(values, min_size=1, max_size=3)


@st.composite
def command_lines(draw: st.DrawFn, path: tuple[str, ...], parser: argparse.ArgumentParser, root: str) -> list[str]:
    argv: list[str] = []
    paths = _fixtures(root)
    if draw(st.booleans()):  # global options, before the command
        if draw(st.integers(0, 5)) == 0:
            argv += ["--backend", "aws"]
        if draw(st.integers(0, 7)) == 0:
            argv += ["--data-dir", draw(st.sampled_from([paths["file"], paths["below_file"], str(Path(root) / "q'dir"),
                                                         str(Path(root) / "fresh")]))]
        if draw(st.integers(0, 7)) == 0:
            argv += ["--config", draw(st.sampled_from([paths["bad_toml"], paths["toml"], paths["folder"],
                                                       str(Path(root) / "missing.toml")]))]
    argv += list(path)
    actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    for action in actions:
        if action.option_strings and draw(st.booleans()):
            argv += [draw(st.sampled_from(action.option_strings)), *draw(_option_values(action, root))]
    for action in actions:
        if not action.option_strings:
            count = {None: 1, "?": draw(st.integers(0, 1)), "+": draw(st.integers(1, 3)),
                     "*": draw(st.integers(0, 2))}.get(action.nargs, 1)
            argv += [draw(_values(root)) for _ in range(count)]
    return argv


@cache
def _built_definition() -> tuple[str, str]:
    return _real_definition(Settings())


class Recorder:
    """Stands in for long work; counts what reached it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, name: str, result: Any = None) -> Any:
        def record(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            return result() if callable(result) else result
        return record


@pytest.fixture
def fuzz_env(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorder]:
    """No AWS credentials, no network, no long work; a scratch working directory."""
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.chdir(tmp_path)

    from aircast import demo, local_wiring
    from aircast.commands import pipeline
    from aircast.console import service as console_service
    from device import publisher
    from infra.local import stack

    recorder = Recorder()
    monkeypatch.setattr(pipeline, "_definition", lambda s: _built_definition())  # the SDK build, once
    monkeypatch.setattr(demo.Demo, "run", recorder("demo", demo.DemoReport))
    monkeypatch.setattr(local_wiring, "run_local_pipeline", recorder("pipeline run", lambda: {
        "execution_arn": "arn:aws:sagemaker:us-east-1:000000000000:pipeline/p/execution/x", "status": "Succeeded",
        "steps": []}))
    monkeypatch.setattr(stack, "start_service", lambda spec, config: recorder("local up")() or {
        "service": spec.name, "pid": None, "port": spec.port, "state": "started (fuzz)"})
    monkeypatch.setattr(console_service, "serve", recorder("console"))
    monkeypatch.setattr(publisher, "publish_fleet", recorder("device", publisher.PublishReport))
    yield recorder


def _invoke(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, err.getvalue()


@pytest.mark.parametrize("path, parser", LEAVES, ids=[" ".join(p) for p, _ in LEAVES])
def test_every_subcommand_fails_in_one_line(path: tuple[str, ...], parser: argparse.ArgumentParser,
                                            fuzz_env: Recorder, tmp_path: Path) -> None:
    root = str(tmp_path / "fuzz")

    @hypothesis_settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(argv=command_lines(path, parser, root))
    def check(argv: list[str]) -> None:
        rc, err = _invoke(argv)
        assert rc in (0, 1, 2), (argv, rc, err)
        assert "Traceback" not in err, (argv, err)
        assert "internal error" not in err, (argv, err)
        if rc != 0:
            errors = [line for line in err.splitlines() if ": error: " in line or line.startswith("aircast: ")]
            assert len(errors) == 1 and errors[0] == err.rstrip("\n").splitlines()[-1], (argv, err)

    check()

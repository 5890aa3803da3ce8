"""The emulator's shared core: its configuration as a command line, ARNs as AWS spells them, the time
forms the services use, and the one wait."""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import pytest

from infra.local.core import arns, clock
from infra.local.core.config import LocalConfig
from infra.local.core.poll import PollTimeout, poll_until


def test_a_config_survives_the_command_line_a_service_process_gets(tmp_path: Path) -> None:
    config = LocalConfig(tmp_path, "eu-west-1", "123456789012", 0.001)
    parser = argparse.ArgumentParser()
    LocalConfig.add_arguments(parser)
    assert LocalConfig.from_arguments(parser.parse_args(config.argv())) == config
    assert (config.s3_root, config.run_dir, config.pki_dir) == (tmp_path / "s3", tmp_path / "run", tmp_path / "pki")
    with pytest.raises(ValueError, match="clock_scale"):
        LocalConfig(tmp_path, clock_scale=0)


def test_arns_lower_case_what_sagemaker_lower_cases_and_nothing_else() -> None:
    assert arns.pipeline_arn("us-east-1", "1", "My-Pipeline") == "arn:aws:sagemaker:us-east-1:1:pipeline/my-pipeline"
    assert arns.sagemaker_arn("us-east-1", "1", "endpoint", "Forecast") == "arn:aws:sagemaker:us-east-1:1:endpoint/forecast"
    assert arns.pipeline_execution_arn("r", "1", "P", "abc") == "arn:aws:sagemaker:r:1:pipeline/p/execution/abc"
    assert arns.events_rule_arn("r", "1", "Nightly") == "arn:aws:events:r:1:rule/Nightly"
    assert arns.lambda_function_arn("r", "1", "Deploy", "$LATEST") == "arn:aws:lambda:r:1:function:Deploy:$LATEST"
    assert arns.model_package_arn("r", "1", "Group", 3) == "arn:aws:sagemaker:r:1:model-package/Group/3"
    assert arns.cloudwatch_alarm_arn("r", "1", "High 5xx") == "arn:aws:cloudwatch:r:1:alarm:High 5xx"


def test_times_are_aware_utc_and_naive_means_utc() -> None:
    naive = dt.datetime(2024, 5, 1, 3, 0, 0)
    assert clock.to_epoch(naive) == clock.to_epoch("2024-05-01T03:00:00Z") == clock.to_epoch(1714532400) == 1714532400
    assert clock.iso_seconds_z(1714532400.9) == clock.iso_seconds_z(naive) == "2024-05-01T03:00:00Z"
    assert clock.from_epoch_ms(1714532400000) == naive.replace(tzinfo=dt.UTC)
    assert clock.parse_iso("2024-05-01T05:00:00+02:00") == naive.replace(tzinfo=dt.UTC)
    with pytest.raises(ValueError):
        clock.to_epoch("not a time")


def test_poll_until_returns_the_value_checks_at_the_deadline_and_names_what_timed_out() -> None:
    calls: list[float] = []

    def ready_on_third() -> str | None:
        calls.append(time.monotonic())
        return "ready" if len(calls) == 3 else None

    assert poll_until(ready_on_third, 5, 0.01) == "ready" and len(calls) == 3
    start = time.monotonic()
    with pytest.raises(PollTimeout, match="the bus to start: not within 0.2 s"):
        poll_until(lambda: False, 0.2, 0.05, "the bus to start")
    assert 0.2 <= time.monotonic() - start < 1.0

    def dies() -> bool:
        raise RuntimeError("the process exited")

    with pytest.raises(RuntimeError, match="exited"):  # a condition that can never hold ends the wait at once
        poll_until(dies, 5)

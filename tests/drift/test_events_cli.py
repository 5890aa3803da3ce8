"""`aircast events ...`: rules, put-rule with clear errors, put-event, history, defaults."""

from __future__ import annotations

import json

import pytest

from aircast.cli import main as cli
from aircast.event_rules import APPROVAL_RULE, DRIFT_RULE
from aircast.settings import Settings


def test_events_cli_round_trip(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["events", "rules"]) == 0
    assert "no rules" in capsys.readouterr().out
    assert cli(["events", "defaults"]) == 0
    assert APPROVAL_RULE in capsys.readouterr().out
    assert cli(["events", "rules", "--json"]) == 0
    rules = {r["Name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rules[DRIFT_RULE]["Targets"][0]["Arn"].endswith(f":pipeline/{settings.pipeline_name}")
    assert rules["aircast-drift-check"]["NextFire"]

    assert cli(["events", "put-rule", "nightly", "--schedule", "cron(0 2 * * ? *)", "--target",
                f"arn:aws:sagemaker:{settings.region}:{settings.account_id}:pipeline/{settings.pipeline_name}",
                "--pipeline-param", "Epochs=3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["RuleArn"].endswith(":rule/nightly")
    assert cli(["events", "rules"]) == 0
    table = capsys.readouterr().out
    assert "nightly" in table and "cron(0 2 * * ? *)" in table

    assert cli(["events", "put-rule", "bad", "--schedule", "cron(0 2 * * * *)"]) == 1
    err = capsys.readouterr().err
    assert "ValidationException" in err and "must be '?'" in err and "Traceback" not in err
    assert cli(["events", "put-rule", "bad", "--pattern", '{"source": "x"}']) == 1
    assert "must be in an array" in capsys.readouterr().err
    assert cli(["events", "put-rule", "bad"]) == 2  # the command cannot run as given
    assert "--schedule" in capsys.readouterr().err
    assert cli(["events", "put-rule", "bad", "--pattern", '{"source": ["x"]}', "--target", "arn:aws:sqs:q"]) == 1
    assert "targets were rejected" in capsys.readouterr().err

    assert cli(["events", "put-event", "--source", "aircast.test", "--detail-type", "Ping",
                "--detail", '{"n": 1}']) == 0
    assert "put" in capsys.readouterr().out
    assert cli(["events", "put-event", "--source", "a", "--detail-type", "b", "--detail", "{no"]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    # SageMaker's approval events cannot be forged from the command line either
    assert cli(["events", "put-event", "--source", "aws.sagemaker", "--detail-type",
                "SageMaker Model Package State Change", "--detail", '{"ModelApprovalStatus": "Approved"}']) == 1
    assert "NotAuthorizedForSourceException: Not authorized for the source." in capsys.readouterr().err
    assert cli(["events", "history", "--limit", "0"]) == 2
    assert "--limit" in capsys.readouterr().err
    assert cli(["events", "history", "--json"]) == 0
    history = json.loads(capsys.readouterr().out)
    assert history[0]["source"] == "aircast.test" and history[0]["event"]["detail"] == {"n": 1}
    assert cli(["events", "history"]) == 0
    assert "aircast.test" in capsys.readouterr().out

    assert cli(["events", "delete-rule", "nightly"]) == 0
    assert "deleted rule nightly" in capsys.readouterr().out
    assert cli(["events", "rules", "--json"]) == 0
    assert "nightly" not in {r["Name"] for r in json.loads(capsys.readouterr().out)}

"""The console's HTTP surface on the real local registry: pages render, approval changes the package
exactly as the CLI does, forged and cross-site requests are refused, and user text is escaped."""

from __future__ import annotations

import json
import re

import pytest

from aircast.clients import get_client
from aircast.console.app import COOKIE, create_app, form_token
from tests.console.seed import write_readings_and_quarantine
from tests.helpers import register_package

TOKEN = "t0ken-of-this-data-dir"
HOST = "127.0.0.1:8070"
ORIGIN = f"http://{HOST}"


@pytest.fixture
def registry(settings):
    """A group with one pending package whose evaluation.json is in the local S3."""
    s3 = get_client("s3", settings)
    evaluation = {"forecast_metrics": {"mean_wQuantileLoss": {"value": 0.41}, "RMSE": {"value": 20.0},
                                       "MASE": {"value": 0.8}, "coverage[0.1,0.9]": {"value": 0.77}},
                  "baseline_metrics": {"seasonal_naive": {"mean_wQuantileLoss": {"value": 0.6}, "RMSE": {"value": 25.0},
                                                          "MASE": {"value": 1.1}, "coverage[0.1,0.9]": {"value": 0.9}}},
                  "relative_mean_wQuantileLoss": {"value": 0.683},
                  "evaluation": {"series": 2, "windows": 3, "prediction_length": 24, "quantiles": [0.1, 0.5, 0.9]}}
    s3.put_object(Bucket=settings.artifacts_bucket, Key="eval/1/evaluation.json", Body=json.dumps(evaluation).encode())
    sm = get_client("sagemaker", settings)
    arn = register_package(sm, settings.model_package_group, f"s3://{settings.artifacts_bucket}/eval/1/evaluation.json",
                           CustomerMetadataProperties={"pipeline_execution_id": "abc123"})
    return sm, arn


@pytest.fixture
def client(settings):
    from fastapi.testclient import TestClient

    app = create_app(settings.replace(console_port=8070), TOKEN)
    return TestClient(app, base_url=f"http://{HOST}")


def _status(sm, arn):
    return sm.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"]


def test_pages_render_and_the_form_appears_only_after_signing_in(client, registry):
    sm, arn = registry
    for path in ("/pipelines", "/models", "/models/1", "/endpoints", "/data"):
        resp = client.get(path)
        assert resp.status_code == 200, (path, resp.text[-500:])
        assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
    page = client.get("/models/1").text
    assert "0.41" in page and "0.6" in page and "model better" in page and 'id="approve"' not in page
    assert client.get("/login?token=wrong").status_code == 403
    resp = client.get("/login?token=" + TOKEN + "&next=//evil.example/x", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/"  # never off this console
    assert "samesite=strict" in resp.headers["set-cookie"].lower() and "httponly" in resp.headers["set-cookie"].lower()
    page = client.get("/models/1").text
    assert 'id="approve"' in page and form_token(TOKEN) in page and TOKEN not in page
    assert _status(sm, arn) == "PendingManualApproval"  # no GET changed anything


def test_approve_with_the_form_sets_the_status_and_note_and_follows(client, registry):
    sm, arn = registry
    resp = client.post("/models/1/approval", data={"csrf": form_token(TOKEN), "decision": "Approved",
                                                   "note": "ok <b>by me</b>"},
                       headers={"Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"}, follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/models/1?follow=1"
    desc = sm.describe_model_package(ModelPackageName=arn)
    assert desc["ModelApprovalStatus"] == "Approved" and desc["ApprovalDescription"] == "ok <b>by me</b>"
    page = client.get("/models/1?follow=1").text
    # approved, no endpoint yet: the page keeps following the deployment
    assert '<meta http-equiv="refresh"' in page and "waiting for the deploy Lambda" in page
    # the header token works for scripts (as the local services take it)
    resp = client.post("/models/1/approval", data={"decision": "Rejected"},
                       headers={"X-Aircast-Token": TOKEN}, follow_redirects=False)
    assert resp.status_code == 303 and _status(sm, arn) == "Rejected"


@pytest.mark.parametrize("headers, data, why", [
    ({}, {"decision": "Approved"}, "no valid token"),
    ({"Origin": ORIGIN}, {"decision": "Approved", "csrf": "guess"}, "no valid token"),
    ({"X-Aircast-Token": "guess"}, {"decision": "Approved"}, "no valid token"),
    ({"Origin": "http://evil.example"}, {"decision": "Approved", "csrf": form_token(TOKEN)}, "Origin"),
    ({"Sec-Fetch-Site": "cross-site"}, {"decision": "Approved", "csrf": form_token(TOKEN)}, "Sec-Fetch-Site"),
    ({"Referer": "http://evil.example/page"}, {"decision": "Approved", "csrf": form_token(TOKEN)}, "Referer"),
])
def test_forged_and_cross_site_posts_are_refused(client, registry, headers, data, why):
    sm, arn = registry
    resp = client.post("/models/1/approval", data=data, headers=headers, follow_redirects=False)
    assert resp.status_code == 403 and why in resp.text
    assert _status(sm, arn) == "PendingManualApproval"


def test_a_get_cannot_approve_and_another_host_gets_nothing(client, registry):
    sm, arn = registry
    assert client.get("/models/1/approval?decision=Approved&csrf=" + form_token(TOKEN)).status_code in (404, 405)
    # DNS rebinding: a page of another site that resolves to 127.0.0.1 sends its own Host
    assert client.get("/models", headers={"Host": "evil.example:8070"}).status_code == 421
    assert _status(sm, arn) == "PendingManualApproval"


def test_the_registrys_refusal_is_shown_not_a_traceback(client, registry):
    resp = client.post("/models/7/approval", data={"csrf": form_token(TOKEN), "decision": "Approved"},
                       headers={"Origin": ORIGIN})
    assert resp.status_code == 400 and "does not exist" in resp.text
    resp = client.post("/models/1/approval", data={"csrf": form_token(TOKEN), "decision": "Deployed"},
                       headers={"Origin": ORIGIN})
    assert resp.status_code == 400 and "Approved or Rejected" in resp.text


def test_notes_and_thing_names_are_shown_as_text(client, registry, settings):
    sm, arn = registry
    attack = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected", ApprovalDescription=attack)
    write_readings_and_quarantine(settings.s3_root, {attack: 3, "station-a": 2}, days=2,
                                  quarantine={f"bad_thing_name {attack}": 1})
    client.cookies.set(COOKIE, TOKEN)
    for path in ("/models", "/models/1", "/data"):
        page = client.get(path).text
        assert "<script>alert" not in page and "<img src=x" not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, path
    assert not re.search(r"<script", client.get("/data").text)


def test_missing_things_say_what_to_do(client, settings):
    assert "does not exist yet" in client.get("/pipelines").text
    assert "does not exist yet" in client.get("/models").text  # the endpoint
    assert client.get("/models/0").status_code == 404
    assert client.get("/models/abc").status_code == 404
    assert client.get("/pipelines/executions/nope").status_code == 404
    assert "no curated readings" in client.get("/data").text


def test_the_approval_reaches_the_bus_as_the_clis_does(client, registry, settings):
    """The status change publishes the registry's state-change event, which the approval rule matches."""
    from infra.local.eventbridge.client import LocalEventsClient

    sm, arn = registry
    events = LocalEventsClient(settings)
    before = len(events.history(limit=100, detail_type="SageMaker Model Package State Change"))
    client.post("/models/1/approval", data={"csrf": form_token(TOKEN), "decision": "Approved"},
                headers={"Origin": ORIGIN})
    history = events.history(limit=100, detail_type="SageMaker Model Package State Change")
    assert len(history) == before + 1
    detail = history[0]["event"]["detail"]
    assert detail["ModelPackageArn"] == arn and detail["ModelApprovalStatus"] == "Approved"
    assert history[0]["event"]["source"] == "aws.sagemaker"


def test_local_up_starts_the_console_on_loopback_and_prints_its_link(settings, capsys):
    """`aircast local up console` runs it as a stack service; `aircast console --url` prints the sign-in link;
    a second `aircast console` on the taken port says what to do."""
    import urllib.request

    from aircast.cli import main
    from infra.local.auth import local_token

    assert main(["local", "up", "console"]) == 0
    try:
        out = capsys.readouterr().out
        link = f"http://127.0.0.1:{settings.console_port}/login?token={local_token(settings.data_dir)}&next=/"
        assert "console" in out and link in out
        with urllib.request.urlopen(f"{settings.console_url}/health", timeout=10) as resp:
            assert json.loads(resp.read())["status"] == "ok"
        assert main(["console", "--url", "--open", "/models/3"]) == 0
        assert capsys.readouterr().out.strip().endswith("&next=/models/3")
        assert main(["console"]) == 1
        assert "aircast console --url" in capsys.readouterr().err
        assert main(["local", "status", "console", "--json"]) == 0
        (row,) = json.loads(capsys.readouterr().out)
        assert row["state"] == "running" and row["listening"] and row["port"] == settings.console_port
    finally:
        assert main(["local", "down", "console"]) == 0


def test_the_demo_ends_with_the_consoles_link_to_its_package(settings):
    from aircast.demo import console_line

    arn = f"arn:aws:sagemaker:us-east-1:000000000000:model-package/{settings.model_package_group}/3"
    running = console_line(settings, arn, running=True)
    assert running.startswith(f"console: {settings.console_url}/login?token=") and running.endswith("next=/models/3")
    stopped = console_line(settings, None, running=False)
    assert "aircast local up" in stopped and stopped.endswith("next=/pipelines")

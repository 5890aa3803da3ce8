"""The console in a real browser on a real local stack: Debian's headless Chromium (Selenium with
Debian's chromedriver) loads every page, approves the pending package with the button, and sees the
approval event's blue/green deployment reach InService on the endpoint page.

The stack: curated lake tables, two executions of the real pipeline definition (one passing the
quality gate and registering a pending package, one failing it), the endpoint host and the console as
services of ``aircast local up``, the default event rules, served forecasts and a drift check.
Screenshots of each page go to ``$CONSOLE_SCREENSHOTS`` (``docs/console`` for the README) or the
test's temporary folder.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.console import browser
from tests.console.seed import (
    FAILING_GATE,
    FAST,
    PASSING_GATE,
    serve_forecasts_inside_the_lake,
    write_readings_and_quarantine,
)
from tests.pipeline.conftest import write_curated_hourly

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(browser.available() is not None, reason=str(browser.available()))]

SERVICES = ("sagemaker-endpoints", "console")


def test_reviewer_approves_in_the_browser_and_sees_the_deployment(settings, tmp_path):
    from aircast import local_wiring
    from aircast.clients import get_client
    from aircast.console.service import login_url
    from aircast.demo import deepar_cat
    from aircast.event_rules import ensure_default_rules
    from aircast.local_wiring import run_local_pipeline
    from aircast.monitoring import run_monitor_for
    from aircast.settings import settings_env
    from deployment.deploy import wait_for_endpoint

    shots = Path(os.environ.get("CONSOLE_SCREENSHOTS") or tmp_path / "screenshots")
    # a canary needs 2+ instances (nominal locally)
    settings = settings.replace(clock_scale=0.02, deploy_strategy="canary", deploy_instance_count=2,
                                deploy_wait_seconds=60, deploy_termination_wait_seconds=0)
    os.environ.update(settings_env(settings))  # the in-process deploy handler reads these (monkeypatched env)
    write_curated_hourly(settings.s3_root, things=("station-a", "station-b"), pollutants=("pm2_5",), days=10)
    write_readings_and_quarantine(settings.s3_root, {"station-a": 24, "station-b": 20}, days=5,
                                  quarantine={"bad_thing_name": 3, "unparsable_json": 5})
    ensure_default_rules(settings)
    local_wiring.up(settings, SERVICES)  # the host imports torch while the pipelines run
    try:
        # v1 serves already (approved as `aircast models approve` does); v2 waits for the reviewer
        serving = run_local_pipeline(settings, {**FAST, **PASSING_GATE}, progress=False)
        assert serving["status"] == "Succeeded", serving["failure_reason"]
        sm = get_client("sagemaker", settings)
        sm.update_model_package(ModelPackageArn=serving["model_package_arn"], ModelApprovalStatus="Approved",
                                ApprovalDescription="first model")
        passing = run_local_pipeline(settings, {**FAST, **PASSING_GATE}, progress=False)
        assert passing["status"] == "Succeeded", passing["failure_reason"]
        failing = run_local_pipeline(settings, {**FAST, **FAILING_GATE}, progress=False)
        assert failing["status"] == "Failed"
        version = passing["model_package_arn"].rsplit("/", 1)[-1]
        base = settings.console_url
        passing_id = passing["execution_arn"].rsplit("/", 1)[-1]
        failing_id = failing["execution_arn"].rsplit("/", 1)[-1]

        with browser.chromium() as driver:
            def text() -> str:
                return driver.find_element("tag name", "body").text

            # without the token link a page shows the evidence but no buttons
            driver.get(f"{base}/models/{version}")
            assert "PendingManualApproval" in text() and not driver.find_elements("id", "approve")
            driver.get(login_url(settings, "/pipelines"))
            assert passing_id in text() and failing_id in text()
            browser.screenshot(driver, shots / "pipelines.png")

            driver.get(f"{base}/pipelines/executions/{passing_id}")
            nodes = {n.get_attribute("data-step"): n.get_attribute("data-status")
                     for n in driver.find_elements("css selector", "svg.graph g.node")}
            assert nodes["TuneDeepAR"] == "Succeeded" and nodes["RegisterModel"] == "Succeeded"
            assert nodes["QualityGateFailed"] == "not run"
            page = text()
            assert "outcome True" in page or "condition True" in page
            assert "pipelines-" in page, page  # the steps' job names
            assert "mean wQL" in page and "vs best baseline" in page, page  # the Evaluate job's own log line
            browser.screenshot(driver, shots / "execution.png")

            driver.get(f"{base}/pipelines/executions/{failing_id}")
            assert driver.find_element("id", "failure-reason").text.count("quality gate failed") == 1
            nodes = {n.get_attribute("data-step"): n.get_attribute("data-status")
                     for n in driver.find_elements("css selector", "svg.graph g.node")}
            assert nodes["QualityGateFailed"] == "Failed" and nodes["RegisterModel"] == "not run"
            browser.screenshot(driver, shots / "execution-failed-gate.png")

            assert wait_for_endpoint(sm, settings.endpoint_name, 60)["EndpointStatus"] == "InService"
            driver.get(f"{base}/models")
            row = driver.find_element("css selector", "#packages tbody tr").text
            assert f"v{version}" in row and "PendingManualApproval" in row
            assert "serves v1" in driver.find_element("id", "serving").text
            browser.screenshot(driver, shots / "models.png")

            driver.get(f"{base}/models/{version}")
            assert "mean_wQuantileLoss" in text() and "seasonal_naive" in text()
            plot = driver.find_element("css selector", "img.plot")
            assert driver.execute_script("return arguments[0].naturalWidth", plot) > 300  # the PNG loaded
            browser.screenshot(driver, shots / "package-pending.png")
            note = "looks good <script>alert(1)</script>"
            driver.find_element("id", "note").send_keys(note)
            driver.find_element("id", "approve").click()
            browser.wait_for(driver, lambda d: "?follow=1" in d.current_url, 20, "the redirect after approving")
            browser.wait_for(driver, lambda d: f"v{version} serves on" in text(), 90,
                             "the package page to see the deployment finish")
            assert driver.find_element("id", "approval-note").text == note  # shown as text, not run
            assert not driver.execute_script("return document.querySelectorAll('main script').length")
            browser.screenshot(driver, shots / "package-approved.png")

            driver.get(f"{base}/endpoints")
            browser.wait_for(driver, lambda d: "InService" in text() and f"v{version} (endpoint config" in text(), 30,
                             "the endpoint page to show the new package InService")
            page = text()
            # the canary's steps, as the host ran them
            assert "ActivatingTraffic: step 1/2 (CANARY)" in page and "Baking" in page
            assert "deployment complete" in page
            assert sm.describe_endpoint(EndpointName=settings.endpoint_name)["EndpointStatus"] == "InService"

            served = serve_forecasts_inside_the_lake(settings, "station-a", "pm2_5",
                                                     deepar_cat(settings, "station-a", "pm2_5",
                                                                passing["model_package_arn"]))
            capture = settings.s3_root / settings.artifacts_bucket / "datacapture"
            deadline = time.monotonic() + 20
            while not list(capture.rglob("*.jsonl")) and time.monotonic() < deadline:
                time.sleep(0.2)
            report = run_monitor_for(settings, emit=False, plot=False)
            assert report["scored_forecasts"] >= 1, report
            browser.wait_for(driver, lambda d: d.refresh() or f"{served} invocations" in text(), 20,
                             "the invocations to reach the endpoint page's metrics")
            browser.screenshot(driver, shots / "endpoints.png")

            driver.get(f"{base}/data")
            page = text()
            assert "bad_thing_name" in page and "unparsable_json" in page and "no drift" in page
            assert driver.find_elements("css selector", "svg.chart")
            browser.screenshot(driver, shots / "data.png")
    finally:
        local_wiring.down(settings, SERVICES)

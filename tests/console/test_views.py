"""The console's data: the step graph of the real pipeline definition, evaluation tables, deployment
timelines, drift series, lake summaries and the SVG they become."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from aircast.console import data as views
from aircast.console import svg

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def test_step_graph_of_the_aircast_pipeline(definition):
    graph = views.step_graph(definition)
    names = [n["name"] for n in graph.nodes]
    assert names == ["Preprocess", "TuneDeepAR", "CreateModel", "BatchForecast", "Evaluate", "QualityGate",
                     "RegisterModel", "Deploy", "QualityGateFailed"]
    edges = set(graph.edges)
    # the chain a reader follows; implied data edges (Preprocess → Evaluate) are left out
    for a, b in [("Preprocess", "TuneDeepAR"), ("TuneDeepAR", "CreateModel"), ("CreateModel", "BatchForecast"),
                 ("BatchForecast", "Evaluate"), ("Evaluate", "QualityGate"), ("RegisterModel", "Deploy")]:
        assert (a, b, "") in edges
    assert ("QualityGate", "RegisterModel", "true") in edges and ("QualityGate", "QualityGateFailed", "false") in edges
    assert ("Preprocess", "Evaluate", "") not in edges
    ranks = graph.ranks()
    assert ranks["Preprocess"] == 0 and ranks["QualityGate"] == 5
    assert ranks["RegisterModel"] == ranks["QualityGateFailed"] == 6 and ranks["Deploy"] == 7


def test_quality_gate_conditions_read_like_the_definition(definition):
    gate = views.step_arguments(definition)["QualityGate"]["Arguments"]
    lines = views.condition_lines(gate)
    assert lines == ["Evaluate.EvaluationReport[relative_mean_wQuantileLoss.value] ≤ MaxRelativeWQL",
                     "Evaluate.EvaluationReport[forecast_metrics.mean_wQuantileLoss.value] < MaxMeanWQL"]
    assert "IfSteps" not in gate and "RegisterModel" in views.step_arguments(definition)


def test_evaluation_table_compares_every_metric_with_every_baseline():
    evaluation = {"forecast_metrics": {"mean_wQuantileLoss": {"value": 0.5}, "RMSE": {"value": 30.0},
                                       "coverage[0.1,0.9]": {"value": 0.78}, "wQuantileLoss[0.5]": {"value": 0.6}},
                  "baseline_metrics": {"seasonal_naive": {"mean_wQuantileLoss": {"value": 0.7}, "RMSE": {"value": 25.0},
                                                          "coverage[0.1,0.9]": {"value": 0.9}},
                                       "zero": {"mean_wQuantileLoss": {"value": 1.0}}},
                  "relative_mean_wQuantileLoss": {"value": 0.714}}
    table = views.evaluation_table(evaluation)
    assert table["baselines"] == ["seasonal_naive", "zero"] and table["relative_wql"] == pytest.approx(0.714)
    rows = {r["metric"]: r for r in table["rows"]}
    assert list(rows) == ["mean_wQuantileLoss", "RMSE", "coverage[0.1,0.9]", "wQuantileLoss[0.5]"]
    naive = {r["metric"]: r["baselines"][0]["model_better"] for r in table["rows"]}
    assert naive == {"mean_wQuantileLoss": True, "RMSE": False, "coverage[0.1,0.9]": True,  # 0.78 is closer to 80 %
                     "wQuantileLoss[0.5]": None}
    assert rows["mean_wQuantileLoss"]["baselines"][1] == {"baseline": "zero", "value": 1.0, "model_better": True}
    assert views.evaluation_table(None)["rows"] == []


def test_deployment_timeline_from_the_local_history_keeps_the_last_deployment():
    history = [{"Time": T0, "Message": "CreateEndpoint with endpoint config a"},
               {"Time": T0, "Message": "InService: serving endpoint config a (AllTraffic)"},
               {"Time": T0, "Message": "UpdateEndpoint to endpoint config b (CANARY blue/green)"},
               {"Time": T0, "Message": "ActivatingTraffic: step 1/2 (CANARY): 20% of traffic on green"},
               {"Time": T0, "Message": "Baking: step 1/2: baking 300 s with 20% on green, alarms watching green"},
               {"Time": T0, "Message": "RollingBack: alarm x went into ALARM; all traffic moved back to the blue fleet"},
               {"Time": T0, "Message": "rollback complete: serving a (blue)"}]
    timeline = views.deployment_timeline({}, history)
    assert [e["kind"] for e in timeline] == ["start", "shift", "bake", "rollback", "rollback"]
    assert "ALARM" in timeline[3]["message"]


def test_deployment_timeline_from_describe_endpoint_alone():
    """On AWS there is no history: the pending summary and the failure reason tell the story."""
    desc = {"EndpointStatus": "Updating", "LastModifiedTime": T0, "EndpointConfigName": "a",
            "PendingDeploymentSummary": {"EndpointConfigName": "b", "StartTime": T0, "ProductionVariants": [
                {"VariantName": "AllTraffic", "VariantStatus": [{"Status": "Baking", "StatusMessage": "20%",
                                                                 "StartTime": T0}]}]}}
    timeline = views.deployment_timeline(desc)
    assert [e["kind"] for e in timeline] == ["start", "bake"] and "b" in timeline[0]["message"]
    rolled = views.deployment_timeline({"EndpointStatus": "InService", "FailureReason": "rolled back: alarm",
                                        "LastModifiedTime": T0})
    assert rolled == [{"time": T0, "kind": "rollback", "message": "rolled back: alarm"}]


@pytest.mark.parametrize("status, serving, follow", [
    ("PendingManualApproval", {"exists": False}, False),
    ("Approved", {"exists": False}, True),
    ("Approved", {"exists": True, "status": "Updating", "serving": "old"}, True),
    ("Approved", {"exists": True, "status": "InService", "serving": "me"}, False),
    ("Approved", {"exists": True, "status": "InService", "serving": "old", "failure_reason": "rolled back"}, False),
    ("Rejected", {"exists": True, "status": "InService", "serving": "old"}, False),
])
def test_a_package_page_follows_only_a_deployment_in_flight(status, serving, follow):
    assert views.following(status, serving, "me") is follow


def test_drift_view_marks_drift_points_retrains_and_thresholds():
    report = {"thresholds": {"error_ratio": 2.0}, "baselines": {"arn/1": {"mean_wql": 0.1}, "arn/2": {"mean_wql": 0.2}},
              "drift_events": [{"model_package_arn": "arn/1", "declared_at": "2024-01-03T00:00:00"}],
              "model_switches": [{"model_package_arn": "arn/1", "first_forecast_hour": "2024-01-01T00:00:00"},
                                 {"model_package_arn": "arn/2", "first_forecast_hour": "2024-01-05T00:00:00+00:00"}],
              "decision": {"drift": False, "reason": "fine"}}
    scores = ("thing_name,pollutant,model_package_arn,forecast_start,wql\n"
              "b,pm2_5,arn/1,2024-01-02 00:00:00,0.3\n"
              "a,pm2_5,arn/1,2024-01-01 00:00:00,0.1\n"
              "a,pm2_5,arn/1,2024-01-01 03:00:00,\n"
              "a,pm2_5,arn/2,2024-01-05 00:00:00,0.15\n")
    view = views.drift_view(report, scores)
    assert view["thresholds"] == {"arn/1": pytest.approx(0.2), "arn/2": pytest.approx(0.4)}
    assert view["drift_points"] == [{"time": dt.datetime(2024, 1, 3, tzinfo=dt.UTC), "model": "arn/1"}]
    assert view["retrains"] == [{"time": dt.datetime(2024, 1, 5, tzinfo=dt.UTC), "model": "arn/2"}]
    a = view["series"][("a", "pm2_5")]
    assert [(p[0].day, p[1], p[2]) for p in a] == [(1, 0.1, "arn/1"), (5, 0.15, "arn/2")]  # the NaN is no point
    assert views.drift_view(None, "")["report"] is None


def test_lake_summary_keeps_the_last_days_and_counts_reasons():
    import duckdb

    con = duckdb.connect()
    con.execute("CREATE TABLE readings AS SELECT * FROM (VALUES ('a', '2024-01-01'), ('a', '2024-01-03'), "
                "('a', '2024-01-03'), ('b', '2024-01-03')) t(thing_name, dt)")
    con.execute("CREATE TABLE quarantine AS SELECT * FROM (VALUES ('bad_seq'), ('bad_seq'), ('empty_record')) "
                "t(reason)")

    def run(sql):
        cur = con.execute(sql)
        return [d[0] for d in cur.description], cur.fetchall()

    summary = views.lake_summary(run, ["readings", "quarantine"], days=2)
    assert summary["per_thing"] == {"a": [("2024-01-03", 2)], "b": [("2024-01-03", 1)]}
    assert summary["quarantine"] == [{"reason": "bad_seq", "count": 2}, {"reason": "empty_record", "count": 1}]
    assert views.lake_summary(run, ["readings"], days=10)["quarantine"] == []
    with pytest.raises(LookupError, match="lake etl"):
        views.lake_summary(run, [])


def test_job_log_matches_the_jobs_stream_case_insensitively(tmp_path):
    from infra.local.logs import LocalLogsClient, LogStream

    LogStream(tmp_path, "/aws/sagemaker/ProcessingJobs", "pipelines-x-Evaluate-ab12/algo-1-1").put("scored 3 series")
    LogStream(tmp_path, "/aws/sagemaker/ProcessingJobs", "pipelines-x-Preprocess-cd34/algo-1-1").put("other job")
    meta = {"ProcessingJob": {"Arn": "arn:aws:sagemaker:r:a:processing-job/pipelines-x-evaluate-ab12"}}
    log = views.job_log(LocalLogsClient(tmp_path), "Processing", meta, None, None)
    assert [line["message"] for line in log["lines"]] == ["scored 3 series"] and log["problem"] is None
    assert views.job_log(LocalLogsClient(tmp_path), "Condition", {}, None, None) is None
    missing = views.job_log(LocalLogsClient(tmp_path), "Training",
                            {"TrainingJob": {"Arn": "arn:aws:sagemaker:r:a:training-job/t"}}, None, None)
    assert missing["lines"] == [] and "ResourceNotFoundException" in missing["problem"]


def test_svg_escapes_every_text_and_draws_something():
    attack = "<script>alert(1)</script>"
    graph = svg.step_graph_svg([{"name": attack, "type": "Processing"}], [], {attack: 0}, {attack: "Failed"})
    assert "<script>" not in graph and "&lt;script&gt;" in graph and 'data-status="Failed"' in graph
    chart = svg.chart_svg(svg.Chart(lines=[svg.Line(attack, [(T0, 1.0), (T0 + dt.timedelta(hours=1), 3.0)])],
                                    vmarks=[(T0, attack, "red")], title=attack))
    assert "<script>" not in chart and chart.count("&lt;script&gt;") >= 3 and "<path d=\"M" in chart
    assert "no data" in svg.chart_svg(svg.Chart())


@pytest.mark.parametrize("low, high", [(0.0, 0.43), (0.02, 0.051), (3.0, 3.0), (-5, 120), (0, 1e6)])
def test_axis_ticks_cover_the_data(low, high):
    ticks = svg.nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high and len(ticks) <= 8
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1


def test_every_template_escapes(tmp_path):
    """No template turns autoescaping off or marks data safe (only the app's own SVG is Markup)."""
    from aircast.console.app import HERE

    for path in (HERE / "templates").glob("*.html"):
        text = path.read_text()
        assert "|safe" not in text.replace(" ", "") and "autoescape false" not in text, path.name
    assert not re.search(r"json\.dumps\(.*\)\s*\|\s*safe", json.dumps([]))

"""What each console page shows, as plain data built from the AWS-shaped clients.

The functions take the clients (``sagemaker``, ``s3``, ``cloudwatch``, ``logs``) as arguments and
return dicts and lists the templates render; the pure parts (graph, evaluation table, deployment
timeline, drift series) take responses and documents only, so tests call them directly.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aircast.reads import as_float, evaluation_uri, pipeline_executions, read_s3_json

TERMINAL = ("Succeeded", "Failed", "Stopped")
#: CloudWatch Logs groups of the jobs a pipeline step runs, by step type
JOB_LOG_GROUPS = {"Processing": ("ProcessingJob", "/aws/sagemaker/ProcessingJobs"),
                  "Training": ("TrainingJob", "/aws/sagemaker/TrainingJobs"),
                  "Transform": ("TransformJob", "/aws/sagemaker/TransformJobs")}
#: the metrics a reviewer compares, in the order shown (evaluation.json's names)
KEY_METRICS = ("mean_wQuantileLoss", "RMSE", "MASE", "coverage[0.1,0.9]")
#: lower is better, except interval coverage (closest to its nominal 80 %)
COVERAGE_NOMINAL = {"coverage[0.1,0.9]": 0.8}
LOG_LINES = 400


#: an endpoint's local deployment history by name (``aircast.clients.deployment_history``); none on AWS
HistoryOf = Callable[[str], Sequence[Mapping[str, Any]]]


def _no_history(endpoint_name: str) -> list[dict[str, Any]]:
    return []

def _error_code(exc: Exception) -> str:
    return getattr(exc, "response", {}).get("Error", {}).get("Code", "")


def short_id(arn: str | None) -> str:
    """The last part of an ARN (an execution id, a package version, a job name)."""
    return (arn or "").rsplit("/", 1)[-1]


def seconds_between(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    return round((end - start).total_seconds(), 1) if start and end else None


# ---------------------------------------------------------------------------- pipelines


def execution_rows(sm: Any, pipeline_name: str, limit: int = 50,
                   now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` executions with status, start, end and duration (running ones: so far)."""
    now = now or dt.datetime.now(dt.UTC)
    rows = []
    for summary in pipeline_executions(sm, pipeline_name, max_results=limit):
        arn = summary["PipelineExecutionArn"]
        desc = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        status = desc["PipelineExecutionStatus"]
        start = desc.get("CreationTime") or summary.get("StartTime")
        end = desc.get("LastModifiedTime") if status in TERMINAL else None
        rows.append({"id": short_id(arn), "arn": arn, "status": status, "start": start, "end": end,
                     "seconds": seconds_between(start, end or now), "running": end is None,
                     "name": desc.get("PipelineExecutionDisplayName") or "",
                     "failure_reason": desc.get("FailureReason") or summary.get("PipelineExecutionFailureReason")})
    return rows


def find_execution_arn(sm: Any, pipeline_name: str, execution_id: str) -> str | None:
    """The ARN of the execution whose id (last ARN part) is ``execution_id``."""
    for summary in pipeline_executions(sm, pipeline_name):
        if short_id(summary["PipelineExecutionArn"]) == execution_id:
            return summary["PipelineExecutionArn"]
    return None


def _step_references(obj: Any) -> set[str]:
    """Steps an expression reads (``{"Get": "Steps.NAME...."}``, property files included)."""
    found: set[str] = set()
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "Get" and isinstance(value, str) and value.startswith("Steps."):
                found.add(value.split(".")[1].split("[")[0])
            else:
                found |= _step_references(value)
    elif isinstance(obj, list):
        for value in obj:
            found |= _step_references(value)
    return found


@dataclass
class StepGraph:
    """A pipeline definition's steps (definition order) and edges (``(from, to, label)``)."""

    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[tuple[str, str, str]] = field(default_factory=list)

    def ranks(self) -> dict[str, int]:
        """Longest-path layer of each step (sources at 0)."""
        rank = {n["name"]: 0 for n in self.nodes}
        for _ in range(len(rank)):
            changed = False
            for src, dst, _label in self.edges:
                if rank[dst] < rank[src] + 1:
                    rank[dst] = rank[src] + 1
                    changed = True
            if not changed:
                break
        return rank


def step_graph(definition: Mapping[str, Any]) -> StepGraph:
    """Steps and edges of a pipeline definition: ``DependsOn``, data references and condition branches.

    An edge implied by a longer path is dropped (a reader follows the chain); branch edges keep
    their ``true``/``false`` label."""
    graph = StepGraph()
    labelled: dict[tuple[str, str], str] = {}
    plain: set[tuple[str, str]] = set()

    def add(steps: Iterable[Mapping[str, Any]], guard: tuple[str, str] | None) -> None:
        for step in steps:
            name = step["Name"]
            graph.nodes.append({"name": name, "type": step.get("Type", "?")})
            for dep in step.get("DependsOn", []) or []:
                plain.add((dep, name))
            arguments = {k: v for k, v in (step.get("Arguments") or {}).items() if k not in ("IfSteps", "ElseSteps")}
            for ref in _step_references(arguments):
                plain.add((ref, name))
            if guard is not None:
                labelled[(guard[0], name)] = guard[1]
            if step.get("Type") == "Condition":
                add(step.get("Arguments", {}).get("IfSteps", []), (name, "true"))
                add(step.get("Arguments", {}).get("ElseSteps", []), (name, "false"))

    add(definition.get("Steps", []), None)
    names = {n["name"] for n in graph.nodes}
    plain = {(a, b) for a, b in plain if a in names and b in names and a != b and (a, b) not in labelled}
    succ: dict[str, set[str]] = {}
    for a, b in plain | set(labelled):
        succ.setdefault(a, set()).add(b)

    def reachable_without(a: str, b: str) -> bool:
        stack = [n for n in succ.get(a, ()) if n != b]
        seen = set(stack)
        while stack:
            node = stack.pop()
            if node == b:
                return True
            for nxt in succ.get(node, ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return False

    order = {n["name"]: i for i, n in enumerate(graph.nodes)}
    kept = [(a, b, "") for a, b in plain if not reachable_without(a, b)]
    kept += [(a, b, label) for (a, b), label in labelled.items() if not reachable_without(a, b)]
    graph.edges = sorted(kept, key=lambda e: (order[e[0]], order[e[1]]))
    return graph


def step_arguments(definition: Mapping[str, Any]) -> dict[str, Any]:
    """Each step's definition entry (Arguments and the rest), condition branches included, by name."""
    out: dict[str, Any] = {}

    def add(steps: Iterable[Mapping[str, Any]]) -> None:
        for step in steps:
            body = {k: v for k, v in step.items() if k not in ("Name", "Type")}
            if step.get("Type") == "Condition":
                args = dict(body.get("Arguments", {}))
                add(args.pop("IfSteps", []))
                add(args.pop("ElseSteps", []))
                body["Arguments"] = args
            out[step["Name"]] = body

    add(definition.get("Steps", []))
    return out


def describe_expression(expr: Any) -> str:
    """A pipeline expression as a reader writes it (``Evaluate.EvaluationReport[relative…]``, ``MaxMeanWQL``)."""
    if isinstance(expr, dict):
        if "Get" in expr:
            path = str(expr["Get"])
            return path[len("Parameters."):] if path.startswith("Parameters.") else path
        if expr.get("Std:JsonGet"):
            get = expr["Std:JsonGet"]
            source = get.get("PropertyFile", {}).get("Get", "?").replace("Steps.", "").replace(".PropertyFiles.", ".")
            return f"{source}[{get.get('Path')}]"
        if expr.get("Std:Join"):
            return "join(" + ", ".join(describe_expression(v) for v in expr["Std:Join"].get("Values", [])) + ")"
    return json.dumps(expr) if not isinstance(expr, str) else expr


_CONDITION_OPS = {"LessThanOrEqualTo": "≤", "LessThan": "<", "GreaterThan": ">", "GreaterThanOrEqualTo": "≥",
                  "Equals": "="}


def condition_lines(arguments: Mapping[str, Any]) -> list[str]:
    """A condition step's conditions as readable lines."""
    lines = []
    for cond in arguments.get("Conditions", []):
        op = _CONDITION_OPS.get(cond.get("Type", ""), cond.get("Type", "?"))
        lines.append(f"{describe_expression(cond.get('LeftValue'))} {op} {describe_expression(cond.get('RightValue'))}")
    return lines


def job_log(logs: Any, step_type: str, metadata: Mapping[str, Any], start: dt.datetime | None,
            end: dt.datetime | None, limit: int = LOG_LINES) -> dict[str, Any] | None:
    """The CloudWatch Logs lines of the job or function a step ran (None: the step runs none).

    The job's name is the last part of its ARN; the ARN is lower case while the log stream keeps
    the job name's case, so streams are matched case-insensitively within the step's time window."""
    if step_type in JOB_LOG_GROUPS:
        key, group = JOB_LOG_GROUPS[step_type]
        prefix = short_id((metadata.get(key) or {}).get("Arn")).lower() + "/"
        if prefix == "/":
            return None
    elif step_type == "Lambda" and metadata.get("Lambda", {}).get("Arn"):
        group = "/aws/lambda/" + metadata["Lambda"]["Arn"].split(":")[6]
        prefix = ""
    else:
        return None
    window: dict[str, int] = {}
    if start is not None:
        window["startTime"] = int(start.timestamp() * 1000) - 60_000
    if end is not None:
        window["endTime"] = int(end.timestamp() * 1000) + 60_000
    lines: list[dict[str, Any]] = []
    token = None
    try:
        for _ in range(20):  # pages; a job's log is far shorter
            kwargs: dict[str, Any] = {"logGroupName": group, "limit": 1000, **window}
            if token:
                kwargs["nextToken"] = token
            page = logs.filter_log_events(**kwargs)
            for event in page.get("events", []):
                if event.get("logStreamName", "").lower().startswith(prefix):
                    lines.append({"time": dt.datetime.fromtimestamp(event["timestamp"] / 1000, tz=dt.UTC),
                                  "message": event.get("message", "")})
            token = page.get("nextToken")
            if not token:
                break
    except Exception as exc:  # noqa: BLE001 - no log group yet, or no access: the page says so
        return {"group": group, "lines": [], "truncated": False,
                "problem": f"{_error_code(exc) or type(exc).__name__}: {exc}"}
    return {"group": group, "lines": lines[-limit:], "truncated": len(lines) > limit, "problem": None}


def execution_detail(sm: Any, logs: Any, execution_arn: str, now: dt.datetime | None = None) -> dict[str, Any]:
    """One execution: status, parameters, the graph coloured by step status, each step's timing,
    definition entry, failure reason, condition and log."""
    now = now or dt.datetime.now(dt.UTC)
    desc = sm.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
    definition = json.loads(sm.describe_pipeline_definition_for_execution(
        PipelineExecutionArn=execution_arn)["PipelineDefinition"])
    steps = sm.list_pipeline_execution_steps(PipelineExecutionArn=execution_arn,
                                             SortOrder="Ascending")["PipelineExecutionSteps"]
    params = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=execution_arn)["PipelineParameters"]
    graph = step_graph(definition)
    types = {n["name"]: n["type"] for n in graph.nodes}
    entries = step_arguments(definition)
    defaults = {p["Name"]: p.get("DefaultValue") for p in definition.get("Parameters", [])}
    rows = []
    package = None
    for step in steps:
        name = step["StepName"]
        meta = step.get("Metadata", {}) or {}
        start, end = step.get("StartTime"), step.get("EndTime")
        if "RegisterModel" in meta:
            package = meta["RegisterModel"].get("Arn")
        kind = types.get(name, "?")
        entry = entries.get(name, {})
        rows.append({
            "name": name, "type": kind, "status": step.get("StepStatus"), "start": start, "end": end,
            "seconds": seconds_between(start, end or (now if step.get("StepStatus") == "Executing" else None)),
            "failure_reason": step.get("FailureReason"), "metadata": meta,
            "outcome": (meta.get("Condition") or {}).get("Outcome"),
            "conditions": condition_lines(entry.get("Arguments", {})) if kind == "Condition" else [],
            "definition": json.dumps(entry, indent=2, sort_keys=True),
            "log": job_log(logs, kind, meta, start, end),
        })
    status = desc["PipelineExecutionStatus"]
    start = desc.get("CreationTime")
    end = desc.get("LastModifiedTime") if status in TERMINAL else None
    return {
        "id": short_id(execution_arn), "arn": execution_arn, "status": status, "start": start, "end": end,
        "seconds": seconds_between(start, end or now), "running": end is None,
        "failure_reason": desc.get("FailureReason"), "model_package_arn": package,
        "parameters": [{"name": p["Name"], "value": p["Value"], "default": defaults.get(p["Name"]),
                        "overridden": str(defaults.get(p["Name"])) != p["Value"]} for p in params],
        "graph": graph, "step_status": {r["name"]: r["status"] for r in rows}, "steps": rows,
    }


# ---------------------------------------------------------------------------- model registry


def metric_value(evaluation: Mapping[str, Any] | None, *path: str) -> float | None:
    node: Any = evaluation or {}
    for key in path:
        node = node.get(key, {}) if isinstance(node, Mapping) else {}
    return as_float(node.get("value")) if isinstance(node, Mapping) else None


def evaluation_table(evaluation: Mapping[str, Any] | None) -> dict[str, Any]:
    """Every model metric beside every baseline's, with which side is better per baseline."""
    model = (evaluation or {}).get("forecast_metrics", {})
    baselines = sorted((evaluation or {}).get("baseline_metrics", {}))
    names = [m for m in KEY_METRICS if m in model] + sorted(m for m in model if m not in KEY_METRICS)
    rows = []
    for name in names:
        value = metric_value(evaluation, "forecast_metrics", name)
        cells = []
        for base in baselines:
            other = metric_value(evaluation, "baseline_metrics", base, name)
            cells.append({"baseline": base, "value": other, "model_better": _better(name, value, other)})
        rows.append({"metric": name, "model": value, "baselines": cells})
    compared = [c["model_better"] for r in rows for c in r["baselines"][:1] if c["model_better"] is not None]
    return {"baselines": baselines, "rows": rows, "better": sum(compared), "compared": len(compared),
            "relative_wql": metric_value(evaluation, "relative_mean_wQuantileLoss"),
            "info": (evaluation or {}).get("evaluation", {})}


def _better(metric: str, model: float | None, baseline: float | None) -> bool | None:
    if model is None or baseline is None:
        return None
    if metric in COVERAGE_NOMINAL:
        nominal = COVERAGE_NOMINAL[metric]
        return abs(model - nominal) <= abs(baseline - nominal)
    return model <= baseline


def _evaluation(s3: Any, package: Mapping[str, Any], cache: dict[str, Any] | None) -> tuple[Any, str | None]:
    uri = evaluation_uri(dict(package))
    if not uri:
        return None, "the package has no ModelMetrics.ModelQuality.Statistics"
    if cache is not None and uri in cache:
        return cache[uri], None
    try:
        doc = read_s3_json(s3, uri)
    except Exception as exc:  # noqa: BLE001 - a missing object must not break the page
        return None, f"could not read {uri}: {_error_code(exc) or type(exc).__name__}"
    if cache is not None:
        cache[uri] = doc  # evaluation.json of a registered package never changes
    return doc, None


def package_rows(sm: Any, s3: Any, group: str, status: str | None = None,
                 cache: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The group's packages, newest first, with the key metrics beside the seasonal-naive baseline's."""
    kwargs: dict[str, Any] = {"ModelPackageGroupName": group, "SortBy": "CreationTime", "SortOrder": "Descending",
                              "MaxResults": 100}
    if status:
        kwargs["ModelApprovalStatus"] = status
    summaries: list[dict[str, Any]] = []
    while True:
        page = sm.list_model_packages(**kwargs)
        summaries += page["ModelPackageSummaryList"]
        if not page.get("NextToken") or len(summaries) >= 500:
            break
        kwargs["NextToken"] = page["NextToken"]
    rows = []
    for summary in summaries:
        pkg = sm.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        evaluation, problem = _evaluation(s3, pkg, cache)
        table = evaluation_table(evaluation)
        meta = pkg.get("CustomerMetadataProperties", {})
        rows.append({"version": summary.get("ModelPackageVersion"), "arn": summary["ModelPackageArn"],
                     "status": summary["ModelApprovalStatus"], "created": summary["CreationTime"],
                     "execution_id": meta.get("pipeline_execution_id"),
                     "metrics": [r for r in table["rows"] if r["metric"] in KEY_METRICS],
                     "relative_wql": table["relative_wql"] if table["relative_wql"] is not None
                     else as_float(meta.get("relative_mean_wQuantileLoss")),
                     "approval_description": pkg.get("ApprovalDescription"), "problem": problem})
    return rows


def forecast_plot_uri(package: Mapping[str, Any]) -> str | None:
    """The Evaluate step's forecast plot, written beside ``evaluation.json``."""
    uri = evaluation_uri(dict(package))
    return uri.rsplit("/", 1)[0] + "/forecast.png" if uri else None


def package_detail(sm: Any, s3: Any, arn: str, endpoint_name: str,
                   cache: dict[str, Any] | None = None, history_of: HistoryOf = _no_history) -> dict[str, Any]:
    """One package: status, evaluation table, the execution that produced it, what serves now."""
    pkg = sm.describe_model_package(ModelPackageName=arn)
    evaluation, problem = _evaluation(s3, pkg, cache)
    meta = pkg.get("CustomerMetadataProperties", {})
    container = (pkg.get("InferenceSpecification", {}).get("Containers") or [{}])[0]
    return {
        "arn": arn, "version": pkg.get("ModelPackageVersion"), "group": pkg.get("ModelPackageGroupName"),
        "status": pkg["ModelApprovalStatus"], "created": pkg.get("CreationTime"),
        "modified": pkg.get("LastModifiedTime"), "approval_description": pkg.get("ApprovalDescription"),
        "description": pkg.get("ModelPackageDescription"), "image": container.get("Image"),
        "model_data": container.get("ModelDataUrl"), "execution_id": meta.get("pipeline_execution_id"),
        "metadata": meta, "evaluation": evaluation_table(evaluation), "evaluation_problem": problem,
        "evaluation_uri": evaluation_uri(pkg), "plot_uri": forecast_plot_uri(pkg),
        "serving": serving_state(sm, endpoint_name, history_of),
    }


def serving_state(sm: Any, endpoint_name: str, history_of: HistoryOf = _no_history) -> dict[str, Any]:
    """What the endpoint serves now and what is being deployed to it (package ARNs), with its status."""
    from deployment.deploy import endpoint_exists, endpoint_packages

    try:
        desc = endpoint_exists(sm, endpoint_name)
    except Exception as exc:  # noqa: BLE001 - the registry page must render without an endpoint
        return {"endpoint": endpoint_name, "exists": False, "problem": str(exc)}
    if desc is None:
        return {"endpoint": endpoint_name, "exists": False, "problem": None}
    packages = endpoint_packages(sm, desc)
    return {"endpoint": endpoint_name, "exists": True, "status": desc["EndpointStatus"],
            "serving": packages["serving"], "pending": packages["pending"],
            "failure_reason": desc.get("FailureReason"),
            "timeline": deployment_timeline(desc, history_of(endpoint_name)), "problem": None}


def following(package_status: str, serving: Mapping[str, Any], arn: str) -> bool:
    """Whether a package page should keep refreshing to follow this package's deployment."""
    if package_status != "Approved":
        return False
    if not serving.get("exists"):
        return True  # the deploy Lambda has not created the endpoint yet
    if serving.get("status") in ("Creating", "Updating", "RollingBack", "SystemUpdating"):
        return True
    return serving.get("serving") != arn and not serving.get("failure_reason")


# ---------------------------------------------------------------------------- endpoints


def _classify(message: str) -> str:
    for prefix, kind in (("CreateEndpoint", "start"), ("UpdateEndpoint ", "start"), ("UpdateEndpoint to", "start"),
                         ("ActivatingTraffic", "shift"), ("Baking", "bake"), ("RollingBack", "rollback"),
                         ("rollback complete", "rollback"), ("deployment complete", "done"), ("InService", "done"),
                         ("creation failed", "error"), ("host error", "error")):
        if message.startswith(prefix):
            return kind
    return "info"


def deployment_timeline(desc: Mapping[str, Any], history: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """The current or last deployment's steps: traffic shifts, baking, rollback with its reason, completion.

    ``history``: the local endpoint host's record of each step (``aircast.clients.deployment_history``);
    without it (AWS) the timeline is what ``DescribeEndpoint`` tells: the pending deployment's variant
    status and the last failure reason."""
    history = list(history)
    if history:
        starts = [i for i, h in enumerate(history) if _classify(str(h.get("Message", ""))) == "start"]
        recent = history[starts[-1]:] if starts else history[-20:]
        return [{"time": h.get("Time"), "kind": _classify(str(h.get("Message", ""))), "message": h.get("Message", "")}
                for h in recent]
    out: list[dict[str, Any]] = []
    pending = desc.get("PendingDeploymentSummary") or {}
    if pending:
        out.append({"time": pending.get("StartTime"), "kind": "start",
                    "message": f"deploying endpoint config {pending.get('EndpointConfigName')}"})
        for variant in pending.get("ProductionVariants", []):
            for status in variant.get("VariantStatus", []):
                out.append({"time": status.get("StartTime"), "kind": "bake" if status.get("Status") == "Baking"
                            else "shift", "message": f"{variant.get('VariantName')}: {status.get('Status')} "
                                                     f"{status.get('StatusMessage', '')}".strip()})
    if desc.get("FailureReason"):
        out.append({"time": desc.get("LastModifiedTime"), "kind": "rollback", "message": desc["FailureReason"]})
    if not out:
        out.append({"time": desc.get("LastModifiedTime"), "kind": "done",
                    "message": f"{desc.get('EndpointStatus')}: serving {desc.get('EndpointConfigName')}"})
    return out


def minute_series(datapoints: Sequence[Mapping[str, Any]], statistic: str = "Sum") -> list[tuple[dt.datetime, float]]:
    """CloudWatch datapoints → time-ordered (timestamp, value)."""
    return sorted((p["Timestamp"], float(p[statistic])) for p in datapoints if statistic in p)


def endpoint_metrics(cw: Any, endpoint: str, variants: Iterable[str], now: dt.datetime,
                     minutes: int = 60) -> dict[str, Any]:
    """Invocations and 4xx/5xx errors per minute over the last ``minutes``, per variant and in total."""
    start = now - dt.timedelta(minutes=minutes)
    per_variant: dict[str, dict[str, list[tuple[dt.datetime, float]]]] = {}
    totals = {"Invocations": 0.0, "Invocation4XXErrors": 0.0, "Invocation5XXErrors": 0.0}
    problem = None
    for variant in variants:
        series = {}
        for metric in totals:
            try:
                resp = cw.get_metric_statistics(
                    Namespace="AWS/SageMaker", MetricName=metric, StartTime=start, EndTime=now, Period=60,
                    Statistics=["Sum"], Dimensions=[{"Name": "EndpointName", "Value": endpoint},
                                                    {"Name": "VariantName", "Value": variant}])
            except Exception as exc:  # noqa: BLE001 - metrics are context; the page still renders
                problem = f"{_error_code(exc) or type(exc).__name__}: {exc}"
                resp = {"Datapoints": []}
            series[metric] = minute_series(resp.get("Datapoints", []))
            totals[metric] += sum(v for _, v in series[metric])
        per_variant[variant] = series
    return {"start": start, "end": now, "variants": per_variant, "totals": totals, "problem": problem}


def endpoint_rows(sm: Any, cw: Any, now: dt.datetime | None = None,
                  history_of: HistoryOf = _no_history) -> list[dict[str, Any]]:
    """Every endpoint: status, variants and weights, the deployment timeline, the last hour's metrics."""
    from deployment.deploy import endpoint_packages

    now = now or dt.datetime.now(dt.UTC)
    rows = []
    for summary in sm.list_endpoints(SortBy="Name", SortOrder="Ascending", MaxResults=100)["Endpoints"]:
        name = summary["EndpointName"]
        try:
            desc = sm.describe_endpoint(EndpointName=name)
        except Exception:  # noqa: BLE001 - deleted between the two calls
            continue
        variants = [{"name": v["VariantName"], "current_weight": v.get("CurrentWeight"),
                     "desired_weight": v.get("DesiredWeight"), "instances": v.get("CurrentInstanceCount"),
                     "fleet": "serving"} for v in desc.get("ProductionVariants", [])]
        pending = desc.get("PendingDeploymentSummary") or {}
        for v in pending.get("ProductionVariants", []):
            status = (v.get("VariantStatus") or [{}])[0]
            variants.append({"name": v["VariantName"], "current_weight": v.get("CurrentWeight"),
                             "desired_weight": v.get("DesiredWeight"), "instances": v.get("CurrentInstanceCount"),
                             "fleet": "deploying", "status": status.get("Status"),
                             "status_message": status.get("StatusMessage")})
        packages = endpoint_packages(sm, desc)
        config = desc.get("LastDeploymentConfig") or {}
        policy = config.get("BlueGreenUpdatePolicy", {}).get("TrafficRoutingConfiguration", {})
        rows.append({
            "name": name, "status": desc["EndpointStatus"], "config": desc.get("EndpointConfigName"),
            "created": desc.get("CreationTime"), "modified": desc.get("LastModifiedTime"),
            "failure_reason": desc.get("FailureReason"), "variants": variants,
            "serving_package": packages["serving"], "pending_package": packages["pending"],
            "strategy": policy.get("Type"), "busy": desc["EndpointStatus"] in ("Creating", "Updating", "RollingBack"),
            "timeline": deployment_timeline(desc, history_of(name)),
            "metrics": endpoint_metrics(cw, name, sorted({v["name"] for v in variants}), now),
        })
    return rows


# ---------------------------------------------------------------------------- data and drift


def lake_summary(run_query: Any, tables: Iterable[str], days: int = 60) -> dict[str, Any]:
    """Readings per thing per day (the last ``days`` days in the lake) and the quarantine's reasons by count.

    ``run_query(sql) -> (columns, rows)`` runs SQL over the curated ``tables`` that exist (DuckDB
    locally, as ``aircast lake query``)."""
    tables = set(tables)
    if "readings" not in tables:
        raise LookupError("no curated readings in the lake yet (`aircast lake etl` writes them)")
    _, rows = run_query(
        "WITH d AS (SELECT thing_name, CAST(dt AS VARCHAR) AS day, count(*) AS readings FROM readings "
        "GROUP BY ALL) SELECT * FROM d WHERE day >= (SELECT CAST(CAST(max(day) AS DATE) - "
        f"INTERVAL {int(days) - 1} DAY AS VARCHAR) FROM d) ORDER BY thing_name, day")
    per_thing: dict[str, list[tuple[str, int]]] = {}
    for thing, day, count in rows:
        per_thing.setdefault(str(thing), []).append((str(day), int(count)))
    reasons = run_query("SELECT reason, count(*) AS n FROM quarantine GROUP BY ALL ORDER BY n DESC, reason")[1] \
        if "quarantine" in tables else []
    days_seen = sorted({d for series in per_thing.values() for d, _ in series})
    return {"per_thing": per_thing, "days": days_seen,
            "quarantine": [{"reason": str(r), "count": int(n)} for r, n in reasons],
            "total_readings": sum(c for series in per_thing.values() for _, c in series)}


def drift_series(scores_csv: str) -> dict[tuple[str, str], list[tuple[dt.datetime, float, str]]]:
    """The monitor's ``scores.csv`` → per (thing, pollutant): (forecast start, wQL, model package) in time order."""
    import pandas as pd

    frame = pd.read_csv(io.StringIO(scores_csv)) if scores_csv.strip() else pd.DataFrame()
    out: dict[tuple[str, str], list[tuple[dt.datetime, float, str]]] = {}
    if frame.empty or not {"thing_name", "pollutant", "forecast_start", "wql"} <= set(frame.columns):
        return out
    frame["forecast_start"] = pd.to_datetime(frame["forecast_start"], utc=True)
    for (thing, pollutant), group in frame.sort_values("forecast_start").groupby(["thing_name", "pollutant"]):
        out[(str(thing), str(pollutant))] = [
            (ts.to_pydatetime(), float(w), str(m)) for ts, w, m in
            zip(group["forecast_start"], group["wql"], group.get("model_package_arn", [""] * len(group)), strict=False)
            if w == w]  # NaN wQL (no actual volume) is not a point
    return out


def drift_view(report: Mapping[str, Any] | None, scores_csv: str) -> dict[str, Any]:
    """The drift page's data: verdict, per-series error over time, the drift points, retraining marks."""
    if not report:
        return {"report": None, "series": {}, "drift_points": [], "retrains": [], "thresholds": {}}

    def when(value: Any) -> dt.datetime | None:
        try:
            ts = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
        return ts if ts.tzinfo else ts.replace(tzinfo=dt.UTC)

    ratio = float(report.get("thresholds", {}).get("error_ratio", 1.5))
    thresholds = {arn: b["mean_wql"] * ratio for arn, b in (report.get("baselines") or {}).items()
                  if b.get("mean_wql") is not None}
    drift_points = [{"time": when(e.get("declared_at")), "model": e.get("model_package_arn")}
                    for e in report.get("drift_events", []) if when(e.get("declared_at"))]
    retrains = [{"time": when(s.get("first_forecast_hour")), "model": s.get("model_package_arn")}
                for s in (report.get("model_switches") or [])[1:] if when(s.get("first_forecast_hour"))]
    decision = report.get("decision", {})
    return {"report": report, "decision": decision, "series": drift_series(scores_csv), "drift_points": drift_points,
            "retrains": retrains, "thresholds": thresholds, "ratio": ratio}


def safe_name(text: str) -> str:
    """A thing or pollutant name as an HTML id fragment."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)

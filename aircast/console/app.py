"""The console's web app: server-rendered pages over the same clients the CLI uses.

Pages: ``/pipelines`` (executions), ``/pipelines/executions/{id}`` (step graph, timings,
definition entries, logs), ``/models`` (packages with key metrics), ``/models/{version}``
(evaluation, forecast plot, lineage, what serves, Approve / Reject), ``/endpoints`` (variants,
deployment timeline, last hour's invocations and errors), ``/data`` (lake and drift).

Safety: it answers only requests addressed to its loopback origin (``Host``), a GET never
changes state, and the one state-changing request (approval) must come from the console's own
pages (``Origin`` / ``Sec-Fetch-Site``) and carry a value only the data dir's owner can know:
the form field derived from the per-data-dir token, or the token itself in ``X-Aircast-Token``.
A browser gets the form value after opening ``/login?token=...`` once (an HttpOnly,
SameSite=Strict cookie). Pages are Jinja2 templates with autoescaping on, and a
Content-Security-Policy without scripts or framing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from aircast.clients import deployment_history
from aircast.console import data as views
from aircast.console import svg
from aircast.lake_paths import local_curated_dir
from aircast.reads import APPROVAL_STATUSES, NotFound, package_arn, read_s3_bytes
from aircast.settings import Settings

log = logging.getLogger("aircast.console")

HERE = Path(__file__).resolve().parent
COOKIE = "aircast_console"
TOKEN_HEADER = "X-Aircast-Token"
FOLLOW_REFRESH_S = 2
MAX_NOTE = 1000  # UpdateModelPackage's ApprovalDescription is at most 1024 characters
CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")


@dataclass
class Clients:
    """The AWS-shaped clients the pages read through (made on first use)."""

    settings: Settings
    factory: Callable[[str, Settings], Any] | None = None
    _made: dict[str, Any] = field(default_factory=dict)

    def get(self, service: str) -> Any:
        if service not in self._made:
            if self.factory is None:
                from aircast.clients import get_client

                self.factory = get_client
            self._made[service] = self.factory(service, self.settings)
        return self._made[service]


def form_token(token: str) -> str:
    """The value approval forms carry: derived from the data dir's token, so a page never shows the token itself."""
    return hmac.new(token.encode(), b"aircast-console-approval-form", hashlib.sha256).hexdigest()


def same_origin(request: Request, origins: set[str]) -> str | None:
    """Why a state-changing request looks cross-site (None when it does not)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {site!r}"
    origin = request.headers.get("origin")
    if origin is not None and origin not in origins:
        return f"Origin {origin!r} is not this console"
    if origin is None and site is None:
        referer = request.headers.get("referer")
        if referer is not None and "{0.scheme}://{0.netloc}".format(urlsplit(referer)) not in origins:
            return "Referer is not this console"
    return None


def _local_path(target: str | None, default: str = "/") -> str:
    """Only a path on this console (never another host) as a redirect target."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


def create_app(settings: Settings, token: str, *, allowed_hosts: set[str] | None = None,
               client_factory: Callable[[str, Settings], Any] | None = None,
               clock: Callable[[], dt.datetime] | None = None) -> FastAPI:
    """The console app for ``settings``; ``token`` is the data dir's (``infra.local.auth.local_token``).

    ``allowed_hosts``: the ``Host`` values it answers (default: 127.0.0.1 and localhost on the console port).
    """
    port = settings.console_port
    hosts = allowed_hosts or {f"127.0.0.1:{port}", f"localhost:{port}"}
    origins = {f"http://{h}" for h in hosts}
    clients = Clients(settings, client_factory)
    history_of = partial(deployment_history, settings)
    now = clock or (lambda: dt.datetime.now(dt.UTC))
    evaluations: dict[str, Any] = {}
    expected_form = form_token(token)
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters.update(when=_when, num=_num, secs=_secs, short=views.short_id, anchor=views.safe_name)
    env.globals.update(settings=settings, backend=settings.backend)
    app = FastAPI(title="aircast console", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Any]) -> Response:
        if request.headers.get("host") not in hosts:
            return PlainTextResponse("this console answers only on " + ", ".join(sorted(hosts)), status_code=421)
        started = time.perf_counter()
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        # same-origin: the browser then sends Origin on the approval form (no-referrer makes it "null"),
        # and the sign-in link (with its token) never leaves this console in a Referer
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
        return response

    def signed_in(request: Request) -> bool:
        presented = request.cookies.get(COOKIE)
        return bool(presented) and hmac.compare_digest(presented.encode(), token.encode())

    def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("refresh", None)
        html = env.get_template(template).render(
            request_path=request.url.path, signed_in=signed_in(request),
            form_token=expected_form if signed_in(request) else None, now=now(), **context)
        return HTMLResponse(html, status_code=status_code)

    def problem(request: Request, status_code: int, title: str, message: str) -> HTMLResponse:
        return page(request, "problem.html", status_code=status_code, title=title, message=message)

    def client_problem(exc: Exception) -> str:
        error = getattr(exc, "response", {}).get("Error", {})
        return f"{error.get('Code', type(exc).__name__)}: {error.get('Message', str(exc))}"

    # ---- pages -------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def home() -> Response:
        return RedirectResponse("/models", status_code=303)

    @app.get("/login")
    def login(request: Request, next: str = "/") -> Response:  # noqa: A002 - the query parameter's name
        presented = request.query_params.get("token", "")
        if not presented or not hmac.compare_digest(presented.encode(), token.encode()):
            return problem(request, 403, "Not signed in",
                           "That link does not carry this data dir's token. Run `aircast console --url` "
                           "and open the link it prints.")
        response = RedirectResponse(_local_path(next), status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
        return response

    @app.get("/pipelines", response_class=HTMLResponse)
    def pipelines(request: Request) -> Response:
        try:
            rows = views.execution_rows(clients.get("sagemaker"), settings.pipeline_name, now=now())
            missing = None
        except NotFound as exc:
            rows, missing = [], str(exc)
        return page(request, "pipelines.html", title="Pipelines", rows=rows, missing=missing,
                    refresh=5 if any(r["running"] for r in rows) else None)

    @app.get("/pipelines/executions/{execution_id}", response_class=HTMLResponse)
    def execution(request: Request, execution_id: str) -> Response:
        sm = clients.get("sagemaker")
        try:
            arn = views.find_execution_arn(sm, settings.pipeline_name, execution_id)
        except NotFound as exc:
            return problem(request, 404, "No such pipeline", str(exc))
        if arn is None:
            return problem(request, 404, "No such execution",
                           f"pipeline {settings.pipeline_name} has no execution {execution_id}")
        detail = views.execution_detail(sm, clients.get("logs"), arn, now=now())
        graph = detail["graph"]
        picture = Markup(svg.step_graph_svg(graph.nodes, graph.edges, graph.ranks(), detail["step_status"],
                                            link=lambda name: "#step-" + views.safe_name(name)))
        return page(request, "execution.html", title=f"Execution {execution_id}", ex=detail, graph_svg=picture,
                    refresh=5 if detail["running"] else None)

    @app.get("/models", response_class=HTMLResponse)
    def models(request: Request, status: str | None = None) -> Response:
        if status is not None and status not in APPROVAL_STATUSES:
            return problem(request, 400, "Unknown status", f"status must be one of {', '.join(APPROVAL_STATUSES)}")
        try:
            rows = views.package_rows(clients.get("sagemaker"), clients.get("s3"), settings.model_package_group,
                                      status, cache=evaluations)
            missing = None
        except Exception as exc:  # noqa: BLE001 - e.g. the group does not exist before the first registration
            rows, missing = [], client_problem(exc)
        serving = views.serving_state(clients.get("sagemaker"), settings.endpoint_name, history_of)
        return page(request, "models.html", title="Model registry", rows=rows, missing=missing, status_filter=status,
                    serving=serving)

    def _package(request: Request, version: str) -> tuple[str | None, Response | None]:
        try:
            return package_arn(settings, version), None
        except ValueError as exc:
            return None, problem(request, 404, "No such package", str(exc))

    @app.get("/models/{version}", response_class=HTMLResponse)
    def package(request: Request, version: str, follow: int = 0) -> Response:
        arn, error = _package(request, version)
        if error:
            return error
        try:
            detail = views.package_detail(clients.get("sagemaker"), clients.get("s3"), arn, settings.endpoint_name,
                                          cache=evaluations, history_of=history_of)
        except Exception as exc:  # noqa: BLE001 - a missing package is the usual case
            return problem(request, 404, "No such package", client_problem(exc))
        follow_on = bool(follow) and views.following(detail["status"], detail["serving"], arn)
        return page(request, "package.html", title=f"Model package v{detail['version']}", pkg=detail,
                    follow=bool(follow), refresh=FOLLOW_REFRESH_S if follow_on else None)

    @app.get("/models/{version}/forecast.png")
    def forecast_png(request: Request, version: str) -> Response:
        arn, error = _package(request, version)
        if error:
            return error
        try:
            pkg = clients.get("sagemaker").describe_model_package(ModelPackageName=arn)
            uri = views.forecast_plot_uri(pkg)
            if not uri:
                raise LookupError("the package has no evaluation")
            body = read_s3_bytes(clients.get("s3"), uri)
        except Exception as exc:  # noqa: BLE001 - no plot: the page shows the alt text
            return PlainTextResponse(f"no forecast plot: {client_problem(exc)}", status_code=404)
        # a registered package's plot never changes
        return Response(body, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})

    @app.post("/models/{version}/approval")
    async def approval(request: Request, version: str) -> Response:
        why = same_origin(request, origins)
        if why:
            return problem(request, 403, "Refused", f"cross-site request refused ({why})")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
            return problem(request, 415, "Bad request", "send the form (application/x-www-form-urlencoded)")
        body = await request.body()
        if len(body) > 16 * 1024:
            return problem(request, 413, "Bad request", "the form is too large")
        fields = {k: v[-1] for k, v in parse_qs(body.decode("utf-8", errors="replace")).items()}
        header = request.headers.get(TOKEN_HEADER)
        form_value = fields.get("csrf", "")
        if not ((header and hmac.compare_digest(header.encode(), token.encode()))
                or (form_value and hmac.compare_digest(form_value.encode(), expected_form.encode()))):
            return problem(request, 403, "Refused",
                           "this request carries no valid token of this data dir; open the console through "
                           "`aircast console --url` to approve")
        decision, note = fields.get("decision", ""), fields.get("note", "")
        if decision not in ("Approved", "Rejected"):
            return problem(request, 400, "Bad request", "decision must be Approved or Rejected")
        if len(note) > MAX_NOTE:
            return problem(request, 400, "Bad request", f"the note is {len(note)} characters; at most {MAX_NOTE}")
        arn, error = _package(request, version)
        if error:
            return error
        note = note.strip() or f"{decision} in the aircast console"
        try:
            await run_in_threadpool(decide, arn, decision, note)
        except Exception as exc:  # noqa: BLE001 - the registry's refusal, shown as it said it
            return problem(request, 400, "The registry refused", client_problem(exc))
        log.info("model package %s set to %s from the console", arn, decision)
        return RedirectResponse(f"/models/{quote(version)}?follow=1", status_code=303)

    def decide(arn: str, decision: str, note: str) -> None:
        sm = clients.get("sagemaker")
        sm.describe_model_package(ModelPackageName=arn)
        # exactly what `aircast models approve|reject` sends: the status change is the deployment's trigger
        sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus=decision, ApprovalDescription=note)

    @app.get("/endpoints", response_class=HTMLResponse)
    def endpoints(request: Request) -> Response:
        try:
            rows = views.endpoint_rows(clients.get("sagemaker"), clients.get("cloudwatch"), now=now(),
                                       history_of=history_of)
            missing = None
        except Exception as exc:  # noqa: BLE001 - e.g. no access on AWS: say so
            rows, missing = [], client_problem(exc)
        charts = {}
        for row in rows:
            metrics = row["metrics"]
            lines = []
            for variant, series in metrics["variants"].items():
                lines.append(svg.Line(f"{variant} invocations", series["Invocations"]))
                errors = [(t, v) for t, v in series["Invocation5XXErrors"]]
                errors += [(t, v) for t, v in series["Invocation4XXErrors"]]
                lines.append(svg.Line(f"{variant} errors", sorted(errors), colour="#c62828"))
            charts[row["name"]] = Markup(svg.chart_svg(svg.Chart(
                lines=lines, bars=True, y_label="per minute", width=720, height=200,
                x_range=(metrics["start"], metrics["end"]), title=f"{row['name']}: invocations and errors, last hour")))
        return page(request, "endpoints.html", title="Endpoints", rows=rows, charts=charts, missing=missing,
                    refresh=FOLLOW_REFRESH_S if any(r["busy"] for r in rows) else None)

    # the lake and the monitor's report change only when the ETL job or the monitor runs: keyed by
    # their files' (S3 objects') signatures, a page view re-reads nothing that did not change
    lake_cache: dict[Any, Any] = {}
    drift_cache: dict[Any, Any] = {}

    @app.get("/data", response_class=HTMLResponse)
    def data_page(request: Request) -> Response:
        lake, lake_problem, readings_chart = None, None, None
        if settings.backend == "local":
            try:
                lake, readings_chart = lake_view()
            except Exception as exc:  # noqa: BLE001 - an empty lake is the usual reason
                lake_problem = str(exc)
        else:
            lake_problem = "on AWS the lake is queried with Athena; this page reads the local lake only"
        drift, drift_charts = drift_view()
        return page(request, "data.html", title="Data and drift", lake=lake, lake_problem=lake_problem,
                    readings_chart=readings_chart, drift=drift, drift_charts=drift_charts)

    def lake_view() -> tuple[dict[str, Any], Markup | None]:
        from aircast.commands.lake import curated_views, run_query

        signature = tuple(sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for table in ("readings", "quarantine")
                                 for p in local_curated_dir(settings, table).glob("dt=*/*.parquet")))
        if signature not in lake_cache:
            lake = views.lake_summary(lambda sql: run_query(settings, sql), curated_views(settings))
            chart = None
            if lake["per_thing"]:
                lines = [svg.Line(thing, [(dt.datetime.fromisoformat(d).replace(tzinfo=dt.UTC), float(c))
                                          for d, c in series], markers=True)
                         for thing, series in sorted(lake["per_thing"].items())]
                chart = Markup(svg.chart_svg(svg.Chart(lines=lines, y_label="readings per day", width=760,
                                                       height=240, title="Readings per thing per day")))
            lake_cache.clear()
            lake_cache[signature] = (lake, chart)
        return lake_cache[signature]

    def drift_view() -> tuple[dict[str, Any], dict[tuple[str, str], Markup]]:
        from aircast.monitoring import REPORT_PREFIX

        s3 = clients.get("s3")
        prefix = REPORT_PREFIX.format(endpoint=settings.endpoint_name)
        keys = (f"{prefix}/drift_report.json", f"{prefix}/scores.csv")
        signature = []
        for key in keys:
            try:
                head = s3.head_object(Bucket=settings.artifacts_bucket, Key=key)
                signature.append((key, str(head.get("LastModified")), head.get("ContentLength"), head.get("ETag")))
            except Exception:  # noqa: BLE001 - the monitor has not run yet (or wrote no scores)
                signature.append((key, None, None, None))
        sig = tuple(signature)
        if sig not in drift_cache:
            drift_cache.clear()
            drift_cache[sig] = render_drift(s3, keys, has_report=signature[0][1] is not None,
                                            has_scores=signature[1][1] is not None)
        return drift_cache[sig]

    def render_drift(s3: Any, keys: tuple[str, str], has_report: bool,
                     has_scores: bool) -> tuple[dict[str, Any], dict[tuple[str, str], Markup]]:
        if not has_report:
            return views.drift_view(None, ""), {}
        report = json.loads(s3.get_object(Bucket=settings.artifacts_bucket, Key=keys[0])["Body"].read())
        scores = s3.get_object(Bucket=settings.artifacts_bucket, Key=keys[1])["Body"].read() if has_scores else b""
        drift = views.drift_view(report, scores.decode("utf-8", errors="replace"))
        charts = {}
        for (thing, pollutant), points in sorted(drift["series"].items()):
            by_model: dict[str, list[tuple[dt.datetime, float]]] = {}
            for when, wql, model in points:
                by_model.setdefault(model, []).append((when, wql))
            lines = [svg.Line(f"wQL v{views.short_id(m)}", p, markers=True) for m, p in by_model.items()]
            hmarks = [(limit, f"drift threshold v{views.short_id(m)}", "#9e9e9e")
                      for m, limit in drift["thresholds"].items() if m in by_model]
            vmarks = [(d["time"], f"drift v{views.short_id(d['model'])}", "#c62828") for d in drift["drift_points"]]
            vmarks += [(r["time"], f"retrained v{views.short_id(r['model'])} serves", "#2e7d32")
                       for r in drift["retrains"]]
            charts[(thing, pollutant)] = Markup(svg.chart_svg(svg.Chart(
                lines=lines, hmarks=hmarks, vmarks=vmarks, y_label="wQL", width=760, height=220,
                title=f"{thing} / {pollutant}: served forecast error")))
        return drift, charts

    @app.get("/static/console.css")
    def stylesheet() -> Response:
        return Response((HERE / "static" / "console.css").read_bytes(), media_type="text/css",
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/health")
    def health() -> Response:
        return JSONResponse({"status": "ok", "backend": settings.backend, "data_dir": str(settings.data_dir)})

    return app


# ---- template filters -----------------------------------------------------------------
def _when(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def _num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number != number:
        return "–"
    return f"{number:.{digits}g}" if abs(number) < 1000 else f"{number:,.0f}"


def _secs(value: Any) -> str:
    if value is None:
        return "–"
    seconds = float(value)
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"

"""The main job: the whole aircast chain on the local default, stage by stage.

``aircast demo`` (``make demo``) starts the local stack, sends real Beijing PM2.5
readings and a few simulated sensors through MQTT with mutual TLS, lands them in
the lake, runs the Glue crawler and ETL job on local Spark, executes the SageMaker
Pipeline's own definition locally (preprocess → DeepAR → batch forecast →
evaluate → gate → register), approves the package so the approval event deploys
it blue/green, invokes the endpoint through boto3's sagemaker-runtime client and
plots the forecast. A rerun sends the next days of data and deploys the new
model over the old one (canary), the endpoint serving throughout.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import heapq
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from aircast.clients import deployment_history
from aircast.lake_paths import local_curated_dir, local_raw_telemetry_dir
from aircast.output import CommandError, print_table
from aircast.settings import Settings

#: the real sensor replayed through the device client
REPLAY_THING = "beijing-us-embassy"
#: where the first run's replay starts (the data's clock is UTC+8; this is UTC)
FIRST_START = dt.datetime(2014, 6, 1, tzinfo=dt.UTC)
#: the last hour of the replayed CSV (2014-12-31 23:00 in Beijing, UTC+8)
DATA_END = dt.datetime(2014, 12, 31, 15, tzinfo=dt.UTC)
PREDICTION_HOURS = 24  # the pipeline's prediction_length
MAX_SIM_SENSORS = 100
DEMO_STATE_FILE = "demo-state.json"


@dataclass(frozen=True)
class DemoOptions:
    """What one demo run does; the defaults are the full demo, tests use smaller values."""

    days: int = 120  #: days of history on the first run
    fresh_days: int = 7  #: days of new data on each rerun
    sim_sensors: int = 3
    epochs: int | None = None  #: None: the pipeline's default (the benchmarked demo setting)
    context_length: int = 0  #: 0: read from the data by Preprocess
    eval_windows: int = 7
    validation_windows: int = 7
    #: the demo's tuning budget: one round of two parallel training jobs (the pipeline's default is 4, 2 at a time)
    tuning_jobs: int = 2
    parallel_tuning_jobs: int = 2
    pollutants: str = "pm2_5"
    #: local clock scale for the deployment's wait intervals (0.05: a 2-minute bake takes 6 s)
    clock_scale: float = 0.05
    deploy_strategy: str = "canary"
    #: a canary needs 2+ instances (SageMaker shifts whole instances, at most 50% in the canary);
    #: locally instance counts are nominal, on AWS two instances cost twice one
    deploy_instance_count: int = 2
    deploy_wait_seconds: int = 120
    csv_path: Path = Path(__file__).resolve().parents[1] / "data" / "beijing_pm25_hourly.csv"
    plot_path: Path | None = None  #: default <data_dir>/forecast.png
    stop_stack: bool = True
    #: further pipeline parameter overrides (e.g. the gate's thresholds)
    pipeline_parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # refused here, before the stack starts, not in the pipeline minutes later
        for problem in self.problems():
            raise ValueError(problem)

    def settings_overrides(self) -> dict[str, Any]:
        """What the demo changes in the settings: the deployment's waits on a scaled clock, so a canary bakes
        in seconds, on enough instances for a canary.

        The deploy Lambda that the approval invokes reads its settings from the environment, as on AWS; it
        runs in the demo's process (the local SageMaker emits the approval event there), so whoever runs the
        demo exports these settings: ``aircast demo`` loads them into the settings it exports for the whole
        command (``aircast.cli``)."""
        return {"clock_scale": self.clock_scale, "deploy_strategy": self.deploy_strategy,
                "deploy_instance_count": self.deploy_instance_count, "deploy_wait_seconds": self.deploy_wait_seconds}

    def min_days(self) -> int:
        """Days of history the first run needs, as Preprocess counts them: the context (two horizons when it
        comes from the data) and one horizon of training before the validation and evaluation windows."""
        context = self.context_length or 2 * PREDICTION_HOURS
        hours = context + PREDICTION_HOURS * (1 + self.validation_windows + self.eval_windows)
        return -(-hours // 24)

    def problems(self) -> list[str]:
        """What is wrong with these options, in the CLI's words."""
        out = []
        available = (DATA_END - FIRST_START).days
        if self.context_length < 0 or self.eval_windows < 1 or self.validation_windows < 1:
            out.append("context_length must be at least 0 (0: from the data), eval_windows and validation_windows "
                       "at least 1")
        elif not self.min_days() <= self.days <= available:
            out.append(f"--days {self.days}: the first run needs {self.min_days()} to {available} days of history "
                       f"({self.context_length or 2 * PREDICTION_HOURS} h context + "
                       f"{1 + self.validation_windows + self.eval_windows} x {PREDICTION_HOURS} h; "
                       f"the Beijing data covers {available} days)")
        if not 1 <= self.fresh_days <= available:
            out.append(f"--fresh-days {self.fresh_days}: give 1 to {available} days of new data per rerun")
        if not 0 <= self.sim_sensors <= MAX_SIM_SENSORS:
            out.append(f"--sim-sensors {self.sim_sensors}: give 0 to {MAX_SIM_SENSORS} simulated sensors")
        if self.epochs is not None and self.epochs < 1:
            out.append(f"--epochs {self.epochs}: give at least 1 epoch (or leave it out for the pipeline's default)")
        return out


@dataclass
class StageResult:
    name: str
    seconds: float
    summary: str


@dataclass
class DemoReport:
    """What the demo did: per-stage timings and the figures a user looks at."""

    stages: list[StageResult] = field(default_factory=list)
    published: int = 0
    acknowledged: int = 0
    failed: int = 0
    lake_records: int = 0
    etl: dict[str, Any] = field(default_factory=dict)
    execution: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    model_package_arn: str | None = None
    deployment: dict[str, Any] = field(default_factory=dict)
    forecast: dict[str, Any] = field(default_factory=dict)
    plot_path: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "stages"}
        out["stages"] = [s.__dict__ for s in self.stages]
        return out


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Demo:
    """Runs the stages in order, timing each; see the module docstring."""

    STAGES = 7

    def __init__(self, settings: Settings, options: DemoOptions | None = None) -> None:
        self.options = options or DemoOptions()
        # the deployment's waits run on a scaled clock in the demo so a canary bakes in seconds
        self.settings = settings.replace(**self.options.settings_overrides())
        self.report = DemoReport()
        self._stage_no = 0

    # ---- plumbing -------------------------------------------------------------------
    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[list[str]]:
        self._stage_no += 1
        say(f"\n==> [{self._stage_no}/{self.STAGES}] {name}")
        notes: list[str] = []
        t0 = time.monotonic()
        yield notes
        seconds = time.monotonic() - t0
        summary = "; ".join(notes)
        self.report.stages.append(StageResult(name, round(seconds, 1), summary))
        say(f"    done in {seconds:.1f} s{': ' + summary if summary else ''}")

    def _state_path(self) -> Path:
        return self.settings.data_dir / DEMO_STATE_FILE

    def _load_state(self) -> dict[str, Any]:
        try:
            return json.loads(self._state_path().read_text())
        except (OSError, ValueError):
            return {}

    def _save_state(self, state: dict[str, Any]) -> None:
        self._state_path().write_text(json.dumps(state, indent=2))

    # ---- the run --------------------------------------------------------------------
    def run(self) -> DemoReport:
        from aircast import local_wiring

        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        with demo_lock(self.settings):
            t0 = time.monotonic()
            try:
                with self.stage("Local stack: IoT Core (mosquitto, mutual TLS), Firehose, endpoint host, event bus, "
                                "Glue (warm Spark)") as notes:
                    self.start_stack(notes)
                with self.stage("Devices: replay Beijing PM2.5 + simulated sensors over MQTT") as notes:
                    self.ingest(notes)
                with self.stage("Lake: Glue crawler + ETL job on the Glue service's warm Spark session") as notes:
                    self.lake(notes)
                with self.stage("SageMaker Pipeline (local): preprocess → DeepAR → batch forecast → evaluate "
                                "→ gate → register") as notes:
                    self.pipeline(notes)
                with self.stage("Model Registry approval → EventBridge → blue/green deployment") as notes:
                    self.deploy(notes)
                with self.stage("Forecast: invoke the endpoint through boto3 sagemaker-runtime") as notes:
                    self.forecast(notes)
            finally:
                if self.options.stop_stack:
                    with self.stage("Stop the local stack") as notes:
                        local_wiring.down(self.settings)
                        notes.append("stopped; data kept in " + str(self.settings.data_dir))
            self.print_summary(time.monotonic() - t0)
        return self.report

    def start_stack(self, notes: list[str]) -> None:
        from aircast import local_wiring

        rows = local_wiring.up(self.settings)
        print_table(rows, ["service", "state", "pid", "port"], out=sys.stderr)
        local_wiring.install_rules(self.settings)
        notes.append(", ".join(f"{r['service']}:{r['port'] or '-'}" for r in rows))

    def ingest(self, notes: list[str]) -> None:
        from aircast.local_wiring import flush
        from device.publisher import DeviceCredentials, SeqStore, publish_fleet, seq_state_dir
        from device.readings import replay_beijing, simulate, simulated_thing_names
        from infra.local.iot_core.pki import register_thing

        opts = self.options
        state = self._load_state()
        start = dt.datetime.fromisoformat(state["next_start"]) if "next_start" in state else FIRST_START
        hours = 24 * (opts.fresh_days if "next_start" in state else opts.days)
        end = start + dt.timedelta(hours=hours)
        if end > DATA_END:
            raise CommandError(f"the Beijing data ends {DATA_END:%Y-%m-%d}; this data dir has replayed up to "
                               f"{start:%Y-%m-%d}. Start over with a new data dir (make clean-data, or --data-dir)")
        things = [REPLAY_THING, *simulated_thing_names(opts.sim_sensors)]
        creds: dict[str, DeviceCredentials] = {}
        for thing in things:
            c = register_thing(self.settings.pki_dir, thing)
            creds[thing] = DeviceCredentials(c.cert_path, c.key_path, c.ca_path)
        say(f"    {len(things)} things registered (certificates under {self.settings.pki_dir}); "
            f"readings {start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M} UTC")
        replay = replay_beijing(opts.csv_path, REPLAY_THING, start=start, hours=hours)
        # simulate from the first run's start with a fixed seed, so each sensor keeps its level and its
        # noise continues across reruns (a new seed would be a regime change)
        first = dt.datetime.fromisoformat(state.get("first_start", start.isoformat()))
        span = int((end - first).total_seconds() // 3600)
        sims = (r for r in simulate(opts.sim_sensors, first, span, seed=0) if r.timestamp >= start) \
            if opts.sim_sensors else iter(())
        readings = heapq.merge(replay, sims, key=lambda r: r.timestamp)

        def progress(r: Any) -> None:
            say(f"    published {r.published:>6}  acknowledged {r.acknowledged:>6}  failed {r.failed}")

        with SeqStore(seq_state_dir(self.settings)) as seqs:  # saved as it goes, and on any exit
            report = publish_fleet(readings, creds.__getitem__, self.settings.mqtt_host, self.settings.mqtt_port,
                                   first_seq=seqs.next_seq, claim_seq=seqs.claim,
                                   progress=progress, progress_every_s=2.0, log=say)
        counters = flush(self.settings, timeout=60.0)
        self.report.published += report.published
        self.report.acknowledged += report.acknowledged
        self.report.failed += report.failed
        if report.failed:
            raise CommandError(f"{report.failed} readings were not acknowledged by the broker: {report.errors[:3]}")
        state.update(next_start=end.isoformat(), last_run=dt.datetime.now(dt.UTC).isoformat())
        state.setdefault("first_start", start.isoformat())
        self._save_state(state)
        notes.append(f"{report.published} readings from {len(things)} things, {report.acknowledged} acknowledged "
                     f"(QoS 1), delivery stream flushed ({counters['delivered']} records delivered to the lake)")

    def lake(self, notes: list[str]) -> None:
        from aircast.clients import get_client
        from aircast.glue import RAW_CRAWLER, run_crawler, run_etl_job

        def progress(line: str) -> None:
            say(f"    {line}")

        run_crawler(self.settings, RAW_CRAWLER)
        glue = get_client("glue", self.settings)
        table = glue.get_table(DatabaseName=self.settings.glue_database, Name="raw_telemetry")["Table"]
        partitions = glue.get_partitions(DatabaseName=self.settings.glue_database,
                                         TableName="raw_telemetry")["Partitions"]
        self.report.lake_records = count_raw_records(self.settings)
        # queued: an hourly trigger's run in progress is waited for, not a reason to fail
        counts = run_etl_job(self.settings, progress=progress, queue=True)
        self.report.etl = counts
        shown = {k: counts.get(k) for k in ("read", "written", "duplicate", "quarantined", "hourly_rows")}
        print_table([shown], out=sys.stderr)
        columns = table["StorageDescriptor"]["Columns"]
        notes.append(f"raw_telemetry: {len(columns)} columns, {len(partitions)} hour partitions; "
                     f"ETL read {counts['read']} written {counts['written']} duplicates {counts['duplicate']} "
                     f"quarantined {counts['quarantined']} in {counts['duration_s']:.1f} s")

    def pipeline(self, notes: list[str]) -> None:
        from aircast.local_wiring import run_local_pipeline

        opts = self.options
        params = {"ContextLength": opts.context_length, "NumEvalWindows": opts.eval_windows,
                  "NumValidationWindows": opts.validation_windows, "MaxTuningJobs": opts.tuning_jobs,
                  "MaxParallelTuningJobs": opts.parallel_tuning_jobs, "Pollutants": opts.pollutants,
                  **opts.pipeline_parameters}
        if opts.epochs is not None:
            params["Epochs"] = opts.epochs
        summary = run_local_pipeline(self.settings, params, progress=True)
        self.report.execution = summary
        say("")
        print_table(summary["steps"], ["step", "status", "seconds", "detail"], out=sys.stderr)
        gate_failed = any(s["step"] == "QualityGate" and s["detail"] == "outcome False" for s in summary["steps"])
        if summary["status"] != "Succeeded" and not gate_failed:
            raise CommandError(f"pipeline execution {summary['status']}: {summary.get('failure_reason')}")
        arn = summary.get("model_package_arn")
        self.report.model_package_arn = arn
        evaluation = read_evaluation(self.settings, arn) if arn else None
        if evaluation:
            self.report.evaluation = evaluation
            print_metrics(evaluation)
        if not arn:
            say(f"    {summary.get('failure_reason')}")
            notes.append("the model did not pass the quality gate: nothing registered, nothing deployed")
            return
        rel = (evaluation or {}).get("relative_mean_wQuantileLoss", {}).get("value")
        best = (evaluation or {}).get("best_baseline", {}).get("name", "seasonal_naive")
        notes.append(f"registered {arn.rsplit('/', 2)[-2]} v{arn.rsplit('/', 1)[-1]}"
                     + (f"; mean wQL {rel:.2f}× the best baseline's ({best})" if rel is not None else ""))

    def deploy(self, notes: list[str]) -> None:
        from aircast.clients import get_client
        from deployment.deploy import endpoint_exists

        arn = self.report.model_package_arn
        endpoint = self.settings.endpoint_name
        sm = get_client("sagemaker", self.settings)
        if not arn:
            notes.append("nothing new to deploy (the gate did not pass)")
            return
        current = endpoint_exists(sm, endpoint)
        existed = current is not None
        # the requests during the update carry the new package's cat (blue and green have the same series
        # unless the data changed: then requests that reach blue may be refused, and are counted as failed)
        load = BackgroundLoad(self.settings, endpoint, self.forecast_request(arn, num_samples=20)) \
            if existed else None
        if load:
            load.start()
        say(f"    approving {arn} (the approval event triggers the deploy Lambda)")
        sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved",
                                ApprovalDescription="approved by aircast demo")
        history = partial(deployment_history, self.settings, endpoint)
        final = watch_endpoint(sm, endpoint, current, history, timeout_s=600)
        stats = load.stop() if load else None
        self.report.deployment = {"endpoint": endpoint, "status": final["EndpointStatus"],
                                  "strategy": self.settings.deploy_strategy if existed else "create",
                                  "requests_during_update": stats}
        if final["EndpointStatus"] != "InService":
            raise CommandError(f"endpoint {endpoint} is {final['EndpointStatus']}: {final.get('FailureReason')}")
        if existed:
            notes.append(f"{endpoint}: blue/green {self.settings.deploy_strategy} update to the new version, "
                         f"{stats['ok']} requests served during the update, {stats['failed']} failed")
        else:
            notes.append(f"{endpoint} created and InService (a rerun deploys the next version blue/green)")

    def forecast_request(self, model_package_arn: str | None, num_samples: int = 100) -> dict[str, Any]:
        """The seed article's DeepAR request for the replayed sensor's latest hours in the lake, its ``cat``
        as ``model_package_arn``'s model was trained."""
        history_start, history = latest_series(self.settings, REPLAY_THING, "pm2_5",
                                               max(self.options.context_length, 168) * 3)
        instance: dict[str, Any] = {"start": history_start, "target": history}
        cat = deepar_cat(self.settings, REPLAY_THING, "pm2_5", model_package_arn)
        if cat is not None:
            instance["cat"] = cat
        return {"instances": [instance],
                "configuration": {"num_samples": num_samples, "output_types": ["mean", "quantiles", "samples"],
                                  "quantiles": ["0.1", "0.5", "0.9"]}}

    def forecast(self, notes: list[str]) -> None:
        from aircast.clients import get_client
        from deployment.deploy import config_package, endpoint_exists

        sm = get_client("sagemaker", self.settings)
        endpoint = endpoint_exists(sm, self.settings.endpoint_name)
        if endpoint is None:
            notes.append(f"no endpoint {self.settings.endpoint_name} serves yet (no model has passed the gate); "
                         "rerun the demo to train on more data")
            return
        request = self.forecast_request(config_package(sm, endpoint.get("EndpointConfigName")))
        history_start, history = request["instances"][0]["start"], request["instances"][0]["target"]
        runtime = get_client("sagemaker-runtime", self.settings)
        resp = runtime.invoke_endpoint(EndpointName=self.settings.endpoint_name, ContentType="application/json",
                                       Accept="application/json", Body=json.dumps(request).encode())
        variant = resp.get("InvokedProductionVariant") or resp["ResponseMetadata"]["HTTPHeaders"].get(
            "x-amzn-invoked-production-variant")
        prediction = json.loads(resp["Body"].read())["predictions"][0]
        forecast_start = dt.datetime.fromisoformat(history_start) + dt.timedelta(hours=len(history))
        actuals = beijing_actuals(self.options.csv_path, forecast_start, len(prediction["mean"]))
        rows = [{"hour (UTC)": (forecast_start + dt.timedelta(hours=i)).strftime("%Y-%m-%d %H:%M"),
                 "mean": prediction["mean"][i], "p10": prediction["quantiles"]["0.1"][i],
                 "p50": prediction["quantiles"]["0.5"][i], "p90": prediction["quantiles"]["0.9"][i],
                 "actual": actuals[i]} for i in range(len(prediction["mean"]))]
        say(f"    next {len(rows)} hours of PM2.5 (µg/m³) at {REPLAY_THING}, served by variant {variant}:")
        print_table(rows)
        plot = self.options.plot_path or self.settings.data_dir / "forecast.png"
        write_forecast_plot(plot, history_start, history, forecast_start, prediction, actuals,
                            title=f"PM2.5 at {REPLAY_THING}: next 24 h from endpoint {self.settings.endpoint_name}")
        self.report.forecast = {"variant": variant, "start": forecast_start.isoformat(), "rows": rows}
        self.report.plot_path = str(plot)
        notes.append(f"24 h forecast from variant {variant}; plot written to {plot}")

    def print_summary(self, total_s: float) -> None:
        say("\n==> Summary")
        print_table([{"stage": s.name.split(":")[0], "seconds": s.seconds, "result": s.summary}
                     for s in self.report.stages], out=sys.stderr)
        say(f"total {total_s:.0f} s. Data dir: {self.settings.data_dir}")
        if self.report.plot_path:
            say(f"forecast plot: {self.report.plot_path}")
        say("explore: aircast lake query \"SELECT thing_name, pollutant, count(*) FROM hourly GROUP BY ALL\" | "
            "aircast models list | aircast pipeline executions | aircast endpoint describe "
            f"{self.settings.endpoint_name} (after aircast local up)")
        say(console_line(self.settings, self.report.model_package_arn, running=not self.options.stop_stack))


def console_line(settings: Settings, package_arn: str | None, running: bool) -> str:
    """Where to look at (and approve) the package this run registered, in the console."""
    from aircast.console.service import login_url

    page = f"/models/{package_arn.rsplit('/', 1)[-1]}" if package_arn else "/pipelines"
    url = login_url(settings, page)
    return f"console: {url}" if running else f"console (starts with `aircast local up`): {url}"


# ---- helpers (pure where they can be) -------------------------------------------------
@contextlib.contextmanager
def demo_lock(settings: Settings) -> Iterator[None]:
    """Refuse a second demo on the same data dir while one runs."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    path = settings.run_dir / "demo.lock"
    fh = open(path, "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        fh.close()
        raise CommandError(f"another aircast demo is already running on {settings.data_dir} (pid {holder}); "
                           "wait for it to finish, or stop it first") from None
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield
    finally:
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()


def count_raw_records(settings: Settings) -> int:
    """Lines in the raw Firehose objects of the lake (records delivered)."""
    root = local_raw_telemetry_dir(settings)
    total = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            with open(path, "rb") as fh:
                total += sum(1 for line in fh if line.strip())
    return total


def package_evaluation_uri(settings: Settings, model_package_arn: str) -> str | None:
    """Where a registered package's evaluation.json is (its ModelMetrics' model quality statistics)."""
    from aircast.clients import get_client
    from aircast.reads import evaluation_uri

    return evaluation_uri(get_client("sagemaker", settings).describe_model_package(ModelPackageName=model_package_arn))


def read_evaluation(settings: Settings, model_package_arn: str) -> dict[str, Any] | None:
    """The evaluation.json a registered package's ModelMetrics point at."""
    from infra.local.s3 import uri_to_path

    uri = package_evaluation_uri(settings, model_package_arn)
    if not uri:
        return None
    return json.loads(uri_to_path(uri, settings.s3_root).read_text())


def print_metrics(evaluation: dict[str, Any]) -> None:
    model = evaluation.get("forecast_metrics", {})
    baselines = evaluation.get("baseline_metrics", {})
    rows = []
    for name in ("mean_wQuantileLoss", "RMSE", "MASE", "coverage[0.1,0.9]"):
        row = {"metric": name, "DeepAR": model.get(name, {}).get("value")}
        row.update({baseline: metrics.get(name, {}).get("value") for baseline, metrics in baselines.items()})
        rows.append(row)
    info = evaluation.get("evaluation", {})
    period = evaluation.get("periods", {}).get("evaluation", {})
    say(f"\n    evaluation on {info.get('windows')} rolling windows × {info.get('series')} series "
        f"({period.get('start', '?')} .. {period.get('end', '?')}: never trained, tuned or chosen on):")
    print_table(rows, out=sys.stderr)


class BackgroundLoad:
    """Invokes the endpoint in a loop from another thread, counting successes and failures."""

    def __init__(self, settings: Settings, endpoint: str, request: dict[str, Any], interval_s: float = 0.05) -> None:
        self.settings, self.endpoint, self.interval_s = settings, endpoint, interval_s
        self.body = json.dumps(request).encode()
        self.ok = self.failed = 0
        self.variants: dict[str, int] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        from aircast.clients import get_client

        runtime = get_client("sagemaker-runtime", self.settings)
        while not self._stop.is_set():
            try:
                resp = runtime.invoke_endpoint(EndpointName=self.endpoint, ContentType="application/json",
                                               Body=self.body)
                resp["Body"].read()
                variant = resp.get("InvokedProductionVariant", "?")
                self.variants[variant] = self.variants.get(variant, 0) + 1
                self.ok += 1
            except Exception as exc:  # noqa: BLE001 - every failure is counted and reported
                self.failed += 1
                if len(self.errors) < 5:
                    self.errors.append(str(exc))
            self._stop.wait(self.interval_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=30)
        return {"ok": self.ok, "failed": self.failed, "by_variant": self.variants, "errors": self.errors}


def watch_endpoint(sm: Any, endpoint: str, before: dict[str, Any] | None,
                   history_of: Callable[[], list[dict[str, Any]]], timeout_s: float = 600.0,
                   out: Callable[[str], None] = say) -> dict[str, Any]:
    """Print the endpoint's deployment history as it happens until the deployment settles.

    Settled: InService (or Failed) with no pending deployment, after the endpoint either moved to a
    new endpoint config or was seen busy (Creating/Updating/RollingBack — a rollback keeps the old config).
    """
    before_config = before.get("EndpointConfigName") if before else None
    seen = len(history_of()) if before else 0  # print only what this deployment adds
    busy_seen = False
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            desc = sm.describe_endpoint(EndpointName=endpoint)
        except Exception:  # noqa: BLE001 - the deploy Lambda may not have created it yet
            desc = {"EndpointStatus": "Pending"}
        history = history_of()
        for entry in history[seen:]:
            when = entry.get("Time")
            stamp = when.strftime("%H:%M:%S") if hasattr(when, "strftime") else ""
            out(f"    {stamp} {entry.get('Message')}")
        seen = len(history)
        status = desc["EndpointStatus"]
        busy_seen = busy_seen or status in ("Creating", "Updating", "RollingBack")
        moved = desc.get("EndpointConfigName") not in (None, before_config)
        if status in ("InService", "Failed") and not desc.get("PendingDeploymentSummary") and (moved or busy_seen):
            return desc
        if time.monotonic() > deadline:
            raise CommandError(f"endpoint {endpoint} still {status} after {timeout_s:.0f} s")
        time.sleep(0.25)


def latest_series(settings: Settings, thing: str, pollutant: str, hours: int) -> tuple[str, list[Any]]:
    """The last ``hours`` hourly means of one series from the curated lake, gaps as "NaN"."""
    import duckdb

    from aircast.commands.lake import sql_string

    glob = local_curated_dir(settings, "hourly").as_posix() + "/*/*.parquet"
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT hour, mean FROM read_parquet({sql_string(glob)}, hive_partitioning=true) "
        "WHERE thing_name = ? AND pollutant = ? ORDER BY hour", [thing, pollutant]).fetchall()
    if not rows:
        raise CommandError(f"no hourly {pollutant} data for {thing} in the lake")
    by_hour = {_naive_utc(h): float(v) for h, v in rows}
    end = max(by_hour)
    start = end - dt.timedelta(hours=hours - 1)
    target = [by_hour.get(start + dt.timedelta(hours=i), "NaN") for i in range(hours)]
    return start.strftime("%Y-%m-%d %H:%M:%S"), target


def _naive_utc(value: Any) -> dt.datetime:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def package_metadata(settings: Settings, model_package_arn: str) -> dict[str, Any] | None:
    """The preprocess metadata (cat maps, periods) of the execution that produced a registered package.

    Each execution writes under its own folder (``run_uri`` in pipelines/aircast/pipeline.py):
    ``<exec>/evaluation/evaluation.json`` (the package's model quality statistics) beside
    ``<exec>/preprocess/metadata/metadata.json``. Never "the newest metadata": an execution the
    stack started meanwhile (drift, the schedule) may have seen other series.
    """
    from infra.local.s3 import uri_to_path

    uri = package_evaluation_uri(settings, model_package_arn)
    suffix = "/evaluation/evaluation.json"
    if not uri or not uri.endswith(suffix):
        return None
    path = uri_to_path(uri[: -len(suffix)] + "/preprocess/metadata/metadata.json", settings.s3_root)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def deepar_cat(settings: Settings, thing: str, pollutant: str, model_package_arn: str | None) -> list[int] | None:
    """``cat`` = [pollutant_index, thing_index] as the package's model was trained (None: no cat known)."""
    meta = package_metadata(settings, model_package_arn) if model_package_arn else None
    cats = (meta or {}).get("cat_maps") or {}
    pollutants, things = cats.get("pollutant", {}), cats.get("thing_name", cats.get("thing", {}))
    if pollutant in pollutants and thing in things:
        return [int(pollutants[pollutant]), int(things[thing])]
    return None


def beijing_actuals(csv_path: Path, start: dt.datetime, hours: int) -> list[float | None]:
    """PM2.5 actually measured in the forecast's hours, where the CSV knows them."""
    from device.readings import replay_beijing

    start = start.replace(tzinfo=dt.UTC) if start.tzinfo is None else start
    values: dict[dt.datetime, float] = {}
    for reading in replay_beijing(csv_path, REPLAY_THING, start=start, hours=hours):
        if "pm2_5" in reading.measurements:
            values[reading.timestamp] = float(reading.measurements["pm2_5"])
    return [values.get(start + dt.timedelta(hours=i)) for i in range(hours)]


def write_forecast_plot(path: Path, history_start: str, history: list[Any], forecast_start: dt.datetime,
                        prediction: dict[str, Any], actuals: list[float | None], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from evaluation.plots import plot_forecast

    fig, ax = plt.subplots(figsize=(11, 4.5))
    plot_forecast(ax, history_start, history, forecast_start.strftime("%Y-%m-%d %H:%M:%S"), prediction["mean"],
                  lower=prediction["quantiles"]["0.1"], upper=prediction["quantiles"]["0.9"],
                  actuals=[float("nan") if a is None else a for a in actuals], title=title)
    ax.set_ylabel("PM2.5 (µg/m³)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)

"""What the local Glue serves: its jobs, crawlers and triggers, as a stack declares them.

A plain, JSON-serialisable description (no project settings object): the project builds it
from its own configuration (the same names and arguments its CloudFormation stack gives the
real resources) and hands it to :class:`~infra.local.glue.catalog.LocalGlueClient` or, as a
JSON file, to the Glue service process (``python -m infra.local.glue.service --config FILE``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from infra.local.core.config import LocalConfig


@dataclass(frozen=True)
class JobDefinition:
    """A Glue ``Job`` (``AWS::Glue::Job``): a script and its default arguments."""

    name: str
    script_location: str  #: a local path or file:// URI of the job script (Glue: ScriptLocation)
    role: str
    default_arguments: dict[str, str] = field(default_factory=dict)
    glue_version: str = "5.0"
    worker_type: str = "G.1X"
    number_of_workers: int = 2
    timeout_minutes: int = 60
    max_retries: int = 0
    max_concurrent_runs: int = 1
    #: the job's ``JobRunQueuingEnabled`` (a run's own value, when given, wins)
    job_run_queuing_enabled: bool = False
    description: str = ""
    #: arguments of the service's warm-up runs over ``GlueConfig.warmup_lines`` (``{scratch}`` is a
    #: scratch folder whose ``input/`` holds them); empty: the job is not warmed up
    warmup_arguments: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CrawlerDefinition:
    """A Glue ``Crawler`` over S3 targets (``AWS::Glue::Crawler``)."""

    name: str
    role: str
    database: str
    s3_targets: tuple[str, ...]
    table_prefix: str = ""
    update_behavior: str = "UPDATE_IN_DATABASE"  # SchemaChangePolicy.UpdateBehavior
    delete_behavior: str = "LOG"
    recrawl_behavior: str = "CRAWL_EVERYTHING"
    configuration: str = ""
    description: str = ""


@dataclass(frozen=True)
class TriggerDefinition:
    """A Glue ``Trigger`` (``AWS::Glue::Trigger``): SCHEDULED (cron) or CONDITIONAL (after a job run)."""

    name: str
    type: str  # SCHEDULED | CONDITIONAL | ON_DEMAND
    #: ``[{"JobName": ...}]`` or ``[{"CrawlerName": ...}]``, optionally with ``Arguments``
    actions: tuple[dict[str, Any], ...]
    schedule: str = ""  # cron(...) for SCHEDULED
    #: CONDITIONAL: ``[{"LogicalOperator": "EQUALS", "JobName": ..., "State": "SUCCEEDED"}]``
    conditions: tuple[dict[str, Any], ...] = ()
    logical: str = "AND"
    start_on_creation: bool = True
    description: str = ""


@dataclass(frozen=True)
class GlueConfig:
    """Everything the local Glue needs: where its state lives, its account, its resources."""

    data_dir: Path
    region: str = "us-east-1"
    account_id: str = "000000000000"
    port: int = 0  #: the service's port on 127.0.0.1 (0: not served)
    #: the warm session's JVM heap (-Xmx), MiB
    heap_mib: int = 2048
    #: the session JVM's JIT: "c1" (quick compiler only) or "tiered" (HotSpot's default); see ``service_conf``
    jit: str = "tiered"
    jobs: tuple[JobDefinition, ...] = ()
    crawlers: tuple[CrawlerDefinition, ...] = ()
    triggers: tuple[TriggerDefinition, ...] = ()
    #: raw JSON lines the service runs each job script over once at start (in a scratch lake),
    #: so the first real run finds its code compiled and its classes loaded
    warmup_lines: tuple[str, ...] = ()

    @property
    def s3_root(self) -> Path:
        """The folder that plays S3: ``<data_dir>/s3/<bucket>/<key>`` (the emulator's one layout, LocalConfig's)."""
        return LocalConfig(Path(self.data_dir), self.region, self.account_id).s3_root

    @property
    def root(self) -> Path:
        """The local Glue's own state: ``<data_dir>/glue``."""
        return self.data_dir / "glue"

    def job(self, name: str) -> JobDefinition | None:
        return next((j for j in self.jobs if j.name == name), None)

    def crawler(self, name: str) -> CrawlerDefinition | None:
        return next((c for c in self.crawlers if c.name == name), None)

    def trigger(self, name: str) -> TriggerDefinition | None:
        return next((t for t in self.triggers if t.name == name), None)

    def to_json(self) -> str:
        body = asdict(self)
        body["data_dir"] = str(self.data_dir)
        return json.dumps(body, indent=2)

    @classmethod
    def from_json(cls, text: str) -> GlueConfig:
        body = json.loads(text)
        return cls(
            data_dir=Path(body["data_dir"]), region=body["region"], account_id=body["account_id"],
            port=int(body["port"]), heap_mib=int(body["heap_mib"]), jit=body.get("jit", cls.jit),
            jobs=tuple(JobDefinition(**j) for j in body["jobs"]),
            crawlers=tuple(CrawlerDefinition(**{**c, "s3_targets": tuple(c["s3_targets"])}) for c in body["crawlers"]),
            triggers=tuple(TriggerDefinition(**{**t, "actions": tuple(t["actions"]),
                                                 "conditions": tuple(t["conditions"])}) for t in body["triggers"]),
            warmup_lines=tuple(body.get("warmup_lines", ())),
        )

    @classmethod
    def load(cls, path: Path) -> GlueConfig:
        return cls.from_json(Path(path).read_text())

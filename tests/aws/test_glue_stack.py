"""The stack's Glue resources against Glue 5.0's documented behaviour, and the local Glue's
description of the same resources (``aircast.glue.glue_config``) against the stack, so what runs
locally is what AWS runs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from cfnlint.decode.decode import decode_str

from aircast.glue import CURATED_CRAWL_TRIGGER, CURATED_CRAWLER, ETL_TRIGGER, RAW_CRAWLER, SCRIPT, glue_config
from aircast.settings import Settings
from tests.conftest import REPO_ROOT

TEMPLATE = REPO_ROOT / "infra" / "aws" / "aircast.yaml"
#: job arguments only Glue 4.0 and earlier honour (Glue 5.0 logs to /aws-glue/jobs/{output,error} by itself:
#: https://docs.aws.amazon.com/glue/latest/dg/monitor-continuous-logging.html)
GLUE4_ONLY = ("--enable-continuous-cloudwatch-log", "--continuous-log-logGroup", "--continuous-log-logStreamPrefix",
              "--continuous-log-conversionPattern", "--enable-continuous-log-filter")


@pytest.fixture(scope="module")
def resources() -> dict[str, Any]:
    template, errors = decode_str(TEMPLATE.read_text())
    assert not errors
    return template["Resources"]


def _glue_statements(resources: dict[str, Any]) -> list[dict[str, Any]]:
    statements = []
    for policy in resources["GlueRole"]["Properties"]["Policies"]:
        for st in policy["PolicyDocument"]["Statement"]:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            if st["Effect"] == "Allow" and any(str(a).startswith("glue:") for a in actions):
                statements.append({"actions": actions, "resources": [str(r) for r in (
                    st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]])]})
    return statements


def test_the_job_never_starts_glue_s_metastore_client_without_the_default_database(resources: dict[str, Any]) -> None:
    """With --enable-glue-datacatalog, Glue's Hive metastore client first checks the `default` database
    (awslabs/aws-glue-data-catalog-client-for-apache-hive-metastore): the role must then be allowed
    glue:GetDatabase on database/default, or every run ends FAILED."""
    job = resources["EtlJob"]["Properties"]
    if job["DefaultArguments"].get("--enable-glue-datacatalog") in ("true", True):
        allowed = [r for st in _glue_statements(resources) if "glue:GetDatabase" in st["actions"]
                   for r in st["resources"]]
        assert any("database/default" in r for r in allowed), \
            "--enable-glue-datacatalog without glue:GetDatabase on database/default: every run fails"


def test_curated_tables_have_one_owner_the_curated_crawler(resources: dict[str, Any]) -> None:
    script = SCRIPT.read_text()
    for ddl in ("CREATE TABLE", "MSCK REPAIR", "saveAsTable", "ALTER TABLE", "enableHiveSupport"):
        assert ddl not in script, f"the job script catalogues tables itself ({ddl})"
    crawler = resources["CuratedCrawler"]["Properties"]
    paths = [str(t["Path"]) for t in crawler["Targets"]["S3Targets"]]
    assert [re.search(r"curated/(\w+)/", p).group(1) for p in paths] == ["readings", "hourly", "quarantine"]
    trigger = resources["CuratedCrawlerTrigger"]["Properties"]
    assert trigger["Predicate"]["Conditions"][0]["State"] == "SUCCEEDED"


def test_a_glue_5_job_passes_no_glue_4_only_arguments(resources: dict[str, Any]) -> None:
    job = resources["EtlJob"]["Properties"]
    assert job["GlueVersion"] == "5.0"
    assert not [a for a in job["DefaultArguments"] if a in GLUE4_ONLY]


def test_the_local_glue_serves_the_stack_s_job_crawlers_and_triggers(resources: dict[str, Any]) -> None:
    config = glue_config(Settings())
    [job] = config.jobs
    stack_job = resources["EtlJob"]["Properties"]
    assert set(job.default_arguments) == set(stack_job["DefaultArguments"])
    assert (job.glue_version, job.worker_type, job.number_of_workers, job.timeout_minutes, job.max_retries,
            job.max_concurrent_runs) == (stack_job["GlueVersion"], stack_job["WorkerType"],
                                         stack_job["NumberOfWorkers"], stack_job["Timeout"], stack_job["MaxRetries"],
                                         stack_job["ExecutionProperty"]["MaxConcurrentRuns"])
    for name, logical in ((RAW_CRAWLER, "RawCrawler"), (CURATED_CRAWLER, "CuratedCrawler")):
        local = config.crawler(name)
        props = resources[logical]["Properties"]
        assert name.endswith(str(props["Name"]).split("}")[-1])
        assert len(local.s3_targets) == len(props["Targets"]["S3Targets"])
        assert local.table_prefix == props.get("TablePrefix", "")
        assert local.update_behavior == props["SchemaChangePolicy"]["UpdateBehavior"]
        assert local.recrawl_behavior == props.get("RecrawlPolicy", {}).get("RecrawlBehavior", "CRAWL_EVERYTHING")
    schedule = config.trigger(ETL_TRIGGER)
    template, _ = decode_str(TEMPLATE.read_text())
    assert schedule.schedule == template["Parameters"]["EtlSchedule"]["Default"] == Settings().glue_etl_schedule
    crawl = config.trigger(CURATED_CRAWL_TRIGGER)
    stack_crawl = resources["CuratedCrawlerTrigger"]["Properties"]
    assert crawl.type == stack_crawl["Type"] and crawl.conditions[0]["State"] == "SUCCEEDED"

"""Helpers every test may use: settings on free ports, and waiting for a condition."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aircast.settings import Settings, load_settings
from infra.local.core.poll import poll_until

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (racy: another process may take it
    before the caller binds it; only for services that cannot bind port 0 and report the port back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings on ``data_dir`` that never use the default ports: the event bus and the endpoint host bind
    port 0 and report the port they got (``run/<service>.port``, read back by ``infra.local.stack.bound_port``);
    mosquitto, the Glue service and the console cannot report one, so they get a port that was free a moment ago."""
    ports: dict[str, Any] = {"mqtt_port": free_port(), "endpoint_port": 0, "eventbus_port": 0,
                             "console_port": free_port(), "glue_port": free_port()}
    # no Glue warm-up: a test's first run compiles as it goes instead of waiting for two warm-up passes
    # (tests/lake/test_glue_service.py starts the service with its warm-up)
    return load_settings(data_dir=data_dir, **{**ports, "glue_warmup": False, **overrides})


def wait_until(condition: Callable[[], T], timeout_s: float = 20.0, interval_s: float = 0.05,
               what: str = "condition") -> T:
    """Poll ``condition`` until it returns a truthy value (returned); fail the test after ``timeout_s``."""
    return poll_until(condition, timeout_s, interval_s, what)


def register_package(sm: Any, group: str, evaluation_uri: str, status: str = "PendingManualApproval",
                     **extra: Any) -> str:
    """A DeepAR package in ``group`` (created if needed) whose model quality statistics are ``evaluation_uri``."""
    if not sm.list_model_package_groups(NameContains=group)["ModelPackageGroupSummaryList"]:
        sm.create_model_package_group(ModelPackageGroupName=group)
    return sm.create_model_package(
        ModelPackageGroupName=group, ModelApprovalStatus=status,
        InferenceSpecification={"Containers": [{"Image": "deepar", "ModelDataUrl": "s3://x/model.tar.gz"}],
                                "SupportedContentTypes": ["application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]},
        ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": evaluation_uri}}},
        **extra)["ModelPackageArn"]

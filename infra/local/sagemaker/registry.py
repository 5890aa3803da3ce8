"""Local SageMaker Model Registry: model package groups and versioned model packages in SQLite.

Methods take boto3's keyword names and return boto3's response shapes; errors are
botocore ``ClientError``s with SageMaker's codes, so callers handle both backends
the same way. Every approval-status change (and a package's creation, as on AWS)
puts a ``SageMaker Model Package State Change`` event on the local event bus, which
is what triggers the deploy Lambda.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.local.core.arns import model_package_arn, model_package_group_arn
from infra.local.core.config import LocalConfig
from infra.local.core.errors import ServiceError
from infra.local.sqlite import open_store

log = logging.getLogger(__name__)

APPROVAL_STATUSES = ("PendingManualApproval", "Approved", "Rejected")
EVENT_SOURCE = "aws.sagemaker"
EVENT_DETAIL_TYPE = "SageMaker Model Package State Change"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS model_package_groups (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    tags TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS model_packages (
    group_name TEXT NOT NULL REFERENCES model_package_groups(name),
    version INTEGER NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    approval_status TEXT NOT NULL,
    approval_description TEXT,
    inference_specification TEXT NOT NULL,
    model_metrics TEXT,
    customer_metadata TEXT,
    metadata_properties TEXT,
    created REAL NOT NULL,
    modified REAL NOT NULL,
    PRIMARY KEY (group_name, version)
);
"""


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def parse_model_package_arn(arn: str) -> tuple[str, int]:
    """``arn:aws:sagemaker:r:a:model-package/GROUP/VERSION`` → (GROUP, VERSION)."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or not parts[5].startswith("model-package/"):
        raise ValueError(f"not a model package ARN: {arn!r}")
    group, _, version = parts[5][len("model-package/"):].rpartition("/")
    if not group or not version.isdigit():
        raise ValueError(f"not a versioned model package ARN (…/model-package/GROUP/VERSION): {arn!r}")
    return group, int(version)


class ModelRegistryAPI:
    """Mixin of LocalSageMakerClient: the Model Registry calls aircast uses."""

    config: LocalConfig  # set by LocalSageMakerClient.__init__

    # ---- storage --------------------------------------------------------------
    @property
    def registry_db_path(self) -> Path:
        return self.config.data_dir / "sagemaker" / "registry.sqlite"

    @contextmanager
    def _registry(self) -> Iterator[sqlite3.Connection]:
        with open_store(self.registry_db_path, _SCHEMA) as db:
            yield db

    def _group_arn(self, name: str) -> str:
        return model_package_group_arn(self.config.region, self.config.account_id, name)

    def _package_arn(self, group: str, version: int) -> str:
        return model_package_arn(self.config.region, self.config.account_id, group, version)

    # ---- groups -----------------------------------------------------------------
    def create_model_package_group(self, *, ModelPackageGroupName: str, ModelPackageGroupDescription: str = "",
                                   Tags: list[dict[str, str]] | None = None, **_: Any) -> dict[str, Any]:
        """Create a group; a second create of the same name fails as on AWS."""
        op = "CreateModelPackageGroup"
        _check_name(ModelPackageGroupName, op)
        with self._registry() as db:
            if db.execute("SELECT 1 FROM model_package_groups WHERE name=?", (ModelPackageGroupName,)).fetchone():
                raise ServiceError.validation(
                    f"Model Package Group already exists: {self._group_arn(ModelPackageGroupName)}", op)
            db.execute("INSERT INTO model_package_groups VALUES (?,?,?,?)",
                       (ModelPackageGroupName, ModelPackageGroupDescription or "", time.time(), json.dumps(Tags or [])))
        return {"ModelPackageGroupArn": self._group_arn(ModelPackageGroupName)}

    def _group_row(self, db: sqlite3.Connection, name: str, op: str) -> sqlite3.Row:
        row = db.execute("SELECT * FROM model_package_groups WHERE name=?", (name,)).fetchone()
        if row is None:
            raise ServiceError.validation(f"ModelPackageGroup {name} does not exist.", op)
        return row

    def describe_model_package_group(self, *, ModelPackageGroupName: str, **_: Any) -> dict[str, Any]:
        with self._registry() as db:
            row = self._group_row(db, ModelPackageGroupName, "DescribeModelPackageGroup")
        return {
            "ModelPackageGroupName": row["name"], "ModelPackageGroupArn": self._group_arn(row["name"]),
            "ModelPackageGroupDescription": row["description"], "CreationTime": _dt(row["created"]),
            "ModelPackageGroupStatus": "Completed",
        }

    def list_model_package_groups(self, *, NameContains: str | None = None, SortBy: str = "CreationTime",
                                  SortOrder: str = "Ascending", **_: Any) -> dict[str, Any]:
        with self._registry() as db:
            rows = db.execute("SELECT * FROM model_package_groups").fetchall()
        rows = [r for r in rows if not NameContains or NameContains in r["name"]]
        key = (lambda r: r["name"]) if SortBy == "Name" else (lambda r: r["created"])
        rows.sort(key=key, reverse=SortOrder == "Descending")
        return {"ModelPackageGroupSummaryList": [{
            "ModelPackageGroupName": r["name"], "ModelPackageGroupArn": self._group_arn(r["name"]),
            "ModelPackageGroupDescription": r["description"], "CreationTime": _dt(r["created"]),
            "ModelPackageGroupStatus": "Completed"} for r in rows]}

    # ---- packages ---------------------------------------------------------------
    def create_model_package(self, *, ModelPackageGroupName: str | None = None,
                             InferenceSpecification: dict[str, Any] | None = None,
                             ModelApprovalStatus: str = "PendingManualApproval",
                             ModelPackageDescription: str = "", ModelMetrics: dict[str, Any] | None = None,
                             CustomerMetadataProperties: dict[str, str] | None = None,
                             MetadataProperties: dict[str, Any] | None = None, **_: Any) -> dict[str, Any]:
        """Register the next version in a group (versions count from 1)."""
        op = "CreateModelPackage"
        if not ModelPackageGroupName:
            raise ServiceError.validation("only versioned packages are supported locally: "
                                          "give ModelPackageGroupName", op)
        _check_status(ModelApprovalStatus, op)
        containers = (InferenceSpecification or {}).get("Containers") or []
        if not containers or any(not c.get("Image") for c in containers):
            raise ServiceError.validation(
                "InferenceSpecification.Containers must list at least one container with an Image", op)
        for key, value in (CustomerMetadataProperties or {}).items():
            if not isinstance(value, str):
                raise ServiceError.validation(
                    f"CustomerMetadataProperties[{key!r}] must be a string, got {value!r}", op)
        now = time.time()
        with self._registry() as db:
            self._group_row(db, ModelPackageGroupName, op)
            version = db.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM model_packages WHERE group_name=?",
                                 (ModelPackageGroupName,)).fetchone()[0]
            db.execute(
                "INSERT INTO model_packages VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (ModelPackageGroupName, version, ModelPackageDescription or "", ModelApprovalStatus, None,
                 json.dumps(InferenceSpecification), json.dumps(ModelMetrics or {}),
                 json.dumps(CustomerMetadataProperties or {}), json.dumps(MetadataProperties or {}), now, now),
            )
        arn = self._package_arn(ModelPackageGroupName, version)
        self._emit_state_change(arn)
        return {"ModelPackageArn": arn}

    def _package_row(self, db: sqlite3.Connection, name_or_arn: str, op: str) -> sqlite3.Row:
        try:
            group, version = parse_model_package_arn(name_or_arn)
        except ValueError as exc:
            raise ServiceError.validation(str(exc), op) from exc
        row = db.execute("SELECT * FROM model_packages WHERE group_name=? AND version=?", (group, version)).fetchone()
        if row is None:
            raise ServiceError.validation(f"Model package {name_or_arn} does not exist.", op)
        return row

    def _package_dict(self, row: sqlite3.Row) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ModelPackageGroupName": row["group_name"],
            "ModelPackageVersion": row["version"],
            "ModelPackageArn": self._package_arn(row["group_name"], row["version"]),
            "ModelPackageName": row["group_name"],
            "ModelPackageDescription": row["description"],
            "CreationTime": _dt(row["created"]),
            "LastModifiedTime": _dt(row["modified"]),
            "InferenceSpecification": json.loads(row["inference_specification"]),
            "ModelPackageStatus": "Completed",
            "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
            "CertifyForMarketplace": False,
            "ModelApprovalStatus": row["approval_status"],
        }
        for key, col in (("ModelMetrics", "model_metrics"), ("CustomerMetadataProperties", "customer_metadata"),
                         ("MetadataProperties", "metadata_properties")):
            value = json.loads(row[col] or "{}")
            if value:
                out[key] = value
        if row["approval_description"]:
            out["ApprovalDescription"] = row["approval_description"]
        return out

    def describe_model_package(self, *, ModelPackageName: str, **_: Any) -> dict[str, Any]:
        with self._registry() as db:
            return self._package_dict(self._package_row(db, ModelPackageName, "DescribeModelPackage"))

    def list_model_packages(self, *, ModelPackageGroupName: str | None = None, ModelApprovalStatus: str | None = None,
                            SortBy: str = "CreationTime", SortOrder: str = "Ascending", MaxResults: int = 100,
                            NextToken: str | None = None, **_: Any) -> dict[str, Any]:
        """Summaries of versioned packages; ``NextToken`` is the offset of the next page."""
        op = "ListModelPackages"
        if ModelApprovalStatus is not None:
            _check_status(ModelApprovalStatus, op)
        if SortBy not in ("CreationTime", "Name"):
            raise ServiceError.validation(f"SortBy must be CreationTime or Name, got {SortBy!r}", op)
        if SortOrder not in ("Ascending", "Descending"):
            raise ServiceError.validation(f"SortOrder must be Ascending or Descending, got {SortOrder!r}", op)
        sql, args = "SELECT * FROM model_packages WHERE 1=1", []
        if ModelPackageGroupName:
            sql += " AND group_name=?"
            args.append(ModelPackageGroupName)
        if ModelApprovalStatus:
            sql += " AND approval_status=?"
            args.append(ModelApprovalStatus)
        # version breaks ties of equal creation times, so "latest" is always well defined
        order = "DESC" if SortOrder == "Descending" else "ASC"
        sql += (f" ORDER BY group_name {order}, version {order}" if SortBy == "Name"
                else f" ORDER BY created {order}, version {order}")
        with self._registry() as db:
            rows = db.execute(sql, args).fetchall()
        start = int(NextToken or 0)
        page = rows[start:start + MaxResults]
        out: dict[str, Any] = {"ModelPackageSummaryList": [{
            "ModelPackageGroupName": r["group_name"], "ModelPackageVersion": r["version"],
            "ModelPackageArn": self._package_arn(r["group_name"], r["version"]),
            "ModelPackageDescription": r["description"], "CreationTime": _dt(r["created"]),
            "ModelPackageStatus": "Completed", "ModelApprovalStatus": r["approval_status"]} for r in page]}
        if start + MaxResults < len(rows):
            out["NextToken"] = str(start + MaxResults)
        return out

    def update_model_package(self, *, ModelPackageArn: str, ModelApprovalStatus: str | None = None,
                             ApprovalDescription: str | None = None,
                             CustomerMetadataProperties: dict[str, str] | None = None, **_: Any) -> dict[str, Any]:
        """Change approval status / description; a status change emits the state-change event."""
        op = "UpdateModelPackage"
        if ModelApprovalStatus is not None:
            _check_status(ModelApprovalStatus, op)
        with self._registry() as db:
            row = self._package_row(db, ModelPackageArn, op)
            status = ModelApprovalStatus or row["approval_status"]
            changed = status != row["approval_status"]
            meta = json.loads(row["customer_metadata"] or "{}")
            meta.update(CustomerMetadataProperties or {})
            db.execute(
                "UPDATE model_packages SET approval_status=?, approval_description=?, customer_metadata=?, modified=? "
                "WHERE group_name=? AND version=?",
                (status, ApprovalDescription if ApprovalDescription is not None else row["approval_description"],
                 json.dumps(meta), time.time(), row["group_name"], row["version"]),
            )
        arn = self._package_arn(row["group_name"], row["version"])
        if changed:
            self._emit_state_change(arn)
        return {"ModelPackageArn": arn}

    # ---- events -----------------------------------------------------------------
    def model_package_event(self, arn: str) -> dict[str, Any]:
        """The EventBridge entry AWS sends for this package's current state."""
        pkg = self.describe_model_package(ModelPackageName=arn)
        detail = {k: v for k, v in pkg.items() if k not in ("CreationTime", "LastModifiedTime")}
        # AWS puts epoch milliseconds in this event's detail
        detail["CreationTime"] = int(pkg["CreationTime"].timestamp() * 1000)
        detail["LastModifiedTime"] = int(pkg["LastModifiedTime"].timestamp() * 1000)
        return {"Source": EVENT_SOURCE, "DetailType": EVENT_DETAIL_TYPE, "Resources": [arn],
                "Detail": json.dumps(detail)}

    def _emit_state_change(self, arn: str) -> None:
        # SageMaker itself emits this event: through the bus's in-process service path, which a
        # PutEvents caller cannot reach (they may not use aws.* sources)
        from infra.local.eventbridge.client import LocalEventsClient

        LocalEventsClient(self.config).put_service_events([self.model_package_event(arn)])


def _check_status(status: str, op: str) -> None:
    if status not in APPROVAL_STATUSES:
        raise ServiceError.validation(
            f"ModelApprovalStatus must be one of {', '.join(APPROVAL_STATUSES)}, got {status!r}", op)


def _check_name(name: str, op: str) -> None:
    import re

    if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", name or ""):
        raise ServiceError.validation(f"ModelPackageGroupName {name!r} must be 1-63 letters, digits and hyphens", op)

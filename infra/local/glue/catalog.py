"""The local Glue Data Catalog: databases, tables and partitions as JSON files, in Glue's shapes.

Layout under ``<data_dir>/glue/catalog/``::

    <database>/database.json
    <database>/tables/<table>.json          # Glue ``Table`` (GetTable shape)
    <database>/partitions/<table>.json      # list of Glue ``Partition``

Errors are :class:`~infra.local.core.errors.ServiceError` with Glue's codes
(``EntityNotFoundException``, ``AlreadyExistsException``).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from infra.local.core.errors import ServiceError
from infra.local.s3 import atomic_write_bytes


def _error(code: str, message: str, operation: str) -> ServiceError:
    return ServiceError(code, message, 400, operation)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _read(path: Path) -> Any:
    return json.loads(path.read_text())


def _write(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=str) + "\n").encode(), fsync=False)


class Catalog:
    """Glue's Data Catalog calls over JSON files under ``root``."""

    def __init__(self, root: Path, account_id: str) -> None:
        self.root = Path(root)
        self.account_id = account_id

    # ---- databases -------------------------------------------------------------
    def _db_dir(self, name: str) -> Path:
        return self.root / name

    def create_database(self, DatabaseInput: dict[str, Any], **_: Any) -> dict[str, Any]:
        path = self._db_dir(DatabaseInput["Name"]) / "database.json"
        if path.exists():
            raise _error("AlreadyExistsException", f"Database {DatabaseInput['Name']} already exists.", "CreateDatabase")
        _write(path, {**DatabaseInput, "CreateTime": _now(), "CatalogId": self.account_id})
        return {}

    def get_database(self, Name: str, **_: Any) -> dict[str, Any]:
        path = self._db_dir(Name) / "database.json"
        if not path.exists():
            raise _error("EntityNotFoundException", f"Database {Name} not found.", "GetDatabase")
        return {"Database": _read(path)}

    def get_databases(self, **_: Any) -> dict[str, Any]:
        dbs = sorted(self.root.glob("*/database.json")) if self.root.exists() else []
        return {"DatabaseList": [_read(p) for p in dbs]}

    def ensure_database(self, name: str) -> None:
        """Create the database if it is missing (what a crawler does for its target database)."""
        try:
            self.create_database(DatabaseInput={"Name": name, "Description": "aircast lake"})
        except ServiceError as exc:
            if exc.code != "AlreadyExistsException":
                raise

    # ---- tables ------------------------------------------------------------------
    def _table_path(self, database: str, name: str) -> Path:
        return self._db_dir(database) / "tables" / f"{name}.json"

    def _need_db(self, database: str, operation: str) -> None:
        if not (self._db_dir(database) / "database.json").exists():
            raise _error("EntityNotFoundException", f"Database {database} not found.", operation)

    def create_table(self, DatabaseName: str, TableInput: dict[str, Any], **_: Any) -> dict[str, Any]:
        self._need_db(DatabaseName, "CreateTable")
        path = self._table_path(DatabaseName, TableInput["Name"])
        if path.exists():
            raise _error("AlreadyExistsException", f"Table {TableInput['Name']} already exists.", "CreateTable")
        now = _now()
        _write(path, {**TableInput, "DatabaseName": DatabaseName, "CreateTime": TableInput.get("CreateTime", now),
                      "UpdateTime": now, "VersionId": TableInput.get("VersionId", "1"), "CatalogId": self.account_id})
        return {}

    def update_table(self, DatabaseName: str, TableInput: dict[str, Any], **_: Any) -> dict[str, Any]:
        path = self._table_path(DatabaseName, TableInput["Name"])
        if not path.exists():
            raise _error("EntityNotFoundException", f"Table {TableInput['Name']} not found.", "UpdateTable")
        old = _read(path)
        version = str(int(old.get("VersionId", "1")) + 1)
        _write(path, {**TableInput, "DatabaseName": DatabaseName, "CreateTime": old["CreateTime"],
                      "UpdateTime": _now(), "VersionId": version, "CatalogId": self.account_id})
        return {}

    def get_table(self, DatabaseName: str, Name: str, **_: Any) -> dict[str, Any]:
        self._need_db(DatabaseName, "GetTable")
        path = self._table_path(DatabaseName, Name)
        if not path.exists():
            raise _error("EntityNotFoundException", f"Table {Name} not found.", "GetTable")
        return {"Table": _read(path)}

    def find_table(self, database: str, name: str) -> dict[str, Any] | None:
        """The table, or None when it (or its database) does not exist."""
        path = self._table_path(database, name)
        return _read(path) if path.exists() else None

    def get_tables(self, DatabaseName: str, **_: Any) -> dict[str, Any]:
        self._need_db(DatabaseName, "GetTables")
        tables = sorted((self._db_dir(DatabaseName) / "tables").glob("*.json"))
        return {"TableList": [_read(p) for p in tables]}

    def delete_table(self, DatabaseName: str, Name: str, **_: Any) -> dict[str, Any]:
        path = self._table_path(DatabaseName, Name)
        if not path.exists():
            raise _error("EntityNotFoundException", f"Table {Name} not found.", "DeleteTable")
        path.unlink()
        (self._db_dir(DatabaseName) / "partitions" / f"{Name}.json").unlink(missing_ok=True)
        return {}

    def put_table(self, database: str, table: dict[str, Any]) -> None:
        """Create or update (what a crawler does with the table it infers)."""
        stored = {k: v for k, v in table.items() if k not in ("VersionId",)}
        if self.find_table(database, table["Name"]) is None:
            self.create_table(DatabaseName=database, TableInput=stored)
        else:
            self.update_table(DatabaseName=database, TableInput=stored)

    # ---- partitions -----------------------------------------------------------------
    def _partitions_path(self, database: str, table: str) -> Path:
        return self._db_dir(database) / "partitions" / f"{table}.json"

    def batch_create_partition(self, DatabaseName: str, TableName: str,
                               PartitionInputList: list[dict[str, Any]], **_: Any) -> dict[str, Any]:
        self.get_table(DatabaseName=DatabaseName, Name=TableName)
        path = self._partitions_path(DatabaseName, TableName)
        current = _read(path) if path.exists() else []
        have = {tuple(p["Values"]) for p in current}
        errors = []
        for part in PartitionInputList:
            if tuple(part["Values"]) in have:
                errors.append({"PartitionValues": part["Values"], "ErrorDetail": {
                    "ErrorCode": "AlreadyExistsException", "ErrorMessage": "Partition already exists."}})
                continue
            have.add(tuple(part["Values"]))
            current.append({**part, "DatabaseName": DatabaseName, "TableName": TableName,
                            "CreationTime": part.get("CreationTime", _now()), "CatalogId": self.account_id})
        current.sort(key=lambda p: p["Values"])
        _write(path, current)
        return {"Errors": errors} if errors else {}

    def get_partitions(self, DatabaseName: str, TableName: str, **_: Any) -> dict[str, Any]:
        self.get_table(DatabaseName=DatabaseName, Name=TableName)
        path = self._partitions_path(DatabaseName, TableName)
        return {"Partitions": _read(path) if path.exists() else []}

"""Who may do what: a small YAML of users and their roles.

```yaml
users:
  mina: [ml_engineer]       # may propose releases
  ravi: [rights_team]       # may approve or reject them
```
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import duckdb
import yaml
from pydantic import BaseModel, ConfigDict

Role = Literal["ml_engineer", "rights_team", "auditor", "admin"]
ROLES_FILE = "roles.yaml"


class RoleBook(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    users: dict[str, tuple[Role, ...]] = {}
    source: str = ""

    def has(self, user: str, role: Role) -> bool:
        return role in self.users.get(user, ())


class RolesError(ValueError):
    """The roles file is missing or malformed."""


def load_roles(path: str | Path) -> RoleBook:
    """Read a roles YAML (``users: {name: [roles]}``)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return RoleBook.model_validate({"users": data.get("users") or {}, "source": str(path)})
    except OSError as exc:
        raise RolesError(f"no roles file at {path}: create it with `users: {{name: [rights_team]}}`") from exc
    except (yaml.YAMLError, ValueError, AttributeError) as exc:
        raise RolesError(f"invalid roles file {path}: {exc}") from exc


def roles_path_for(con: duckdb.DuckDBPyConnection) -> Path:
    """``$LINERNOTES_ROLES``, else ``roles.yaml`` beside the ledger file."""
    env = os.environ.get("LINERNOTES_ROLES")
    if env:
        return Path(env)
    row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return Path(row[0]).parent / ROLES_FILE if row and row[0] else Path(ROLES_FILE)

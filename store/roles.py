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

from store import audit

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


class RoleRefused(PermissionError):
    """The actor's roles do not allow the action; the refusal itself is audit-logged."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# Every mutating action and the roles that may perform it; admin may do anything.
# Reading (show, list, trace, explain, verify) needs no role.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "catalog.ingest": frozenset({"ml_engineer", "rights_team"}),
    "fingerprint.store": frozenset({"ml_engineer", "rights_team"}),
    "optout.register": frozenset({"rights_team"}),
    "rights.import": frozenset({"rights_team"}),
    "consent.revoke": frozenset({"rights_team"}),
    "deal.expire": frozenset({"rights_team"}),
    "rights.evaluate": frozenset({"rights_team", "ml_engineer"}),
    "release.propose": frozenset({"ml_engineer"}),
    "release.approve": frozenset({"rights_team"}),
    "release.reject": frozenset({"rights_team"}),
    "release.revoke": frozenset({"rights_team"}),
    "shards.build": frozenset({"ml_engineer"}),
    "train.start": frozenset({"ml_engineer"}),
    "audit.export": frozenset({"auditor", "rights_team"}),
    "trace.snapshot": frozenset({"auditor", "rights_team", "ml_engineer"}),
}


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


def authorize(con: duckdb.DuckDBPyConnection, *, actor: str, action: str, subject: str,
              roles: RoleBook | None = None) -> None:
    """Return if ``actor`` may perform ``action``; otherwise audit the refusal and raise RoleRefused.

    Roles come from ``roles`` when given, else from :func:`roles_path_for`. A missing or broken
    roles file refuses everything (deny by default).
    """

    allowed = PERMISSIONS.get(action)
    code, message = "", ""
    if allowed is None:
        code, message = "unknown_action", f"no permission rule for action {action!r}"
    else:
        try:
            book = roles if roles is not None else load_roles(roles_path_for(con))
        except RolesError as exc:
            code, message = "roles_unavailable", str(exc)
        else:
            held = set(book.users.get(actor, ()))
            if "admin" not in held and not held & allowed:
                needed = " or ".join(sorted(allowed))
                code = "role_missing"
                message = (f"{actor} may not {action} (needs {needed}; has {', '.join(sorted(held)) or 'no role'}; "
                           f"roles from {book.source or 'argument'})")
    if code:
        audit.record(con, actor=actor, action=f"{action}.refused", subject=subject,
                     payload={"code": code, "message": message})
        raise RoleRefused(code, message)

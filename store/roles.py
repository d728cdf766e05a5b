"""Who is acting and what they may do: the users of ``roles.yaml`` and the permission table.

```yaml
users:
  rita.rights:                  # the name every record and audit entry carries
    roles: [rights_team]
    os_users: [rita]            # operating-system accounts that act as rita.rights on the command line
  mira.ml: [ml_engineer]        # short form: the OS account is called mira.ml
  linernotes-pipeline:
    roles: [pipeline]
    service: true               # a service account: Dagster runs and sensors act as it
  ops:
    roles: [admin]
    os_users: [root]
```

A :class:`Principal` is who is acting as established by the caller's front door (the operating
system for the command line, the service configuration for Dagster, the login session for the web
app); its ``name`` is the user whose roles are checked. See ``docs/roles.md`` for the trust boundary.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import pwd
from pathlib import Path
from typing import Any, Literal

import duckdb
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

Role = Literal["ml_engineer", "rights_team", "auditor", "admin", "pipeline"]
ROLES_FILE = "roles.yaml"
ROLES_ENV = "LINERNOTES_ROLES"
# How the principal was established: by the OS account running the CLI, by an admin naming someone
# else, as a service account (optionally for a named person), by a web login or a trusted SSO header,
# or by trusted code calling the domain directly (tests, the demo driver, notebooks).
Method = Literal["os_user", "admin_as", "service", "service_for", "web_login", "sso_header", "direct"]


class User(BaseModel):
    """One entry of ``roles.yaml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    roles: tuple[Role, ...] = ()
    os_users: tuple[str, ...] = ()
    service: bool = False
    password_argon2: str | None = Field(default=None, description="argon2 hash for the web login "
                                                                  "(`linernotes users set-password`)")


class RoleBook(BaseModel):
    """The parsed roles file: users by name, where it came from and its content hash."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    users: dict[str, User] = {}
    source: str = ""
    sha256: str = ""

    @field_validator("users", mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {name: {"roles": list(spec)} if isinstance(spec, (list, tuple)) else spec
                    for name, spec in value.items()}
        return value

    def roles_of(self, user: str) -> tuple[Role, ...]:
        entry = self.users.get(user)
        return entry.roles if entry else ()

    def has(self, user: str, role: Role) -> bool:
        return role in self.roles_of(user)

    def user_for_os(self, os_user: str) -> str | None:
        """The user an operating-system account acts as: listed under ``os_users``, or of the same name."""
        mapped = sorted(name for name, u in self.users.items() if os_user in u.os_users)
        if mapped:
            return mapped[0]
        entry = self.users.get(os_user)
        return os_user if entry is not None and not entry.os_users and not entry.service else None


class RolesError(ValueError):
    """The roles file is missing or malformed."""


class RoleRefused(PermissionError):
    """The actor may not do this (or is not who they claim); the refusal itself is audit-logged."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Principal(BaseModel):
    """Who is acting: ``name`` is checked against the roles; ``via`` says who vouched for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    method: Method = "direct"
    via: str | None = None

    def audit(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "method": self.method}
        if self.via:
            out["via"] = self.via
        return out

    def __str__(self) -> str:
        return self.name if not self.via else f"{self.name} (via {self.via})"


def as_principal(actor: Principal | str) -> Principal:
    """A principal from trusted code: a bare name means the caller vouches for it (``direct``)."""
    return actor if isinstance(actor, Principal) else Principal(name=actor, method="direct")


# Every mutating action and the roles that may perform it; admin may do anything.
# Reading (show, list, trace, explain, verify, impact) needs no role.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "catalog.ingest": frozenset({"pipeline", "ml_engineer", "rights_team"}),
    "fingerprint.store": frozenset({"pipeline", "ml_engineer", "rights_team"}),
    "fingerprint.match": frozenset({"pipeline", "ml_engineer", "rights_team"}),
    "optout.register": frozenset({"pipeline", "rights_team"}),
    "rights.import": frozenset({"pipeline", "rights_team"}),
    "rights.supersede": frozenset({"rights_team"}),
    "rights.parties.merge": frozenset({"rights_team"}),
    "rights.evaluate": frozenset({"pipeline", "rights_team", "ml_engineer"}),
    "consent.revoke": frozenset({"rights_team"}),
    "deal.expire": frozenset({"rights_team"}),
    "lyrics.license": frozenset({"pipeline", "rights_team"}),
    "lyrics.revoke": frozenset({"rights_team"}),
    "release.propose": frozenset({"ml_engineer"}),
    "release.approve": frozenset({"rights_team"}),
    "release.reject": frozenset({"rights_team"}),
    "release.revoke": frozenset({"rights_team"}),
    "release.alert": frozenset({"pipeline", "rights_team"}),
    "shards.build": frozenset({"ml_engineer"}),
    "shards.purge": frozenset({"ml_engineer", "rights_team"}),
    "shards.export": frozenset({"ml_engineer"}),
    "train.start": frozenset({"ml_engineer"}),
    "trace.snapshot": frozenset({"pipeline", "auditor", "rights_team", "ml_engineer"}),
    "audit.export": frozenset({"auditor", "rights_team"}),
    "outbox.apply": frozenset({"pipeline"}),
    # Web-login passwords in roles.yaml: anyone's by an admin only; one's own by any person.
    "users.set_password": frozenset(),
    "users.set_own_password": frozenset({"rights_team", "ml_engineer", "auditor"}),
}


def load_roles(path: str | Path) -> RoleBook:
    """Read a roles YAML (``users: {name: [roles]}`` or ``{name: {roles: [...], os_users: [...]}}``)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RolesError(f"no roles file at {path}: create it with `users: {{name: [rights_team]}}`") from exc
    try:
        data = yaml.safe_load(raw) or {}
        return RoleBook.model_validate({"users": data.get("users") or {}, "source": str(path),
                                        "sha256": hashlib.sha256(raw).hexdigest()})
    except (yaml.YAMLError, ValueError, AttributeError) as exc:
        raise RolesError(f"invalid roles file {path}: {exc}") from exc


def data_root(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The data directory a ledger file lives in (None for an in-memory ledger)."""
    row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return Path(row[0]).resolve().parent if row and row[0] else None


def roles_path_for(con: duckdb.DuckDBPyConnection) -> Path:
    """``$LINERNOTES_ROLES``, else ``roles.yaml`` beside the ledger file."""
    env = os.environ.get(ROLES_ENV)
    if env:
        return Path(env)
    root = data_root(con)
    return root / ROLES_FILE if root else Path(ROLES_FILE)


def os_user() -> str:
    """The operating-system account running this process (its effective uid, not $USER)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return getpass.getuser()


def principal_for_os_user(book: RoleBook, account: str, requested: str | None) -> Principal:
    """The command line's principal: the user ``account`` maps to, or, for an admin, ``requested``.

    Raises :class:`RoleRefused` (``unknown_os_user`` or ``impersonation_refused``).
    """
    user = book.user_for_os(account)
    if user is None:
        raise RoleRefused("unknown_os_user",
                          f"the operating-system account {account!r} is not mapped to a user in "
                          f"{book.source or 'roles.yaml'} (add it under a user's os_users)")
    if requested is None or requested == user:
        return Principal(name=user, method="os_user", via=f"os:{account}")
    if not book.has(user, "admin"):
        raise RoleRefused("impersonation_refused",
                          f"{user} (os:{account}) may not act as {requested}: only an admin may name another actor")
    return Principal(name=requested, method="admin_as", via=f"{user} (os:{account})")

"""The users the tests act as, and a roles file naming them beside a test ledger."""

from __future__ import annotations

import json
from pathlib import Path

from store.roles import RoleBook, os_user

TEST_USERS: dict[str, list[str]] = {
    # people
    "rita": ["rights_team"], "rita.rights": ["rights_team"], "ravi": ["rights_team"], "rights-ops": ["rights_team"],
    "rights@label": ["rights_team"], "boss": ["rights_team"],
    "mina": ["ml_engineer"], "mira": ["ml_engineer"], "mira.ml": ["ml_engineer"], "ml@x": ["ml_engineer"],
    "ml@label": ["ml_engineer"], "data@label": ["ml_engineer"], "a@x": ["ml_engineer"],
    "both": ["ml_engineer", "rights_team"],
    "aude.audit": ["auditor"], "auditor@x": ["auditor"],
    "ops": ["admin"], "tester": ["admin"], "test": ["admin"], "fuzz": ["admin"], "t": ["admin"], "w": ["admin"],
    "cto": ["admin"], "demo": ["admin"], "bench": ["admin"],
    # services
    "pipeline": ["pipeline"], "linernotes-pipeline": ["pipeline"], "sensor": ["pipeline"],
    "rights_change_sensor": ["pipeline"], "linernotes.fingerprinting": ["pipeline"], "linernotes-writer": ["pipeline"],
}
SERVICES = {"pipeline", "linernotes-pipeline", "sensor", "rights_change_sensor", "linernotes.fingerprinting",
            "linernotes-writer"}
OS_ADMIN = "ops"  # the operating-system account running the tests acts as this admin on the command line
NO_ROLE = "nobody"


def users(extra: dict[str, list[str]] | None = None) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    for name, roles in {**TEST_USERS, **(extra or {})}.items():
        entry: dict[str, object] = {"roles": roles}
        if name in SERVICES:
            entry["service"] = True
        if name == OS_ADMIN:
            entry["os_users"] = [os_user()]
        out[name] = entry
    return out


def roles_yaml(extra: dict[str, list[str]] | None = None) -> str:
    return json.dumps({"users": users(extra)}, indent=2, sort_keys=True, ensure_ascii=False) + "\n"  # JSON is YAML


def write_test_roles(directory: Path, extra: dict[str, list[str]] | None = None) -> Path:
    """Write ``roles.yaml`` (the test users) into ``directory``, where a ledger file beside it finds it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "roles.yaml"
    path.write_text(roles_yaml(extra), encoding="utf-8")
    return path


def test_book() -> RoleBook:
    return RoleBook(users=users(), source="tests/roles.py")

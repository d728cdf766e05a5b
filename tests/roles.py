"""The users the tests act as, and a roles file naming them beside a test ledger."""

from __future__ import annotations

from pathlib import Path

from store.roles import RoleBook

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
NO_ROLE = "nobody"


def roles_yaml(extra: dict[str, list[str]] | None = None) -> str:
    users = {**TEST_USERS, **(extra or {})}
    return "users:\n" + "".join(f"  {name!r}: {roles}\n".replace("'", '"') for name, roles in sorted(users.items()))


def write_test_roles(directory: Path, extra: dict[str, list[str]] | None = None) -> Path:
    """Write ``roles.yaml`` (the test users) into ``directory``, where a ledger file beside it finds it."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "roles.yaml"
    path.write_text(roles_yaml(extra), encoding="utf-8")
    return path


def test_book() -> RoleBook:
    return RoleBook(users={name: tuple(roles) for name, roles in TEST_USERS.items()}, source="tests/roles.py")

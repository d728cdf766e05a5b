"""Who is acting is the operating-system account, mapped in roles.yaml, not whatever --actor says.

These tests run the installed ``linernotes`` command in a real subprocess, as the account running
the tests, against a real data directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from store.database import connect
from store.roles import os_user
from tests.licensing.helpers import consent, deal, write_rights

LINERNOTES = str(Path(sys.executable).parent / "linernotes")
ME = os_user()


def _home(tmp_path: Path, roles: str) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "roles.yaml").write_text(roles, encoding="utf-8")
    return home


def _run(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("LINERNOTES_ACTOR", "LINERNOTES_ROLES")}
    return subprocess.run([LINERNOTES, *args, "--home", str(home)], capture_output=True, text=True, timeout=120,
                          env={**clean, **(env or {}), "COLUMNS": "200"})


def _rights(tmp_path: Path) -> Path:
    return write_rights(tmp_path / "rights.json", ["P-label", "P-a"], [deal("D1", ["QZXXX2600001"])],
                        [consent("C-a", "P-a")])


def _audit(home: Path) -> list[tuple[str, str, dict[str, object]]]:
    with connect(home / "linernotes.duckdb", read_only=True) as con:
        return [(actor, action, json.loads(payload)) for actor, action, payload in con.execute(
            "SELECT actor, action, payload FROM audit_log ORDER BY seq").fetchall()]


def test_the_os_account_acts_as_the_user_it_maps_to(tmp_path: Path) -> None:
    home = _home(tmp_path, f"users:\n  rita.rights:\n    roles: [rights_team]\n    os_users: [{ME}]\n")
    result = _run(home, "rights", "import", str(_rights(tmp_path)))
    assert result.returncode == 0, result.stderr
    [(actor, action, payload)] = _audit(home)
    assert (actor, action) == ("rita.rights", "rights.import")
    assert payload["principal"] == {"name": "rita.rights", "method": "os_user", "via": f"os:{ME}"}


def test_naming_someone_else_is_refused_unless_admin_and_recorded_either_way(tmp_path: Path) -> None:
    home = _home(tmp_path, f"users:\n  mira.ml:\n    roles: [ml_engineer]\n    os_users: [{ME}]\n"
                           "  rita.rights: [rights_team]\n")
    for env, args in (({}, ["--actor", "rita.rights"]), ({"LINERNOTES_ACTOR": "rita.rights"}, [])):
        result = _run(home, "rights", "import", str(_rights(tmp_path)), *args, env=env)
        assert result.returncode == 3 and "impersonation_refused" in result.stderr
    refusals = _audit(home)
    assert [(a, act, p["code"]) for a, act, p in refusals] == [("rita.rights", "identity.refused",
                                                               "impersonation_refused")] * 2
    assert refusals[0][2]["principal"]["via"] == f"os:{ME}"
    with connect(home / "linernotes.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM deals").fetchone() == (0,)

    (home / "roles.yaml").write_text(f"users:\n  ops:\n    roles: [admin]\n    os_users: [{ME}]\n"
                                     "  rita.rights: [rights_team]\n", encoding="utf-8")
    result = _run(home, "rights", "import", str(_rights(tmp_path)), "--actor", "rita.rights")
    assert result.returncode == 0, result.stderr
    actor, action, payload = _audit(home)[-1]
    assert (actor, action) == ("rita.rights", "rights.import")
    assert payload["principal"] == {"name": "rita.rights", "method": "admin_as", "via": f"ops (os:{ME})"}


@pytest.mark.parametrize("roles", ["users:\n  rita.rights: [rights_team]\n", None, "users: [not, a, mapping]\n"],
                         ids=["account-not-mapped", "no-roles-file", "broken-roles-file"])
def test_an_account_the_roles_file_does_not_map_changes_nothing(tmp_path: Path, roles: str | None) -> None:
    home = _home(tmp_path, roles or "")
    if roles is None:
        (home / "roles.yaml").unlink()
    result = _run(home, "rights", "import", str(_rights(tmp_path)), "--actor", "rita.rights")
    assert result.returncode == 3
    code = "unknown_os_user" if roles and "rita" in roles else "roles_unavailable"
    assert code in result.stderr
    [(actor, action, payload)] = _audit(home)
    assert (actor, action, payload["code"]) == ("rita.rights", "identity.refused", code)
    with connect(home / "linernotes.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM deals").fetchone() == (0,)
        assert con.execute("SELECT count(*) FROM parties").fetchone() == (0,)


def test_reading_needs_no_identity(tmp_path: Path) -> None:
    home = _home(tmp_path, "users: {}\n")
    result = _run(home, "audit", "verify")
    assert result.returncode == 0 and "intact" in result.stdout

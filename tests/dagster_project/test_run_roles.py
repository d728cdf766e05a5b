"""Dagster runs act as the code location's service account, or as the person their config names; both are
checked against roles.yaml like anyone else, and a refusal fails the run with nothing written."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from assets.enforce import rights_decisions
from assets.release import training_release
from dagster_project.resources import LedgerResource
from store.database import connect
from store.home import Home
from tests.licensing.test_revocation import GEN, _catalog
from tests.roles import write_test_roles


def _materialize(instance: dg.DagsterInstance, ledger: LedgerResource, proposed_by: str) -> dg.ExecuteInJobResult:
    instance.add_dynamic_partitions("releases", [f"rel-{proposed_by}"])
    return dg.materialize([training_release], instance=instance, resources={"ledger": ledger},
                          partition_key=f"rel-{proposed_by}", raise_on_error=False,
                          run_config={"ops": {"training_release": {"config": {"proposed_by": proposed_by,
                                                                              "purpose": GEN, "territory": "DE"}}}})


def test_a_run_configured_with_a_user_lacking_the_role_is_refused(tmp_path: Path) -> None:
    home = Home.from_env(tmp_path / "home").ensure()
    write_test_roles(home.root)
    with connect(home.db_path) as con:
        _catalog(con, tmp_path)
    ledger = LedgerResource(home=str(home.root))
    with dg.DagsterInstance.ephemeral() as instance:
        refused = _materialize(instance, ledger, "rita")  # rights team, not an ML engineer
        assert not refused.success
        [failure] = [e for e in refused.all_events if e.is_step_failure]
        assert "role_missing" in str(failure.event_specific_data.error) or "may not release.propose" in str(  # type: ignore[union-attr]
            failure.event_specific_data.error)  # type: ignore[union-attr]
        with connect(home.db_path, read_only=True) as con:
            assert con.execute("SELECT count(*) FROM releases").fetchone() == (0,)
            actor, payload = con.execute("SELECT actor, payload FROM audit_log WHERE action = 'release.propose.refused'"
                                         ).fetchone()
            assert actor == "rita" and '"via":"linernotes-pipeline"' in payload
        ok = _materialize(instance, ledger, "mina")
        assert ok.success
    with connect(home.db_path, read_only=True) as con:
        assert con.execute("SELECT proposed_by FROM releases").fetchall() == [("mina",)]
        principal = con.execute("SELECT json_extract(payload, '$.principal') FROM audit_log "
                                "WHERE action = 'release.propose'").fetchone()[0]
        assert principal == '{"method":"service_for","name":"mina","via":"linernotes-pipeline"}'


def test_the_service_account_must_be_a_service_of_the_roles_file(tmp_path: Path) -> None:
    home = Home.from_env(tmp_path / "home").ensure()
    write_test_roles(home.root)
    with connect(home.db_path) as con:
        _catalog(con, tmp_path)
    for account, passes in (("linernotes-pipeline", True), ("rita", False), ("svc-nobody", False)):
        ledger = LedgerResource(home=str(home.root), service_account=account)
        result = dg.materialize([rights_decisions], resources={"ledger": ledger}, raise_on_error=False,
                                run_config={"ops": {"rights_decisions": {"config": {"purposes": [GEN]}}}})
        assert result.success is passes, account
    with connect(home.db_path, read_only=True) as con:
        refused = con.execute("SELECT actor, json_extract_string(payload, '$.code') FROM audit_log "
                              "WHERE action = 'rights.evaluate.refused' ORDER BY seq").fetchall()
    assert refused == [("rita", "unknown_service"), ("svc-nobody", "unknown_service")]

"""The one write path and what `audit verify` catches when it is bypassed.

A real ledger is built through the domain commands (rights import, evaluation, release proposal and
approval); then each attack edits the DuckDB file with plain SQL, as anyone holding the file could,
and `verify_ledger` must name what was inserted, edited or deleted.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date
from pathlib import Path

import duckdb
import pytest

from licensing.importers.tabular import import_rights_file
from licensing.policy import load_policy
from licensing.releases import ApprovalRefused, approve_release, propose_release
from lineage.integrity import verify_ledger
from schemas.canonical import sha256_text
from store import audit
from store.audit import Checkpoint, _entry_hash, checkpoint
from store.database import connect
from store.ledger import LedgerError, command
from store.roles import Principal, RoleRefused
from store.sealing import sealed_tables
from store.signing import head_message, load_key
from tests.licensing.helpers import add_track, consent, deal, write_rights

ON = date(2026, 3, 1)
GEN = "UseForTrainingGenerativeAI"
ISRCS = ["QZXXX2600001", "QZXXX2600002"]


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    """Rights, two tracks, an evaluation and one proposed release (not approved): all through the commands."""
    db = tmp_path / "ledger.duckdb"
    with connect(db) as con:
        import_rights_file(con, write_rights(tmp_path / "rights.json", ["P-label", "P-a", "P-b"],
                                             [deal("D1", ISRCS, valid_to="2027-12-31")],
                                             [consent("C-a", "P-a"), consent("C-b", "P-b")]), actor="rita")
        add_track(con, 1, ISRCS[0], [("P-a", "MainArtist")])
        add_track(con, 2, ISRCS[1], [("P-b", "MainArtist")])
        propose_release(con, purpose=GEN, territory="DE", on_date=ON, actor="mina", policy=load_policy(),
                        release_id="rel-1")
        assert verify_ledger(con).ok, [f.describe() for f in verify_ledger(con).findings]
    return db


def _findings(db: Path, **kwargs: object) -> list[str]:
    with connect(db, read_only=True) as con:
        return [f.describe() for f in verify_ledger(con, **kwargs).findings]  # type: ignore[arg-type]


def test_a_forged_approval_with_plain_sql_is_named(ledger: Path) -> None:
    with duckdb.connect(str(ledger)) as raw:
        raw.execute("UPDATE releases SET status = 'approved' WHERE release_id = 'rel-1'")
        raw.execute("INSERT INTO approvals (release_id, actor, action, comment, recorded_at) "
                    "VALUES ('rel-1', 'rita', 'approve', 'looks fine', now())")
    found = _findings(ledger)
    assert any(f.startswith("sealed_row releases release_id=rel-1") and "edited outside the write path" in f
               for f in found), found
    assert any(f.startswith("sealed_row approvals release_id=rel-1, actor=rita") and "no seal" in f for f in found)


def test_an_edited_approval_actor_is_named(ledger: Path) -> None:
    with connect(ledger) as con:
        approve_release(con, "rel-1", actor="rita", comment="checked", on_date=ON)
    with duckdb.connect(str(ledger)) as raw:
        raw.execute("UPDATE approvals SET actor = 'ravi'")
    [finding] = _findings(ledger)
    assert finding.startswith("sealed_row approvals release_id=rel-1, actor=ravi") and "edited" in finding


def test_a_forged_row_with_a_recomputed_seal_still_breaks_its_audit_entry(ledger: Path) -> None:
    """Someone who knows how rows are hashed inserts an approval with a valid row hash, bound to a real entry."""
    with connect(ledger) as con:
        approve_release(con, "rel-1", actor="rita", comment="checked", on_date=ON)
        seq = con.execute("SELECT audit_seq FROM approvals").fetchone()[0]
        table = sealed_tables(con)["approvals"]
        con.execute(f"INSERT INTO approvals SELECT *, {table.hash_sql('c')}, ? FROM (SELECT 'rel-1' AS release_id, "
                    "'ravi' AS actor, 'approve' AS action, 'me too' AS comment, now() AS recorded_at) c", [seq])
    found = _findings(ledger)
    assert any("approvals release_id=rel-1, actor=ravi" in f and f"audit entry #{seq}" in f
               and "does not list it" in f for f in found), found


@pytest.mark.parametrize("sql,table,problem", [
    ("UPDATE decisions SET allowed = NOT allowed", "decisions", "edited"),
    ("DELETE FROM decisions WHERE isrc = 'QZXXX2600001'", "decisions", "deleted outside the write path"),
    ("UPDATE deals SET valid_to = DATE '2099-12-31'", "deals deal_id=D1", "edited"),
    ("DELETE FROM consents WHERE consent_id = 'C-b'", "consents", "deleted outside the write path"),
    ("UPDATE rights_controllers SET share = 100.0 WHERE false", None, None),
    ("UPDATE release_tracks SET decision_id = 'dec_forged'", "release_tracks", "edited"),
], ids=["decision-flipped", "decision-deleted", "deal-extended", "consent-deleted", "nothing-changed",
        "release-track-repointed"])
def test_edited_or_deleted_rows_that_decide_training_are_named(ledger: Path, sql: str, table: str | None,
                                                               problem: str | None) -> None:
    with duckdb.connect(str(ledger)) as raw:
        raw.execute(sql)
    found = _findings(ledger)
    if table is None:
        assert found == []
        return
    assert any(f.startswith(f"sealed_row {table}") and problem in f for f in found), found


def test_current_decisions_cannot_be_flipped_behind_the_recorded_decision(ledger: Path) -> None:
    with duckdb.connect(str(ledger)) as raw:
        raw.execute("UPDATE current_decisions SET allowed = NOT allowed WHERE track_id = 'trk_0000000000000001'")
    found = _findings(ledger)
    assert any(f.startswith("ledger_row current_decisions trk_0000000000000001") for f in found), found


def test_a_truncated_audit_log_is_named(ledger: Path) -> None:
    with duckdb.connect(str(ledger)) as raw:
        top = raw.execute("SELECT max(seq) FROM audit_log").fetchone()[0]
        raw.execute("DELETE FROM audit_log WHERE seq >= ?", [top - 1])
    found = _findings(ledger)
    assert any(f"audit head #{top}" in f and "truncated" in f for f in found), found
    assert any("which does not exist" in f for f in found), found  # rows bound to the removed entries


def _rewrite_history(db: Path, from_seq: int) -> None:
    """A consistent rewrite by someone holding the file and the key: a payload changed, every later hash
    recomputed and every head re-signed, so the chain and the signatures verify on their own."""
    with connect(db) as con:
        key = load_key(db.parent)
        ident = audit.ledger_id(con)
        rows = con.execute("SELECT seq, recorded_at, actor, action, subject, payload, prev_hash FROM audit_log "
                           "WHERE seq >= ? ORDER BY seq", [from_seq]).fetchall()
        prev = rows[0][6]
        for i, (seq, at, actor, action, subject, payload, _) in enumerate(rows):
            text = payload if i else json.dumps({**json.loads(payload), "comment": "rewritten"}, sort_keys=True,
                                                separators=(",", ":"))
            sha = sha256_text(text)
            entry = _entry_hash(seq, at.astimezone(UTC).isoformat(), actor, action, subject, sha, prev)
            con.execute("UPDATE audit_log SET payload = ?, payload_sha256 = ?, prev_hash = ?, entry_hash = ? "
                        "WHERE seq = ?", [text, sha, prev, entry, seq])
            con.execute("UPDATE audit_heads SET entry_hash = ?, signature = ? WHERE seq = ?",
                        [entry, key.sign(head_message(ident, seq, entry)), seq])
            prev = entry


def test_a_consistent_rewrite_passes_alone_but_not_against_a_checkpoint_kept_elsewhere(ledger: Path,
                                                                                      tmp_path: Path) -> None:
    with connect(ledger, read_only=True) as con:
        kept = checkpoint(con)
    assert kept is not None and kept.signature_ok()
    elsewhere = tmp_path / "auditor" / "head.json"
    elsewhere.parent.mkdir()
    elsewhere.write_text(kept.model_dump_json(), encoding="utf-8")
    with connect(ledger) as con:  # work goes on: appending is fine
        approve_release(con, "rel-1", actor="rita", comment="checked", on_date=ON)
    cp = Checkpoint.model_validate_json(elsewhere.read_text(encoding="utf-8"))
    assert _findings(ledger, against=cp) == []
    _rewrite_history(ledger, from_seq=2)
    with connect(ledger, read_only=True) as con:
        assert audit.verify_chain(con).ok and audit.verify_heads(con) == []  # self-consistent
    found = _findings(ledger, against=cp)
    assert any(f"audit entry #{cp.seq} is not the one the checkpoint signed" in f for f in found), found
    forged = cp.model_copy(update={"seq": cp.seq + 1})
    assert any("checkpoint's own signature does not verify" in f for f in _findings(ledger, against=forged))


def test_appending_outside_the_write_path_leaves_an_unsigned_head(ledger: Path) -> None:
    with duckdb.connect(str(ledger)) as raw:
        seq, prev = raw.execute("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        audit.append(raw, seq=seq + 1, prev=prev, actor="mallory", action="release.approve", subject="rel-1",
                     payload={})
    found = _findings(ledger)
    assert any(f"#{seq + 1}..#{seq + 1} carry no signed head" in f for f in found), found


def test_a_command_is_one_transaction_role_checked_first(ledger: Path) -> None:
    with connect(ledger) as con:
        before = con.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        with pytest.raises(RoleRefused) as refused, command(con, "mina", "release.approve", "rel-1") as w:
            w.insert("approvals", [{"release_id": "rel-1", "actor": "mina", "action": "approve", "comment": "x"}])
        assert refused.value.code == "role_missing"
        with pytest.raises(RuntimeError, match="half way"), command(con, "rita", "release.approve", "rel-1") as w:
            w.insert("approvals", [{"release_id": "rel-1", "actor": "rita", "action": "approve", "comment": "x",
                                    "recorded_at": ON}])
            raise RuntimeError("half way")
        assert con.execute("SELECT count(*) FROM approvals").fetchone() == (0,)
        # the refusal is on the record, the failed command is not
        assert con.execute("SELECT count(*) FROM audit_log").fetchone()[0] == before + 1
        assert con.execute("SELECT action FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone() == (
            "release.approve.refused",)
        with command(con, "rita", "release.approve", "rel-1") as w:
            with pytest.raises(LedgerError, match="sealed"):
                w.execute("UPDATE approvals SET actor = 'x'")
            with pytest.raises(LedgerError, match="already open"), command(con, "rita", "release.approve", "x"):
                pass
        assert verify_ledger(con).ok


def test_an_actor_not_in_the_roles_file_is_refused_and_recorded(ledger: Path) -> None:
    with connect(ledger) as con:
        with pytest.raises(ApprovalRefused) as refused:
            approve_release(con, "rel-1", actor="stranger", comment="let me in", on_date=ON)
        assert refused.value.code == "unknown_user" and "not a user" in refused.value.message
        row = con.execute("SELECT actor, action, json_extract_string(payload, '$.code') FROM audit_log "
                          "ORDER BY seq DESC LIMIT 1").fetchone()
        assert row == ("stranger", "release.approve.refused", "unknown_user")
        with pytest.raises(ApprovalRefused) as service:  # a person cannot pass as a service account
            approve_release(con, "rel-1", actor=Principal(name="rita", method="service_for", via="rita"),
                            comment="ok", on_date=ON)
        assert service.value.code == "unknown_service"
        assert con.execute("SELECT status FROM releases").fetchone() == ("proposed",)


def test_a_copied_data_directory_verifies_against_its_own_files(ledger: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(ledger.parent, copy, ignore=shutil.ignore_patterns("copy"))
    with connect(copy / "ledger.duckdb", read_only=True) as con:
        paths = [p for (p,) in con.execute("SELECT path FROM rights_imports").fetchall()]
        assert paths and all(not Path(p).is_absolute() for p in paths)  # relative to the data directory
        assert verify_ledger(con).ok


def test_a_deleted_row_of_a_large_command_is_caught_by_its_digest(tmp_path: Path) -> None:
    """A command writing more rows than it lists commits to their count and digest: deleting one is still named."""
    from licensing.evaluate import evaluate_catalog
    from licensing.synthetic import generate_catalog

    db = tmp_path / "big.duckdb"
    with connect(db) as con:
        generate_catalog(con, tracks=400, seed=7, on_date=ON)
        evaluate_catalog(con, load_policy(), purpose=GEN, territory="DE", on_date=ON, actor="ops")
        seq = con.execute("SELECT max(audit_seq) FROM decisions").fetchone()[0]
        assert con.execute("SELECT count(*) FROM decisions").fetchone()[0] == 400
        assert verify_ledger(con).ok
    with duckdb.connect(str(db)) as raw:
        raw.execute("DELETE FROM decisions WHERE decision_id = (SELECT min(decision_id) FROM decisions)")
    found = _findings(db)
    assert any(f.startswith(f"sealed_row decisions audit entry #{seq}") and "400 recorded, 399 found" in f
               for f in found), found


def test_checkpoint_and_verify_against_through_the_cli(ledger: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dagster_project.cli import app

    runner = CliRunner()
    (ledger.parent / "linernotes.duckdb").unlink(missing_ok=True)
    shutil.copy(ledger, ledger.parent / "linernotes.duckdb")
    home = str(ledger.parent)
    head = tmp_path / "kept" / "head.json"
    head.parent.mkdir()
    result = runner.invoke(app, ["audit", "checkpoint", "--home", home, "--out", str(head)])
    assert result.exit_code == 0 and json.loads(result.output)["seq"] == json.loads(head.read_text())["seq"]
    result = runner.invoke(app, ["audit", "verify", "--home", home, "--against", str(head)])
    assert result.exit_code == 0 and "only appended to since checkpoint" in result.output
    with duckdb.connect(str(ledger.parent / "linernotes.duckdb")) as raw:
        raw.execute("UPDATE audit_log SET subject = 'rel-2' WHERE seq = 1")
    result = runner.invoke(app, ["audit", "verify", "--home", home, "--against", str(head)])
    assert result.exit_code == 1 and "first mismatch: audit_entry audit_log seq 1" in " ".join(result.output.split())

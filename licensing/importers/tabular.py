"""CSV and JSON rights files: licenses (deals), consents and parties.

JSON: one object ``{"schema_version": 1, "parties": [...], "deals": [...], "consents": [...]}``
whose records follow :class:`schemas.rights.Party`, :class:`~schemas.rights.Deal` and
:class:`~schemas.rights.Consent` (JSON Schema in ``schemas/jsonschema/rights_file.json``).

CSV: one kind of record per file, recognised by its header (see ``CSV_HEADERS``):

* parties: ``party_id,name,isni,ipi``
* licenses: ``deal_id,licensor,license,isrc,use_types,territories_include,territories_exclude,
  valid_from,valid_to,conditions,rights_controller,share`` -- one row per (deal, ISRC, rights
  controller); rows with the same ``deal_id`` form one deal and must agree on the deal columns.
  List cells are ``;``-separated; ``rights_controller``/``share`` may be empty.
* consents: the :class:`~schemas.rights.Consent` field names, timestamps in ISO 8601 with a zone.

Each bad record is written to ``quarantine`` (stage ``rights_import``) with the file, the record
and the reason; the good rest is imported in one transaction. Re-importing a file with the same
content changes nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from pydantic import BaseModel, ValidationError

from licensing import records
from licensing.evaluate import redecide
from licensing.importers import ImportReport, RecordError
from licensing.parties import Resolution, canonical_party, resolve_parties
from licensing.records import Supersession
from schemas.rights import Consent, Deal, Party, Work
from store.ledger import authorize, command
from store.paths import ledger_ref
from store.quarantine import Rejection, quarantine
from store.roles import Principal, RoleBook

MAX_FILE_BYTES = 256 * 1024 * 1024

CSV_HEADERS: dict[str, tuple[str, ...]] = {
    "parties": ("party_id", "name", "isni", "ipi"),
    "licenses": ("deal_id", "licensor", "license", "isrc", "use_types", "territories_include",
                 "territories_exclude", "valid_from", "valid_to", "conditions", "rights_controller", "share"),
    "consents": ("consent_id", "party_id", "scope", "scope_ref", "ai_training", "ai_generative_training",
                 "data_mining", "ai_inference", "evidence_ref", "evidence_sha256", "granted_at", "revoked_at"),
}
_DEAL_COLUMNS = ("licensor", "license", "use_types", "territories_include", "territories_exclude",
                 "valid_from", "valid_to", "conditions")


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        parts.append(f"{where}: {err['msg']}" if where else err["msg"])
    return "; ".join(parts)


def _reason_for(exc: ValidationError) -> str:
    text = _validation_message(exc).lower()
    for needle, code in (("publishing shares", "publishing_shares_exceed"), ("time zone", "invalid_timestamp"), ("'allowed', 'notallowed'", "invalid_consent_value"),
                         ("isrc", "invalid_isrc"), ("iswc", "invalid_iswc"), ("isni", "invalid_isni"),
                         ("ipi", "invalid_ipi"), ("territor", "invalid_territory"), ("share", "invalid_share"),
                         ("use_types", "invalid_use_type"), ("valid_to", "invalid_validity_period"),
                         ("evidence", "consent_evidence_invalid")):
        if needle in text:
            return code
    return "invalid_record"


class _Parsed:
    def __init__(self) -> None:
        self.parties: list[tuple[str, dict[str, Any]]] = []
        self.deals: list[tuple[str, dict[str, Any]]] = []
        self.consents: list[tuple[str, dict[str, Any]]] = []
        self.works: list[tuple[str, dict[str, Any]]] = []
        self.errors: list[RecordError] = []


def _parse_json(path: Path, text: str) -> _Parsed:
    parsed = _Parsed()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _FileRejected("unreadable_json", f"not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise _FileRejected("unreadable_json", "not valid JSON: nested too deeply") from exc
    if not isinstance(data, dict):
        raise _FileRejected("invalid_rights_file", "top level must be an object with parties/deals/consents")
    if data.get("schema_version") != 1:
        raise _FileRejected("unsupported_schema_version",
                            f"schema_version must be 1, found {data.get('schema_version')!r}")
    unknown = set(data) - {"schema_version", "parties", "deals", "consents", "works"}
    if unknown:
        raise _FileRejected("invalid_rights_file", f"unknown top-level keys: {sorted(unknown)}")
    for key, target in (("parties", parsed.parties), ("deals", parsed.deals), ("consents", parsed.consents),
                        ("works", parsed.works)):
        items = data.get(key, [])
        if not isinstance(items, list):
            raise _FileRejected("invalid_rights_file", f"{key!r} must be a list")
        id_key = {"parties": "party_id", "deals": "deal_id", "consents": "consent_id", "works": "iswc"}[key]
        for i, item in enumerate(items):
            label = item.get(id_key) if isinstance(item, dict) else None
            ref = f"{path}#/{key}/{i}" + (f" ({label})" if label else "")
            if not isinstance(item, dict):
                parsed.errors.append(RecordError(source_ref=ref, reason_code="invalid_record", message="not an object"))
                continue
            if not _encodable(item):
                parsed.errors.append(RecordError(source_ref=ref.encode("utf-8", "backslashreplace").decode("utf-8"),
                                                 reason_code="invalid_text",
                                                 message="contains text that is not valid Unicode (lone surrogates)"))
                continue
            target.append((ref, item))
    return parsed


def _encodable(value: Any) -> bool:
    """False when any string inside ``value`` cannot be stored as UTF-8 (JSON allows lone surrogates)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return True
    if isinstance(value, dict):
        return all(_encodable(k) and _encodable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_encodable(v) for v in value)
    return True


def _split(cell: str | None) -> list[str]:
    return [part.strip() for part in (cell or "").split(";") if part.strip()]


def _blank(cell: str | None) -> str | None:
    return cell.strip() if cell and cell.strip() else None


def _parse_csv(path: Path, text: str) -> _Parsed:
    parsed = _Parsed()
    reader = csv.DictReader(io.StringIO(text))
    try:
        header = tuple(h.strip() for h in (reader.fieldnames or ()))
    except csv.Error as exc:
        raise _FileRejected("unreadable_csv", f"header: {exc}") from exc
    kind = next((k for k, cols in CSV_HEADERS.items() if set(cols) == set(header)), None)
    if kind is None:
        raise _FileRejected("unknown_csv_header",
                            f"header {list(header)} matches none of: "
                            + "; ".join(f"{k}={','.join(v)}" for k, v in CSV_HEADERS.items()))
    if len(header) != len(set(header)):
        raise _FileRejected("unknown_csv_header", f"header {list(header)} names a column twice")
    rows: list[tuple[str, dict[str, Any]]] = []
    line = 1
    try:
        for line, row in enumerate(reader, start=2):
            ref = f"{path}:{reader.line_num or line}"
            if None in row:  # more cells than the header has columns
                parsed.errors.append(RecordError(source_ref=ref, reason_code="invalid_record",
                                                 message=f"{len(row[None])} cell(s) beyond the {len(header)} columns"))
                continue
            if any(v is None for v in row.values()):
                parsed.errors.append(RecordError(source_ref=ref, reason_code="invalid_record",
                                                 message=f"fewer cells than the {len(header)} columns"))
                continue
            rows.append((ref, {k.strip(): v for k, v in row.items()}))
    except csv.Error as exc:
        raise _FileRejected("unreadable_csv", f"after line {line}: {exc}") from exc
    if kind == "parties":
        parsed.parties = [(ref, {"party_id": r["party_id"], "name": r["name"], "isni": _blank(r["isni"]),
                                 "ipi": _blank(r["ipi"])}) for ref, r in rows]
    elif kind == "consents":
        parsed.consents = [(ref, {k: _blank(v) for k, v in r.items()}) for ref, r in rows]
    else:
        grouped: dict[str, list[tuple[str, dict[str, str]]]] = {}
        for ref, row in rows:
            deal_id = (row.get("deal_id") or "").strip()
            if not deal_id:
                parsed.errors.append(RecordError(source_ref=ref, reason_code="invalid_record", message="deal_id is empty"))
                continue
            grouped.setdefault(deal_id, []).append((ref, row))
        for deal_id, group in grouped.items():
            refs = ", ".join(ref.rsplit(":", 1)[1] for ref, _ in group)
            ref = f"{path}:{refs} ({deal_id})"
            first = group[0][1]
            clash = [c for c in _DEAL_COLUMNS if any((row[c] or "").strip() != (first[c] or "").strip() for _, row in group)]
            if clash:
                parsed.errors.append(RecordError(source_ref=ref, reason_code="inconsistent_deal_rows",
                                                 message=f"rows of deal {deal_id} disagree on {clash}"))
                continue
            controllers: list[dict[str, Any]] = []
            bad_share = False
            for row_ref, row in group:
                if _blank(row["rights_controller"]):
                    try:
                        share = float(row["share"])
                    except (TypeError, ValueError):
                        parsed.errors.append(RecordError(source_ref=f"{row_ref} ({deal_id})", reason_code="invalid_share",
                                                         message=f"share {row['share']!r} is not a number"))
                        bad_share = True
                        continue
                    controllers.append({"party_id": row["rights_controller"].strip(), "isrc": row["isrc"], "share": share})
            if bad_share:
                continue
            parsed.deals.append((ref, {
                "deal_id": deal_id, "licensor": (first["licensor"] or "").strip(), "license": _blank(first["license"]),
                "isrcs": list(dict.fromkeys(row["isrc"] for _, row in group)),
                "use_types": _split(first["use_types"]),
                "territories": {"include": _split(first["territories_include"]),
                                "exclude": _split(first["territories_exclude"])},
                "valid_from": _blank(first["valid_from"]), "valid_to": _blank(first["valid_to"]),
                "conditions": _split(first["conditions"]), "rights_controllers": controllers,
            }))
    return parsed


class _FileRejected(Exception):
    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message


def _validate(items: list[tuple[str, dict[str, Any]]], model: type[BaseModel],
              errors: list[RecordError]) -> list[tuple[str, Any]]:
    good = []
    seen: set[str] = set()
    for ref, item in items:
        key = str(item.get("deal_id") or item.get("consent_id") or item.get("party_id") or item.get("iswc") or "")
        if key and key in seen:
            errors.append(RecordError(source_ref=ref, reason_code="duplicate_record",
                                      message=f"{key} appears more than once in this file"))
            continue
        seen.add(key)
        try:
            good.append((ref, model.model_validate(item)))
        except ValidationError as exc:
            errors.append(RecordError(source_ref=ref, reason_code=_reason_for(exc), message=_validation_message(exc)))
    return good


def import_rights_file(con: duckdb.DuckDBPyConnection, path: str | Path, *, actor: Principal | str,
                       roles: RoleBook | None = None, supersede: Supersession | None = None,
                       match_names: bool = False) -> ImportReport:
    """Import one JSON or CSV rights file in one ``rights.import`` command; bad records are quarantined.

    Each record is written as a rights event (:mod:`licensing.records`); a record that would loosen
    a restriction recorded since (an early deal end, a revoked or refused consent, an excluded
    territory) is refused as ``rights_conflict`` naming that event, unless ``supersede`` names it.
    The catalog tracks the file changes are re-decided in the same command.
    """
    path = Path(path)
    kind = "csv" if path.suffix.lower() == ".csv" else "json"
    subject = ledger_ref(con, path)
    if supersede is not None:
        authorize(con, actor, "rights.supersede", subject, roles=roles)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise _FileRejected("file_too_large", f"larger than {MAX_FILE_BYTES} bytes")
        raw = path.read_bytes()
        file_sha = hashlib.sha256(raw).hexdigest()
        text = raw.decode("utf-8-sig")
    except OSError as exc:
        return _reject(con, path, kind, None, "unreadable_file", str(exc), actor, roles)
    except UnicodeDecodeError as exc:
        return _reject(con, path, kind, None, "not_utf8", f"not UTF-8 text: {exc}", actor, roles)
    except _FileRejected as exc:
        return _reject(con, path, kind, None, exc.reason_code, exc.message, actor, roles)

    if _imported_cleanly(con, file_sha, kind):
        return ImportReport(path=str(path), kind=kind, file_sha256=file_sha, already_imported=True)
    try:
        parsed = _parse_csv(path, text) if kind == "csv" else _parse_json(path, text)
    except _FileRejected as exc:
        return _reject(con, path, kind, file_sha, exc.reason_code, exc.message, actor, roles)

    errors = list(parsed.errors)
    parties = _validate(parsed.parties, Party, errors)
    deals = _validate(parsed.deals, Deal, errors)
    consents = _validate(parsed.consents, Consent, errors)
    works = _validate(parsed.works, Work, errors)
    source = f"{kind}:{path.name}"

    with command(con, actor, "rights.import", subject, roles=roles) as w:
        resolution = resolve_parties(w.con, [p for _, p in parties], match_names=match_names)
        deals = [(ref, _remap_deal(w.con, resolution, deal)) for ref, deal in deals]
        consents = [(ref, c.model_copy(update={"party_id": resolution.ids.get(c.party_id)
                                               or canonical_party(w.con, c.party_id)})) for ref, c in consents]
        known = records.known_party_ids(con) | set(resolution.parties)
        events = records.upsert_parties(w, list(resolution.parties.values()), source=source).events
        written_deals, written_consents, affected, unchanged = [], [], set(), 0
        for ref, deal in deals:
            missing = sorted({deal.licensor, *(rc.party_id for rc in deal.rights_controllers)} - known)
            if missing:
                errors.append(RecordError(source_ref=ref, reason_code="unknown_party",
                                          message=f"deal {deal.deal_id} names unknown parties {missing}: list them under parties"))
                continue
            try:
                event = records.apply_deal(w, deal, source=source, supersede=supersede)
            except records.RightsConflict as exc:
                errors.append(RecordError(source_ref=ref, reason_code="rights_conflict", message=exc.message))
                continue
            if event:
                events.append(event)
                written_deals.append(deal.deal_id)
                affected |= records.event_isrcs(w.con, event)
            else:
                unchanged += 1
        for ref, consent in consents:
            if consent.party_id not in known:
                errors.append(RecordError(source_ref=ref, reason_code="unknown_party",
                                          message=f"consent {consent.consent_id} names unknown party {consent.party_id}"))
                continue
            try:
                event = records.apply_consent(w, consent, source=source, supersede=supersede)
            except records.RightsConflict as exc:
                errors.append(RecordError(source_ref=ref, reason_code="rights_conflict", message=exc.message))
                continue
            if event:
                events.append(event)
                written_consents.append(consent.consent_id)
                affected |= records.event_isrcs(w.con, event)
            else:
                unchanged += 1
        written_works = []
        for ref, work in works:
            work = work.model_copy(update={"contributors": tuple(
                c.model_copy(update={"party_id": resolution.ids.get(c.party_id) or canonical_party(w.con, c.party_id)})
                for c in work.contributors)})
            missing = sorted({c.party_id for c in work.contributors} - known)
            if missing:
                errors.append(RecordError(source_ref=ref, reason_code="unknown_party",
                                          message=f"work {work.iswc} names unknown parties {missing}: list them under parties"))
                continue
            try:
                event = records.apply_work(w, work, source=source, supersede=supersede)
            except records.RightsConflict as exc:
                errors.append(RecordError(source_ref=ref, reason_code="rights_conflict", message=exc.message))
                continue
            if event:
                events.append(event)
                written_works.append(work.iswc)
                affected |= records.event_isrcs(w.con, event)
            else:
                unchanged += 1
        quarantine(w, [Rejection(e.source_ref, e.reason_code, e.message) for e in errors], stage="rights_import")
        summary = {"parties": len(parties), "works": written_works, "parties_matched": resolution.matched, "deals": written_deals, "consents": written_consents,
                   "unchanged": unchanged, "errors": len(errors),
                   "conflicts": sum(e.reason_code == "rights_conflict" for e in errors), "file_sha256": file_sha,
                   "events": events}
        if supersede is not None:
            summary["supersede"] = {"events": sorted(supersede.event_ids), "evidence_ref": supersede.evidence_ref}
        w.upsert("rights_imports", [{"file_sha256": file_sha, "kind": kind, "path": subject, "imported_by": w.actor,
                                     "imported_at": datetime.now(UTC), "summary": json.dumps(summary)}],
                 key=["file_sha256", "kind"])
        summary["redecided"] = redecide(w, affected)
        w.payload.update(summary)
    return ImportReport(path=str(path), kind=kind, file_sha256=file_sha, parties=len(parties),
                        deals=len(written_deals), consents=len(written_consents), unchanged=unchanged,
                        errors=tuple(errors))


def _remap_deal(con: duckdb.DuckDBPyConnection, resolution: Resolution, deal: Deal) -> Deal:
    def m(party_id: str) -> str:
        return resolution.ids.get(party_id) or canonical_party(con, party_id)

    return deal.model_copy(update={"licensor": m(deal.licensor), "rights_controllers": tuple(
        rc.model_copy(update={"party_id": m(rc.party_id)}) for rc in deal.rights_controllers)})


def _imported_cleanly(con: duckdb.DuckDBPyConnection, file_sha: str, kind: str) -> bool:
    """Whether this very file was imported before without a conflict (a file that met one may come again,
    with ``--supersede``)."""
    row = con.execute("SELECT json_extract(summary, '$.conflicts')::INTEGER FROM rights_imports "
                      "WHERE file_sha256 = ? AND kind = ?", [file_sha, kind]).fetchone()
    return row is not None and not row[0]


def _reject(con: duckdb.DuckDBPyConnection, path: Path, kind: str, file_sha: str | None,
            reason_code: str, message: str, actor: Principal | str, roles: RoleBook | None) -> ImportReport:
    err = RecordError(source_ref=str(path), reason_code=reason_code, message=message)
    with command(con, actor, "rights.import", ledger_ref(con, path), roles=roles,
                 record_as="rights.import.rejected") as w:
        quarantine(w, [Rejection(err.source_ref, reason_code, message)], stage="rights_import")
        w.payload.update({"rejected": True, "reason_code": reason_code, "message": message, "file_sha256": file_sha})
    return ImportReport(path=str(path), kind=kind, file_sha256=file_sha, rejected=True, errors=(err,))

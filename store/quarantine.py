"""The quarantine: every rejected input, written down with its reason, never dropped.

The one writer of the ``quarantine`` table; each stage calls it from inside its own command, so
a rejection is sealed and audited with the batch that made it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from store.ledger import Writer


@dataclass(frozen=True)
class Rejection:
    """One rejected file or record: where it was, why (a reason code) and what to fix."""

    source_ref: str
    reason_code: str
    message: str


def quarantine(w: Writer, rejections: Iterable[Rejection], *, stage: str, delivery_id: str | None = None) -> int:
    """Write each rejection to ``quarantine``; return how many."""
    now = datetime.now(UTC)
    return w.insert("quarantine", [{"delivery_id": delivery_id, "stage": stage, "source_ref": r.source_ref,
                                    "reason_code": r.reason_code, "message": r.message, "recorded_at": now}
                                   for r in rejections])


def resolve_stage(w: Writer, *, stage: str, delivery_id: str | None = None, source_refs: Iterable[str] | None = None,
                  prefix: str | None = None) -> int:
    """Retire a stage's earlier rejections before it runs again (kept in history, out of the current view)."""
    where, params = "stage = ? AND delivery_id IS NOT DISTINCT FROM ?", [stage, delivery_id]
    if source_refs is not None:
        where += " AND source_ref IN (SELECT unnest(?::VARCHAR[]))"
        params.append(sorted(source_refs))
    if prefix is not None:
        where += " AND (source_ref = ? OR starts_with(source_ref, ?))"
        params += [prefix, prefix + "#"]
    return w.supersede("quarantine", where, params)

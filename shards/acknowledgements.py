"""Acknowledgements of a release refusal, as the shards package records them (``shard_acknowledgements``).

The gate (:mod:`licensing.gate`) decides whether an acknowledgement goes past a refusal; the writer
and the loader write the one it accepted here, inside their own command.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from schemas.gate import GateDecision
from schemas.shards import AcknowledgementRecord
from store.ledger import Writer


def as_record(decision: GateDecision, context: Literal["build", "load"]) -> AcknowledgementRecord | None:
    """The acknowledgement the gate accepted, as a manifest and the ledger record it; None when none was needed."""
    ack = decision.acknowledgement
    if ack is None:
        return None
    return AcknowledgementRecord(actor=ack.actor, reason=ack.reason, context=context, overridden=ack.overridden,
                                 skipped_track_ids=ack.track_ids, recorded_at=datetime.now(UTC))


def record(w: Writer, ack: AcknowledgementRecord, *, release_id: str, subject: str) -> None:
    """Seal the acknowledgement in ``shard_acknowledgements`` and name it in the command's audit entry."""
    w.insert("shard_acknowledgements", [{
        "release_id": release_id, "context": ack.context, "subject": subject, "actor": ack.actor,
        "reason": ack.reason, "overridden": [str(r) for r in ack.overridden],
        "skipped_track_ids": list(ack.skipped_track_ids), "recorded_at": ack.recorded_at}])
    w.payload["acknowledgement"] = {"actor": ack.actor, "reason": ack.reason, "context": ack.context,
                                    "overridden": [str(r) for r in ack.overridden],
                                    "skipped_track_ids": list(ack.skipped_track_ids)}

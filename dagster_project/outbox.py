"""The outbox's allow-list: the only domain commands a batch from another machine may ask for."""

from __future__ import annotations

from fingerprinting.ledger import apply_fingerprint_batch
from store.outbox import BatchHandler

OUTBOX_HANDLERS: dict[str, BatchHandler] = {
    "fingerprint.store": apply_fingerprint_batch,
}

"""Importers for rights data: DDEX ERN messages and CSV/JSON rights files."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RecordError(BaseModel):
    """One rejected record: where it was, why (a reason code) and what to fix."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source_ref: str
    reason_code: str
    message: str


class ImportReport(BaseModel):
    """What one file contributed to the ledger, and what it did not."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    kind: str
    file_sha256: str | None = None
    rejected: bool = False
    already_imported: bool = False
    parties: int = 0
    recordings: int = 0
    deals: int = 0
    consents: int = 0
    unchanged: int = 0
    errors: tuple[RecordError, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.rejected and not self.errors

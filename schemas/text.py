"""Text that travels with audio in long-form shards, and the licences lyrics need.

Every text row names who wrote it, under which licence and where it came from. Lyrics belong to
the publishing side: they ship only under a :class:`LyricsLicence` on record that covers the
release's purpose, territory and date; the recording's audio licence never covers them.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.identifiers import ISRC, ISWC

SCHEMA_VERSION = 1

TextKind = Literal["caption", "lyrics", "user_caption", "qa"]
# What happened to a track's lyrics in a long-form build; anything but "included" ships none.
LyricsStatus = Literal["included", "not_in_rights_data", "licence_missing", "purpose_not_licensed",
                       "territory_not_licensed", "licence_not_in_force", "licence_revoked"]


class TextEntry(BaseModel):
    """One piece of text about a recording, with its provenance."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: TextKind
    text: str = Field(min_length=1)
    question: str | None = Field(default=None, description="For kind 'qa': the question the text answers")
    author: str = Field(min_length=1, description="Who wrote it (a person, a party, or the template that made it)")
    license: str = Field(min_length=1, description="The licence the text is used under")
    source: str = Field(min_length=1, description="Where it came from (file, licence id, catalog fields)")


class UserText(BaseModel):
    """A line of a user's side file (JSON Lines, keyed by ISRC): a caption or a question and answer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    isrc: ISRC
    kind: Literal["user_caption", "qa"]
    text: str = Field(min_length=1)
    question: str | None = None
    author: str = Field(min_length=1)
    license: str = Field(min_length=1)


class LyricsLicence(BaseModel):
    """A publisher's licence for a recording's lyrics, carrying the lyrics it licenses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    licence_id: str = Field(min_length=1, max_length=200)
    isrc: ISRC
    iswc: ISWC | None = None
    publisher_party_id: str = Field(min_length=1)
    publisher_name: str = Field(min_length=1)
    license: str = Field(min_length=1, description="The licence's name or contract reference")
    purposes: tuple[str, ...] = Field(min_length=1, description="Purposes (DDEX UseType) the lyrics may be used for")
    territories: tuple[str, ...] = Field(min_length=1, description="ISO 3166-1 codes, or 'Worldwide'")
    valid_from: date | None = None
    valid_to: date | None = None
    lyrics: str = Field(min_length=1)
    language: str | None = None
    evidence_ref: str = Field(min_length=1)

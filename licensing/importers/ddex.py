"""DDEX ERN messages (4.1, 4.1.1, 4.2, 4.3 and 3.8, 3.8.1-3.8.3): recordings, parties, rights controllers, deals;
and DDEX MWN (Musical Works Notification 1.1, 1.3) claim notifications: works, writers, publishers' shares.

Every version is read by the same code onto the same contracts (see docs/ddex.md for the differences).

Hostile XML is refused before any of it is read: no DTD (so no entity expansion and no external
entities), no network, at most ``MAX_BYTES`` bytes, ``MAX_DEPTH`` levels and ``MAX_ELEMENTS``
elements. A message is imported in one transaction or not at all. Items inside a well-formed
message that carry invalid identifiers (an ISRC, a territory, a share) are left out and written to
``quarantine`` with a reason code; with ``strict=True`` any such item rejects the whole message.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from xml.parsers import expat

import duckdb
from lxml import etree
from pydantic import ValidationError

from licensing import records
from licensing.evaluate import redecide
from licensing.importers import ImportReport, RecordError
from licensing.importers.tabular import _imported_cleanly
from licensing.parties import Resolution, resolve_parties
from licensing.records import Supersession
from schemas.identifiers import (
    normalize_ipi,
    normalize_isni,
    normalize_isrc,
    normalize_iswc,
    normalize_territory,
)
from schemas.rights import Deal, Party, Recording, RecordingContributor, Work, WorkContributor
from store.ledger import Writer, authorize, command
from store.paths import ledger_ref
from store.quarantine import Rejection, quarantine
from store.roles import Principal, RoleBook

MAX_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 48
MAX_ELEMENTS = 2_000_000
ERN_NAMESPACES = {
    "http://ddex.net/xml/ern/43": "4.3", "http://ddex.net/xml/ern/42": "4.2",
    "http://ddex.net/xml/ern/41": "4.1", "http://ddex.net/xml/ern/411": "4.1.1",
    "http://ddex.net/xml/ern/38": "3.8", "http://ddex.net/xml/ern/381": "3.8.1",
    "http://ddex.net/xml/ern/382": "3.8.2", "http://ddex.net/xml/ern/383": "3.8.3",
}
MWN_NAMESPACES = {"http://ddex.net/xml/mc-notif/11": "MWN 1.1", "http://ddex.net/xml/mc-notif/13": "MWN 1.3"}
MWN_MESSAGE_TYPES = ("MusicalWorkClaimNotificationMessage",)
# Where each version's XSD sits under the XSD directory (DDEX's own file name, one folder per version).
XSD_FILES = {ns: f"ernv{ns.rsplit('/', 1)[1]}/release-notification.xsd" for ns in ERN_NAMESPACES} | {
    ns: f"mwnv{ns.rsplit('/', 1)[1]}/works-share-notification-choreography.xsd" for ns in MWN_NAMESPACES}
# Each ERN 3.8.x minor version has its own namespace (ern/38, ern/381, ...). When the exact XSD is
# not at hand, a 3.8.x message is validated against the 3.8.3 XSD with its namespace mapped to
# ern/383: the minor versions extend 3.8, so a message valid under its own version should pass,
# and a failure names the element and value rather than the namespace.
XSD_FALLBACK = {"http://ddex.net/xml/ern/38": "http://ddex.net/xml/ern/383",
                "http://ddex.net/xml/ern/381": "http://ddex.net/xml/ern/383",
                "http://ddex.net/xml/ern/382": "http://ddex.net/xml/ern/383"}
# The 2020 AVS named generative-AI training "UseForGenerativeAI"; ERN 4.3 renamed it.
USE_TYPE_ALIASES = {"UseForGenerativeAI": "UseForTrainingGenerativeAI"}
ROLE_MAP = {
    "MainArtist": ("MainArtist",), "PrimaryArtist": ("MainArtist",), "Artist": ("MainArtist",),
    "FeaturedArtist": ("FeaturedArtist",), "Composer": ("Composer",), "Lyricist": ("Lyricist",),
    "ComposerLyricist": ("Composer", "Lyricist"), "Songwriter": ("Composer", "Lyricist"),
    "Librettist": ("Lyricist",), "MusicPublisher": ("Publisher",), "OriginalPublisher": ("Publisher",),
    "Publisher": ("Publisher",), "Producer": ("Producer",),
}
AI_MARKERS = ("GenerativeAI",)
# ERN 3.8.x MusicalWorkContributorRole values that make a party a work's writer or publisher.
WORK_ROLE_MAP: dict[str, tuple[str, ...]] = {
    "Composer": ("Composer",), "Lyricist": ("Lyricist",), "ComposerLyricist": ("Composer", "Lyricist"),
    "Librettist": ("Lyricist",), "Arranger": ("Arranger",), "MusicPublisher": ("Publisher",),
    "OriginalPublisher": ("Publisher",), "Publisher": ("Publisher",), "SubPublisher": ("SubPublisher",),
}
MESSAGE_TYPES = ("NewReleaseMessage", "UpdateReleaseMessage", "PurgeReleaseMessage")
# MWN Writer roles beyond ERN's: the other creative roles of a work's text or music. A role the reader
# does not know counts as Composer: the writer's consent is required either way (deny by default).
MWN_ROLE_MAP = WORK_ROLE_MAP | {"Author": ("Lyricist",), "Translator": ("Lyricist",), "SubLyricist": ("Lyricist",),
                                "Adapter": ("Arranger",), "SubArranger": ("Arranger",)}
# Which of a work's publishing share statements the policy reads when a message gives several (one per
# share type and rights type): training copies the work, so the licensing share of the mechanical
# (reproduction) right first. Every statement is still checked not to exceed 100%.
SHARE_TYPE_ORDER = ("LicensingShare", "OriginalPublisherShare", "")
RIGHTS_TYPE_ORDER = ("MechanicalRight", "ReproductionRight", "All", "")
_DPID = re.compile(r"^PADPIDA[0-9A-Z]{11}$")


class DdexRejected(Exception):
    """The message as a whole cannot be imported."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self.message = message


def _ln(el: ET.Element) -> str:
    tag = el.tag
    if type(tag) is not str:
        return ""
    return tag if tag[:1] != "{" else tag.rsplit("}", 1)[-1]


def _kids(el: ET.Element | None, name: str) -> list[ET.Element]:
    if el is None:
        return []
    if hasattr(el, "iterchildren"):  # lxml: filtered in C
        return list(el.iterchildren(name, "{*}" + name))
    return [c for c in el if _ln(c) == name]


def _kid(el: ET.Element | None, name: str) -> ET.Element | None:
    if el is None:
        return None
    if hasattr(el, "iterchildren"):
        return next(el.iterchildren(name, "{*}" + name), None)
    found = _kids(el, name)
    return found[0] if found else None


def _path(el: ET.Element | None, *names: str) -> list[ET.Element]:
    current = [el] if el is not None else []
    for name in names:
        current = [c for e in current for c in _kids(e, name)]
    return current


def _text(el: ET.Element | None, *names: str) -> str | None:
    found = _path(el, *names)
    if found and found[0].text and found[0].text.strip():
        return found[0].text.strip()
    return None


def _descendants(el: ET.Element, name: str) -> list[ET.Element]:
    if hasattr(el, "iterchildren"):
        return list(el.iter(name, "{*}" + name))
    return [d for d in el.iter() if _ln(d) == name]


def scan_message(source: Path | bytes) -> tuple[str, str]:
    """Check untrusted XML without keeping any of it: no DTD (so no entity declarations and no external
    references), at most ``MAX_DEPTH`` levels and ``MAX_ELEMENTS`` elements. Returns the root's local name
    and namespace. (Expat callbacks that only count: several times faster than building elements.)"""
    depth = count = 0
    root = ""

    def start(name: str, _attrs: object) -> None:
        nonlocal depth, count, root
        depth += 1
        count += 1
        if depth > MAX_DEPTH:
            raise DdexRejected("xml_too_deep", f"elements nest deeper than {MAX_DEPTH} levels")
        if count > MAX_ELEMENTS:
            raise DdexRejected("xml_too_many_elements", f"more than {MAX_ELEMENTS} elements")
        if count == 1:
            root = name

    def end(_name: str) -> None:
        nonlocal depth
        depth -= 1

    def doctype(name: str, *_rest: object) -> None:
        raise DdexRejected("xml_dtd_forbidden", f"DOCTYPE declarations are not accepted (<!DOCTYPE {name} ...>)")

    def entity(name: str, *_rest: object) -> None:
        raise DdexRejected("xml_entities_forbidden", f"entity declarations are not accepted ({name})")

    def external(*_args: object) -> int:
        raise DdexRejected("xml_external_forbidden", "external references are not accepted")

    parser = expat.ParserCreate(namespace_separator="}")
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.ExternalEntityRefHandler = external
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stream = open(source, "rb") if isinstance(source, Path) else BytesIO(source)  # noqa: SIM115
    try:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            parser.Parse(chunk, False)
        parser.Parse(b"", True)
    except expat.ExpatError as exc:
        raise DdexRejected("xml_malformed", f"not well-formed XML: {expat.ErrorString(exc.code)}: "
                                            f"line {exc.lineno}, column {exc.offset}") from exc
    except (LookupError, ValueError) as exc:  # an unknown or impossible declared encoding
        raise DdexRejected("xml_malformed", f"not well-formed XML: {exc}") from exc
    finally:
        stream.close()
    if count == 0:
        raise DdexRejected("xml_malformed", "empty document")
    ns, _, local = root.rpartition("}")
    return local, ns


# The entries read one at a time (each is cleared once read, so memory stays bounded): the list each
# belongs to, or None for a child of the message element itself.
_STREAMED: dict[str, str | None] = {
    "MessageHeader": None, "UpdateIndicator": None, "PurgedRelease": None, "Party": "PartyList",
    "MusicalWork": "WorkList", "SoundRecording": "ResourceList", "Release": "ReleaseList", "TrackRelease": "ReleaseList",
    "ReleaseDeal": "DealList", "RightShare": "RightShareList",
}


def _stream(source: Path | bytes, schema: etree.XMLSchema | None) -> Iterator[tuple[str, ET.Element, str]]:
    """Yield (local name, element, XPath and line) for each complete entry of interest, then free it."""
    stream = open(source, "rb") if isinstance(source, Path) else BytesIO(source)  # noqa: SIM115
    counters: dict[str, int] = {}
    try:
        context = etree.iterparse(stream, events=("end",), tag=[f"{{*}}{t}" for t in _STREAMED],
                                  resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                                  remove_comments=True, remove_pis=True, schema=schema)
        for _event, el in context:
            name = _ln(el)
            parent = el.getparent()
            if parent is None:
                continue
            holder = _STREAMED[name]
            if holder is None:
                if parent.getparent() is not None:
                    continue
                prefix = f"/{_ln(parent)}"
            else:
                grand = parent.getparent()
                if _ln(parent) != holder or grand is None or grand.getparent() is not None:
                    continue
                prefix = f"/{_ln(grand)}/{holder}"
            counters[name] = counters.get(name, 0) + 1
            yield name, el, f"{prefix}/{name}[{counters[name]}] (line {el.sourceline})"
            el.clear(keep_tail=True)
            while el.getprevious() is not None:
                del parent[0]
    finally:
        stream.close()


class _LocalAvs(etree.Resolver):
    """Older ERN XSDs import the allowed-value sets from ddex.net: read them from ``<xsd dir>/avs/`` instead;
    the MWN XSDs import W3C's XML-signature schema: read it from ``<xsd dir>/xmldsig-core-schema.xsd``."""

    def __init__(self, xsd_dir: Path) -> None:
        super().__init__()
        self.xsd_dir = xsd_dir

    def resolve(self, url, pubid, context):  # type: ignore[no-untyped-def]
        local = None
        if url and url.startswith(AVS_URL):
            local = self.xsd_dir / "avs" / url[len(AVS_URL):]
        elif url == XMLDSIG_URL:
            local = self.xsd_dir / "xmldsig-core-schema.xsd"
        if local is not None and local.is_file():
            return self.resolve_filename(str(local), context)
        return None


AVS_URL = "http://ddex.net/xml/avs/"
XMLDSIG_URL = "http://www.w3.org/TR/2002/REC-xmldsig-core-20020212/xmldsig-core-schema.xsd"


@lru_cache(maxsize=8)
def _schema(xsd_path: str, xsd_dir: str):  # type: ignore[no-untyped-def]
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    parser.resolvers.add(_LocalAvs(Path(xsd_dir)))
    try:
        return etree.XMLSchema(etree.parse(xsd_path, parser))
    except (etree.XMLSchemaParseError, OSError) as exc:
        raise DdexRejected("xsd_unavailable", f"the XSD {xsd_path} cannot be loaded ({exc}); an XSD that imports "
                                              f"{AVS_URL}<file> needs that file in {xsd_dir}/avs/, one that imports "
                                              f"{XMLDSIG_URL} needs {xsd_dir}/xmldsig-core-schema.xsd") from exc


def default_xsd_dir() -> Path | None:
    """``$LINERNOTES_DDEX_XSD_DIR``, else the DDEX schemas shipped with the test data beside the checkout."""
    env = os.environ.get("LINERNOTES_DDEX_XSD_DIR")
    if env:
        return Path(env)
    candidate = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "ddex" / "xsd"
    return candidate if candidate.is_dir() else None


def xsd_for(namespace: str, xsd_dir: Path) -> tuple[str, str]:
    """``(xsd path relative to xsd_dir, namespace it validates)`` for a message namespace.

    The message's own version when its XSD is present, else the explicit 3.8.x -> 3.8.3 mapping.
    """
    rel = XSD_FILES.get(namespace)
    if rel is not None and (xsd_dir / rel).is_file():
        return rel, namespace
    target = XSD_FALLBACK.get(namespace)
    if target is not None and (xsd_dir / XSD_FILES[target]).is_file():
        return XSD_FILES[target], target
    present = sorted(ns for ns, r in XSD_FILES.items() if (xsd_dir / r).is_file())
    raise DdexRejected("xsd_unavailable", f"no XSD for namespace {namespace} in {xsd_dir} (present: {present})")


def _label(namespace: str) -> str:
    return MWN_NAMESPACES.get(namespace) or f"ERN {ERN_NAMESPACES[namespace]}"


def _summarize(errors: list) -> str:  # type: ignore[type-arg]
    """Validation errors grouped by message, with the enumeration lists cut (they list every territory)."""
    groups: dict[str, list[int]] = {}
    for e in errors:
        text = re.sub(r"is not an element of the set \{[^}]*\}", "is not an allowed value", e.message)
        groups.setdefault(text.rstrip("."), []).append(e.line)
    return "; ".join(f"{text} (line {lines[0]}" + (f", {len(lines)} times)" if len(lines) > 1 else ")")
                     for text, lines in list(groups.items())[:5])


def validate_against_xsd(data: bytes, namespace: str, xsd_dir: Path | None) -> None:
    """Raise :class:`DdexRejected` unless the message validates against its DDEX XSD (see :func:`xsd_for`)."""

    if xsd_dir is None:
        raise DdexRejected("xsd_unavailable", "no DDEX XSD directory: set LINERNOTES_DDEX_XSD_DIR")
    rel, target = xsd_for(namespace, xsd_dir)
    schema = _schema(str(xsd_dir / rel), str(xsd_dir))
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    doc = etree.parse(BytesIO(data), parser)
    against = f"{rel} ({_label(target)})"
    if target != namespace:
        for el in doc.iter():
            if isinstance(el.tag, str) and el.tag.startswith("{" + namespace + "}"):
                el.tag = "{" + target + "}" + el.tag.split("}", 1)[1]
        against += f", the message's namespace {namespace} ({_label(namespace)}) mapped to {target}"
    if not schema.validate(doc):
        raise DdexRejected("xsd_invalid", f"message does not validate against {against}: "
                                          f"{_summarize(list(schema.error_log))}")


def _percent(el: ET.Element | None) -> float | None:
    """A DDEX ``Percentage`` in percent (``HasMaxValueOfOne`` scales 0-1); None when absent. ValueError if invalid."""
    if el is None or not (el.text or "").strip():
        return None
    value = float((el.text or "").strip())
    if el.get("HasMaxValueOfOne") == "true":
        value *= 100.0
    if not 0.0 <= value <= 100.0:
        raise ValueError(f"{value:g}% is outside 0-100")
    return value


# (share type, rights types, territory and period, party id, share in percent or None when unknown)
_Statement = tuple[str, tuple[str, ...], str, str, float | None]


def _scope(el: ET.Element) -> str:
    """Where and when a share statement holds, as words (``in US``, ``in Worldwide excluding GB from 2020-01-01``):
    shares add up within one scope, never across scopes. No territory means Worldwide."""
    codes = sorted((t.text or "").strip() for t in _kids(el, "TerritoryCode") + _kids(el, "Territory"))
    excluded = sorted((t.text or "").strip() for t in _kids(el, "ExcludedTerritoryCode"))
    when = _kid(el, "ValidityPeriod")
    when = el if when is None else when
    words = [f"in {','.join(codes) or 'Worldwide'}"]
    words += [f"excluding {','.join(excluded)}"] if excluded else []
    words += [f"{label} {value}" for label, value in (("from", _text(when, "StartDate")), ("to", _text(when, "EndDate")))
              if value]
    return " ".join(words)


def _publishers(statements: list[_Statement], name: Callable[[str], str]) -> dict[str, WorkContributor]:
    """A work's publishers from its publishing share statements.

    Shares add up per (share type, rights type, territory and period); any such total over 100% raises
    ValueError naming the group. The shares kept are those of the group first in ``SHARE_TYPE_ORDER`` then
    ``RIGHTS_TYPE_ORDER``, then the largest total (the first in the message on a tie); a publisher named
    only in another group is kept without a share.
    """
    groups: dict[tuple[str, str, str], dict[str, float | None]] = {}
    for share_type, rights_types, scope, party_id, share in statements:
        for rights_type in rights_types or ("",):
            group = groups.setdefault((share_type, rights_type, scope), {})
            before = group.get(party_id)
            group[party_id] = None if share is None and before is None else (before or 0.0) + (share or 0.0)
    for (share_type, rights_type, scope), group in groups.items():
        total = sum(v or 0.0 for v in group.values())
        if total > 100.0 + 1e-6:
            what = " ".join(x for x in (share_type, rights_type) if x) or "publishing"
            raise ValueError(f"{what} shares {scope} add up to {total:g}%, more than 100%")

    def rank(key: tuple[str, str, str]) -> tuple[int, int, float]:
        st, rt, _scope = key
        return (SHARE_TYPE_ORDER.index(st) if st in SHARE_TYPE_ORDER else len(SHARE_TYPE_ORDER),
                RIGHTS_TYPE_ORDER.index(rt) if rt in RIGHTS_TYPE_ORDER else len(RIGHTS_TYPE_ORDER),
                -sum(v or 0.0 for v in groups[key].values()))

    chosen = groups[min(groups, key=rank)] if groups else {}
    everyone = {party_id for _st, _rt, _scope, party_id, _s in statements}
    return {p: WorkContributor(party_id=p, name=name(p), role="Publisher", share=chosen.get(p))
            for p in sorted(everyone)}


@dataclass
class _Extract:
    version: str
    message_id: str
    sender: str = "unknown-sender"
    kind: str = "new"                       # new | update | purge
    created_at: datetime | None = None
    parties: dict[str, Party] = field(default_factory=dict)
    recordings: list[Recording] = field(default_factory=list)
    works: dict[str, Work] = field(default_factory=dict)
    deals: list[Deal] = field(default_factory=list)
    releases: dict[str, set[str]] = field(default_factory=dict)   # release key -> ISRCs
    takedowns: dict[str, str] = field(default_factory=dict)       # release key -> where in the message
    deal_ids: set[str] = field(default_factory=set)               # every deal the message carries, valid or not
    work_links: dict[str, tuple[str, str | None, str]] = field(default_factory=dict)  # MWN: ISRC -> (ISWC, title, where)
    errors: list[RecordError] = field(default_factory=list)


def _date(value: str | None) -> date | None:
    if not value:
        return None
    return date.fromisoformat(value[:10])


class _Reader:
    """Turns one parsed message into rights records (no database access)."""

    def __init__(self, root_name: str, ns: str, source: str) -> None:
        self.root_name = root_name
        self.source = source
        self.message_id = "unknown"
        self.sender_id = "unknown-sender"
        self.out = _Extract(version=ERN_NAMESPACES.get(ns) or MWN_NAMESPACES[ns], message_id=self.message_id, sender=self.sender_id)
        self.out.kind = ("purge" if root_name == "PurgeReleaseMessage" else
                         "update" if root_name == "UpdateReleaseMessage" else "new")
        self.licensor: str | None = None
        self.party_by_ref: dict[str, str] = {}
        self.ai_party_refs: set[str] = set()
        self.by_resource: dict[str, tuple[str, list[tuple[str, float]]]] = {}
        self.resources_by_release: dict[str, list[str]] = {}
        self.key_by_ref: dict[str, str] = {}
        self.per_release: dict[str, int] = {}
        self.iswc_by_work_ref: dict[str, str] = {}
        self.refused_works: set[str] = set()
        self.here = ""

    def on_header(self, header: ET.Element) -> None:
        self.message_id = self.out.message_id = _text(header, "MessageId") or "unknown"
        self.sender_id = self.out.sender = _text(header, "MessageSender", "PartyId") or "unknown-sender"
        if _text(header, "UpdateIndicator") == "UpdateMessage":
            self.out.kind = "update"
        created = _text(header, "MessageCreatedDateTime")
        if created:
            try:
                stamp = datetime.fromisoformat(created)
            except ValueError as exc:
                raise DdexRejected("ddex_invalid_header", f"MessageCreatedDateTime {created!r}: {exc}") from exc
            self.out.created_at = stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
        if self.out.kind == "purge":
            return
        on_behalf = _kid(header, "SentOnBehalfOf")
        licensor = self.party(on_behalf) if on_behalf is not None else None
        sender = _kid(header, "MessageSender")
        self.licensor = licensor or self.party(sender if sender is not None else ET.Element("x"))
        if self.licensor is None:
            raise DdexRejected("ddex_no_sender", "MessageHeader names no MessageSender party")

    def on_party(self, el: ET.Element) -> None:
        ref = _text(el, "PartyReference")
        party_id = self.party(el, ref)
        if ref and party_id:
            self.party_by_ref[ref] = party_id
            if any((e.text or "").strip() in AI_MARKERS for e in el.iter()):
                self.ai_party_refs.add(ref)

    def on_musical_work(self, mw: ET.Element) -> None:
        """ERN 3.8.x ``WorkList/MusicalWork``: the work's ISWC and its writers and publishers."""
        raw = _text(mw, "MusicalWorkId", "ISWC")
        if raw is None:
            return
        try:
            iswc = normalize_iswc(raw)
        except ValueError as exc:
            self.error("", "invalid_iswc", str(exc))
            return
        ref = _text(mw, "MusicalWorkReference")
        if ref:
            self.iswc_by_work_ref[ref] = iswc
        found: dict[tuple[str, str], WorkContributor] = {}
        for c in _kids(mw, "MusicalWorkContributor"):
            party_id = self.party(c)
            raw_role = _text(c, "MusicalWorkContributorRole") or ""
            if party_id is None:
                continue
            for role in WORK_ROLE_MAP.get(raw_role, ()):
                found[(party_id, role)] = WorkContributor(party_id=party_id, name=self.out.parties[party_id].name,
                                                          role=role)
        statements: list[_Statement] = []
        for i, rs in enumerate(_kids(mw, "RightShare"), start=1):
            where = f"work {ref or iswc}/RightShare[{i}]"
            rights_types = tuple((t.text or "").strip() for t in _kids(rs, "RightsType"))
            controllers = _kids(rs, "RightsController")
            try:
                own = None if _text(rs, "RightShareUnknown") == "true" else _percent(_kid(rs, "RightSharePercentage"))
                for rc in controllers:
                    party_id = self.party(rc)
                    if party_id is None:
                        continue
                    # the controller's own percentage, else the RightShare's when it has one controller
                    share = own if len(controllers) == 1 else None
                    if _text(rc, "RightShareUnknown") != "true" and _kid(rc, "RightSharePercentage") is not None:
                        share = _percent(_kid(rc, "RightSharePercentage"))
                    statements.append(("", rights_types, _scope(rs), party_id, share))
            except ValueError as exc:
                self.error(where, "invalid_share", f"RightSharePercentage: {exc}")
        title = _text(mw, "ReferenceTitle", "TitleText")
        try:
            found.update({(p, "Publisher"): c for p, c in
                          _publishers(statements, lambda p: self.out.parties[p].name).items()})
            self.out.works[iswc] = Work(iswc=iswc, title=title, contributors=tuple(found[k] for k in sorted(found)))
        except ValueError as exc:  # pydantic's ValidationError is a ValueError too
            self.refused_works.add(iswc)
            self.error(f"work {ref or iswc}", "publishing_shares_exceed", f"work {iswc}: {exc}")

    def on_purged(self, purged: ET.Element) -> None:
        key = release_key(purged, self.sender_id)
        if key is None:
            self.error("", "ddex_release_unidentified", "PurgedRelease has no ReleaseId")
            return
        self.out.releases.setdefault(key, set())
        self.out.takedowns[key] = self.here

    def handlers(self) -> dict[str, Callable[[ET.Element], None]]:
        return {"MessageHeader": self.on_header, "Party": self.on_party, "PurgedRelease": self.on_purged,
                "MusicalWork": self.on_musical_work, "SoundRecording": self.on_sound_recording,
                "Release": self.on_release, "TrackRelease": self.on_release, "ReleaseDeal": self.on_release_deal}

    def read(self, items: Iterator[tuple[str, ET.Element, str]]) -> _Extract:
        """Read the message entry by entry (the header, parties and resources come before releases and deals)."""
        handlers = self.handlers()
        for name, el, where in items:
            self.here = where
            if name == "UpdateIndicator":
                if (el.text or "").strip() == "UpdateMessage" and self.out.kind == "new":
                    self.out.kind = "update"
                continue
            if name != "MessageHeader" and self.licensor is None and self.out.kind != "purge":
                raise DdexRejected("ddex_no_sender", "the MessageHeader must come first and name the MessageSender")
            handlers[name](el)
        self.finish()
        if self.out.message_id == "unknown" and self.licensor is None:
            raise DdexRejected("ddex_no_header", f"the {self.root_name} has no MessageHeader with a MessageId")
        if self.out.kind == "purge" and not self.out.releases and not self.out.errors:
            raise DdexRejected("ddex_purge_without_release", "the PurgeReleaseMessage names no PurgedRelease")
        return self.out

    def finish(self) -> None:
        """Called once every entry has been read."""

    def error(self, where: str, code: str, message: str) -> None:
        """A per-record error at the entry being read: ``file#XPath (line N) what``."""
        at = f"{self.here} {where}".strip()
        self.out.errors.append(RecordError(source_ref=f"{self.source}#{at}", reason_code=code, message=message))

    def party(self, el: ET.Element, ref: str | None = None) -> str | None:
        """Register a party (PartyList entry or inline PartyId/PartyName) and return its id."""
        name = _text(el, "PartyName", "FullName") or _text(el, "FullName")
        isni = ipi = None
        pid = _kid(el, "PartyId")
        if pid is not None:
            raw_isni = _text(pid, "ISNI") or (pid.text.strip() if pid.get("IsISNI") == "true" and pid.text else None)
            if raw_isni:
                try:
                    isni = normalize_isni(raw_isni)
                except ValueError as exc:
                    self.error(f"party {ref or name}", "invalid_isni", str(exc))
            raw_ipi = _text(pid, "IpiNameNumber")
            if raw_ipi:
                try:
                    ipi = normalize_ipi(raw_ipi)
                except ValueError as exc:
                    self.error(f"party {ref or name}", "invalid_ipi", str(exc))
        dpid = _text(pid, "DPID") if pid is not None else None
        plain = pid.text.strip() if pid is not None and pid.text and pid.text.strip() and pid.get("IsISNI") != "true" else None
        if isni:
            party_id = f"isni:{isni}"
        elif ipi:
            party_id = f"ipi:{ipi}"
        elif dpid or plain:
            party_id = f"dpid:{dpid or plain}"
        elif ref:
            party_id = f"ddex:{self.sender_id}:{ref}"
        elif name:
            party_id = f"ddex:{self.sender_id}:name:{name}"
        else:
            return None
        if party_id not in self.out.parties:
            real_dpid = next((v for v in (dpid, plain) if v and _DPID.match(v)), None)
            self.out.parties[party_id] = Party(party_id=party_id, name=name or party_id, isni=isni, ipi=ipi,
                                               dpid=real_dpid)
        return party_id

    def _contributors(self, sr: ET.Element) -> list[RecordingContributor]:
        found: dict[tuple[str, str], str] = {}

        def add(party_id: str | None, raw_role: str | None) -> None:
            if not party_id:
                return
            name = self.out.parties[party_id].name
            for role in ROLE_MAP.get(raw_role or "", ((raw_role or "Contributor"),)):
                found[(party_id, role)] = name

        for da in _descendants(sr, "DisplayArtist"):
            ref = _text(da, "ArtistPartyReference")
            party_id = self.party_by_ref.get(ref) if ref else self.party(da)
            add(party_id, _text(da, "DisplayArtistRole") or _text(da, "ArtistRole"))
        for name in ("Contributor", "ResourceContributor", "IndirectResourceContributor"):
            for c in _descendants(sr, name):
                ref = _text(c, "ContributorPartyReference")
                party_id = self.party_by_ref.get(ref) if ref else self.party(c)
                for tag in ("Role", "ResourceContributorRole", "IndirectResourceContributorRole"):
                    for role_el in _kids(c, tag):
                        add(party_id, (role_el.text or "").strip())
        return [RecordingContributor(party_id=p, name=n, role=r) for (p, r), n in sorted(found.items())]

    def _ai_evidence(self, sr: ET.Element) -> str | None:
        for el in sr.iter():
            text = (el.text or "").strip()
            if text in AI_MARKERS or el.get("UserDefinedValue") in AI_MARKERS:
                return f"DDEX {_ln(el)} = GenerativeAI"
            if _ln(el) == "ContainsAI" and text in ("All", "Partly"):
                return f"DDEX ContainsAI = {text}"
        for ref_el in _descendants(sr, "ContributorPartyReference") + _descendants(sr, "ArtistPartyReference"):
            if (ref_el.text or "").strip() in self.ai_party_refs:
                return f"DDEX party {(ref_el.text or '').strip()} is of type GenerativeAI"
        return None

    def read_work(self, sr: ET.Element, ref: str, iswc: str, title: str | None,
                  people: list[RecordingContributor]) -> None:
        """The work a recording performs: its writers (Composer/Lyricist contributors) and, from
        ``WorkRightsController``, its publishers with their publishing shares."""
        known = self.out.works.get(iswc)  # from a WorkList (3.8.x) or another recording of the same work
        found: dict[tuple[str, str], WorkContributor] = {(c.party_id, c.role): c for c in (known.contributors if known else ())}
        for c in people:
            if c.role in ("Composer", "Lyricist"):
                found[(c.party_id, c.role)] = WorkContributor(party_id=c.party_id, name=c.name, role=c.role)
        # This recording's statement of the publishing shares. A publisher may be listed once per territory
        # and period (100% in one territory, 100% in another): shares add up within one territory and period
        # only, never across them (``_publishers``), and the most complete group's shares are recorded.
        statements: list[_Statement] = []
        for i, wrc in enumerate(_kids(sr, "WorkRightsController")):
            where = f"resource {ref}/WorkRightsController[{i}]"
            party_ref = _text(wrc, "RightsControllerPartyReference")
            party_id = self.party_by_ref.get(party_ref or "")
            if party_id is None:
                self.error(where, "unknown_party", f"RightsControllerPartyReference {party_ref!r} is not in the PartyList")
                continue
            raw = _text(wrc, "RightSharePercentage")
            try:
                share = None if _text(wrc, "RightShareUnknown") == "true" or raw is None else _percent(_kid(wrc, "RightSharePercentage"))
            except ValueError as exc:
                self.error(where, "invalid_share", f"RightSharePercentage {raw!r}: {exc}")
                continue
            statements.append(("", (), _scope(wrc), party_id, share))
        try:
            publishers = _publishers(statements, lambda p: self.out.parties[p].name)
        except ValueError as exc:
            self.error(f"resource {ref}", "publishing_shares_exceed", f"work {iswc}: {exc}")
            return
        found.update({(p, "Publisher"): c for p, c in publishers.items()})
        try:
            work = Work(iswc=iswc, title=(known.title if known else None) or title,
                        contributors=tuple(found[k] for k in sorted(found)))
        except ValidationError as exc:
            self.error(f"resource {ref}", "publishing_shares_exceed", "; ".join(e["msg"] for e in exc.errors()))
            return
        self.out.works[iswc] = work

    def on_sound_recording(self, sr: ET.Element) -> None:
        """One sound recording: its ISRC, work, contributors and rights controllers (with shares)."""
        ref = _text(sr, "ResourceReference") or self.here
        raw = (_text(sr, "SoundRecordingEdition", "ResourceId", "ISRC") or _text(sr, "ResourceId", "ISRC")
               or _text(sr, "SoundRecordingId", "ISRC"))
        if raw is None:
            self.error(f"resource {ref}", "missing_isrc", "sound recording has no ISRC")
            return
        try:
            isrc = normalize_isrc(raw)
        except ValueError as exc:
            self.error(f"resource {ref}", "invalid_isrc", str(exc))
            return
        iswc = None
        linked = [self.iswc_by_work_ref[r] for r in (
            (e.text or "").strip() for e in _path(sr, "ResourceMusicalWorkReferenceList", "ResourceMusicalWorkReference",
                                                  "ResourceMusicalWorkReference")) if r in self.iswc_by_work_ref]
        raw_iswc = _text(sr, "WorkId", "ISWC") or _text(sr, "IndirectSoundRecordingId", "ISWC") or next(iter(linked), None)
        if raw_iswc:
            try:
                iswc = normalize_iswc(raw_iswc)
            except ValueError as exc:
                self.error(f"resource {ref}", "invalid_iswc", str(exc))
        evidence = self._ai_evidence(sr)
        people = self._contributors(sr)
        title = _text(sr, "DisplayTitleText") or _text(sr, "ReferenceTitle", "TitleText")
        self.out.recordings.append(Recording(
            isrc=isrc, iswc=iswc, title=title, ai_generated=evidence is not None, ai_evidence=evidence,
            contributors=tuple(people)))
        if iswc and iswc not in self.refused_works:
            self.read_work(sr, ref, iswc, title, people)
        controllers: list[tuple[str, float]] = []
        for rc in _descendants(sr, "ResourceRightsController") + _descendants(sr, "RightsController"):
            ref_party = _text(rc, "RightsControllerPartyReference")
            party_id = self.party_by_ref.get(ref_party) if ref_party else self.party(rc)
            pct = _kid(rc, "RightSharePercentage")
            try:
                share = float((pct.text or "").strip()) if pct is not None else float("nan")
            except ValueError:
                share = float("nan")
            if pct is not None and pct.get("HasMaxValueOfOne") == "true":
                share *= 100.0
            if party_id is None or not (0.0 < share <= 100.0):
                self.error(f"resource {ref}", "invalid_share",
                           f"rights controller {party_id or '?'} has share {pct.text if pct is not None else None!r}")
                continue
            controllers.append((party_id, share))
        self.by_resource[ref] = (isrc, controllers)

    def on_release(self, rel: ET.Element) -> None:
        rref = _text(rel, "ReleaseReference")
        if not rref:
            return
        self.resources_by_release[rref] = [(e.text or "").strip() for e in _descendants(rel, "ReleaseResourceReference")]
        key = release_key(rel, self.sender_id) or f"{self.sender_id}:ref:{rref}"
        self.key_by_ref[rref] = key
        self.out.releases.setdefault(key, set()).update(
            self.by_resource[r][0] for r in self.resources_by_release[rref] if r in self.by_resource)

    def on_release_deal(self, rd: ET.Element) -> None:
        licensor, by_resource = self.licensor or "", self.by_resource
        release_refs = [(e.text or "").strip() for e in _kids(rd, "DealReleaseReference")]
        resource_refs = {r for rel in release_refs for r in self.resources_by_release.get(rel, [])}
        isrcs = sorted({by_resource[r][0] for r in resource_refs if r in by_resource})
        keys = [self.key_by_ref[r] for r in release_refs if r in self.key_by_ref]
        main_key = keys[0] if keys else f"{self.sender_id}:ref:{','.join(release_refs)}"
        for deal_index, deal_el in enumerate(_kids(rd, "Deal")):
            n = self.per_release[main_key] = self.per_release.get(main_key, 0) + 1
            deal_id = f"ddex:{main_key}:{n}"
            self.out.deal_ids.add(deal_id)
            where = f"Deal[{deal_index + 1}] ({deal_id})"
            terms = _kid(deal_el, "DealTerms")
            takedown = _text(deal_el, "TakeDown") or _text(terms, "TakeDown")
            out_of_band = _text(deal_el, "IsCommunicatedOutOfBand") == "true"
            if (takedown or "").lower() in ("true", "1") or (terms is None and not out_of_band):
                for key in keys or [main_key]:
                    self.out.releases.setdefault(key, set()).update(isrcs)
                    self.out.takedowns[key] = f"{self.here} {where}"
                continue
            if terms is None:
                self.error(where, "deal_without_terms", "the deal's terms are communicated out of band; "
                                                        "nothing to license from this message")
                continue
            if not isrcs:
                self.error(where, "deal_without_recordings",
                           f"releases {release_refs} contain no sound recording with a valid ISRC")
                continue
            uses = [(e.text or "").strip() for e in (_kids(terms, "UseType") + _path(terms, "Usage", "UseType")
                                                     + _path(deal_el, "ResourceUsage", "Usage", "UseType"))]
            uses = list(dict.fromkeys(USE_TYPE_ALIASES.get(u, u) for u in uses if u))
            try:
                include = [normalize_territory(e.text or "") for e in _kids(terms, "TerritoryCode")]
                exclude = [normalize_territory(e.text or "") for e in _kids(terms, "ExcludedTerritoryCode")]
            except ValueError as exc:
                self.error(where, "invalid_territory", f"{exc} (only ISO 3166-1 alpha-2 and Worldwide are supported)")
                continue
            if not include and exclude:
                include = ["Worldwide"]
            period = _kid(terms, "ValidityPeriod")
            try:
                valid_from = _date(_text(period, "StartDate") or _text(period, "StartDateTime"))
                valid_to = _date(_text(period, "EndDate") or _text(period, "EndDateTime"))
            except ValueError as exc:
                self.error(where, "invalid_validity_period", str(exc))
                continue
            models = [(e.text or "").strip() for e in _kids(terms, "CommercialModelType")]
            controllers = [{"party_id": p, "isrc": by_resource[r][0], "share": s}
                           for r in sorted(resource_refs) if r in by_resource for p, s in by_resource[r][1]]
            try:
                self.out.deals.append(Deal.model_validate({
                    "deal_id": deal_id, "licensor": licensor,
                    "license": f"DDEX ERN {self.out.version} deal" + (f" ({', '.join(models)})" if models else ""),
                    "isrcs": isrcs, "use_types": uses, "territories": {"include": include, "exclude": exclude},
                    "valid_from": valid_from, "valid_to": valid_to, "rights_controllers": controllers,
                }))
            except ValidationError as exc:
                msg = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
                code = "invalid_use_type" if "use_types" in msg else (
                    "invalid_validity_period" if "valid_to" in msg else "invalid_deal")
                self.error(where, code, msg)


def release_key(release: ET.Element, sender: str) -> str | None:
    """A release's identity across messages: its GRid, else ICPN, else catalogue or proprietary id (by sender)."""
    rid = _kid(release, "ReleaseId")
    for scheme in ("GRid", "ICPN"):
        value = _text(rid, scheme)
        if value:
            return f"{scheme.lower()}:{value}"
    for scheme in ("CatalogNumber", "ProprietaryId"):
        el = _kid(rid, scheme)
        if el is not None and el.text and el.text.strip():
            return f"{sender}:{el.get('Namespace') or scheme}:{el.text.strip()}"
    return None


class _MwnReader(_Reader):
    """A DDEX MWN ``MusicalWorkClaimNotificationMessage``: each work's ISWC and writers, the publishers'
    shares from the ``RightShareList``, and the recordings (ISRC) that perform each work."""

    def __init__(self, root_name: str, ns: str, source: str) -> None:
        super().__init__(root_name, ns, source)
        self.out.kind = "works"
        self.writers: dict[str, dict[tuple[str, str], WorkContributor]] = {}  # by MusicalWorkReference
        self.titles: dict[str, str | None] = {}
        self.where_work: dict[str, str] = {}
        self.statements: dict[str, list[_Statement]] = {}

    def handlers(self) -> dict[str, Callable[[ET.Element], None]]:
        return {"MessageHeader": self.on_header, "Party": self.on_party, "MusicalWork": self.on_musical_work,
                "SoundRecording": self.on_sound_recording, "RightShare": self.on_right_share}

    def _party_ref(self, where: str, el: ET.Element | None, tag: str) -> str | None:
        ref = _text(el, tag)
        party_id = self.party_by_ref.get(ref or "")
        if party_id is None:
            self.error(where, "unknown_party", f"{tag} {ref!r} is not in the PartyList")
        return party_id

    def on_musical_work(self, mw: ET.Element) -> None:
        ref = _text(mw, "MusicalWorkReference") or self.here
        self.where_work[ref] = self.here  # known even when left out: its shares are not reported again
        raw = _text(mw, "MusicalWorkId", "ISWC")
        if raw is None:
            self.error(f"work {ref}", "missing_iswc", "musical work has no ISWC")
            return
        try:
            iswc = normalize_iswc(raw)
        except ValueError as exc:
            self.error(f"work {ref}", "invalid_iswc", str(exc))
            return
        found: dict[tuple[str, str], WorkContributor] = {}
        for i, writer in enumerate(_kids(mw, "Writer"), start=1):
            party_id = self._party_ref(f"work {ref}/Writer[{i}]", writer, "WriterPartyReference")
            if party_id is None:
                continue
            for raw_role in [(r.text or "").strip() for r in _kids(writer, "Role")] or ["Composer"]:
                for role in MWN_ROLE_MAP.get(raw_role, ("Composer",)):
                    found[(party_id, role)] = WorkContributor(party_id=party_id, role=role,
                                                              name=self.out.parties[party_id].name)
        self.iswc_by_work_ref[ref] = iswc
        self.writers[ref] = found
        self.titles[ref] = _text(mw, "Title", "TitleText")

    def on_sound_recording(self, sr: ET.Element) -> None:
        """A recording performing works of the message: links its ISRC to the (first) work's ISWC."""
        ref = _text(sr, "ResourceReference") or self.here
        raw = _text(sr, "SoundRecordingId", "ISRC")
        if raw is None:
            self.error(f"resource {ref}", "missing_isrc", "sound recording has no ISRC")
            return
        try:
            isrc = normalize_isrc(raw)
        except ValueError as exc:
            self.error(f"resource {ref}", "invalid_isrc", str(exc))
            return
        links = [_text(link, "ResourceMusicalWorkReference") or "" for link in
                 _path(sr, "ResourceMusicalWorkReferenceList", "ResourceMusicalWorkReference")
                 if _text(link, "IsIncorrectLink") != "true"]
        iswcs = list(dict.fromkeys(self.iswc_by_work_ref[r] for r in links if r in self.iswc_by_work_ref))
        if not iswcs:
            self.error(f"resource {ref}", "unknown_work", f"recording {isrc} names no work of the WorkList ({links})")
            return
        if len(iswcs) > 1:
            self.error(f"resource {ref}", "recording_several_works",
                       f"recording {isrc} performs {len(iswcs)} works; linked to the first, {iswcs[0]}")
        self.out.work_links[isrc] = (iswcs[0], _text(sr, "Title", "TitleText"), f"{self.source}#{self.here}")

    def on_right_share(self, rs: ET.Element) -> None:
        """One publishing share: a rights controller's percentage of one or more works."""
        where = f"right share {_text(rs, 'RightShareReference') or ''}".rstrip()
        if _text(rs, "RightShareNotClaimed") == "true":
            return
        if _text(rs, "RightsControllerUnknown") == "true":
            return  # an unclaimed part: the work's known shares fall short of 100%
        party_id = self._party_ref(where, _kid(rs, "RightsController"), "RightsControllerPartyReference")
        if party_id is None:
            return
        try:
            share = None if _text(rs, "RightShareUnknown") == "true" else _percent(_kid(rs, "RightSharePercentage"))
        except ValueError as exc:
            self.error(where, "invalid_share", f"RightSharePercentage: {exc}")
            return
        rights_types = tuple((t.text or "").strip() for t in _kids(rs, "RightsType"))
        share_types = [(t.text or "").strip() for t in _kids(rs, "RightShareType")] or [""]  # MWN 1.1: several
        for work_ref in ((e.text or "").strip() for e in _kids(rs, "RightShareWorkReference")):
            if work_ref in self.writers:
                self.statements.setdefault(work_ref, []).extend(
                    (share_type, rights_types, _scope(rs), party_id, share) for share_type in share_types)
            elif work_ref not in self.where_work:
                self.error(where, "unknown_work", f"RightShareWorkReference {work_ref!r} is not in the WorkList")

    def finish(self) -> None:
        """The works, once every share of the message has been read (the RightShareList comes last)."""
        for ref, found in self.writers.items():
            iswc = self.iswc_by_work_ref[ref]
            self.here = self.where_work[ref]
            try:
                people = dict(found)
                people.update({(p, "Publisher"): c for p, c in
                               _publishers(self.statements.get(ref, []), lambda p: self.out.parties[p].name).items()})
                self.out.works[iswc] = Work(iswc=iswc, title=self.titles[ref],
                                            contributors=tuple(people[k] for k in sorted(people)))
            except ValueError as exc:
                self.error(f"work {ref}", "publishing_shares_exceed", f"work {iswc}: {exc}")
                self.out.work_links = {k: v for k, v in self.out.work_links.items() if v[0] != iswc}
        self.here = ""


def read_ddex(data: bytes | Path, *, source: str, validate_xsd: bool = False, xsd_dir: Path | None = None) -> _Extract:
    """Parse and check one message (bytes or a file, streamed) into records without touching the ledger."""
    if isinstance(data, bytes) and len(data) > MAX_BYTES:
        raise DdexRejected("xml_too_large", f"message is {len(data)} bytes; the limit is {MAX_BYTES}")
    root_name, ns = scan_message(data)
    mwn = root_name in MWN_MESSAGE_TYPES and ns in MWN_NAMESPACES
    if not mwn and (root_name not in MESSAGE_TYPES or ns not in ERN_NAMESPACES):
        raise DdexRejected("ddex_unsupported_message",
                           f"expected an ERN 4.x or 3.8.x {' / '.join(MESSAGE_TYPES)} or an MWN 1.1 / 1.3 "
                           f"{' / '.join(MWN_MESSAGE_TYPES)}, found {root_name!r} in namespace {ns!r}")
    schema, against = None, ""
    if validate_xsd:
        folder = xsd_dir if xsd_dir is not None else default_xsd_dir()
        if folder is None:
            raise DdexRejected("xsd_unavailable", "no DDEX XSD directory: set LINERNOTES_DDEX_XSD_DIR")
        rel, target = xsd_for(ns, folder)
        if target != ns:  # a 3.8.x message checked under 3.8.3: the namespace is mapped on a whole tree
            validate_against_xsd(data if isinstance(data, bytes) else data.read_bytes(), ns, folder)
        else:  # checked while it is read, in bounded memory
            schema, against = _schema(str(folder / rel), str(folder)), f"{rel} ({_label(ns)})"
    reader = (_MwnReader if mwn else _Reader)(root_name, ns, source)
    try:
        return reader.read(_stream(data, schema))
    except etree.XMLSyntaxError as exc:
        last = exc.error_log.last_error if exc.error_log else None
        if last is not None and last.domain_name == "SCHEMASV":
            raise DdexRejected("xsd_invalid", f"message does not validate against {against}: "
                                              f"{_summarize(list(exc.error_log))} (read up to {reader.here or 'the start'})"
                               ) from exc
        raise DdexRejected("xml_malformed", f"not well-formed XML: {exc}") from exc
    except (LookupError, UnicodeError) as exc:
        raise DdexRejected("xml_malformed", f"not well-formed XML: {exc}") from exc


def import_ddex(con: duckdb.DuckDBPyConnection, path: str | Path, *, actor: Principal | str, validate_xsd: bool = False,
                xsd_dir: str | Path | None = None, strict: bool = False, roles: RoleBook | None = None,
                supersede: Supersession | None = None, match_names: bool = False) -> ImportReport:
    """Import one DDEX ERN or MWN message in one ``rights.import`` command, or reject it with a reason.

    Parties, recordings and deals are written as rights events; a record that would loosen a
    restriction recorded since is refused as ``rights_conflict`` (see :mod:`licensing.records`).
    """
    path = Path(path)
    subject = ledger_ref(con, path)
    if supersede is not None:
        authorize(con, actor, "rights.supersede", subject, roles=roles)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise DdexRejected("xml_too_large", f"message is {size} bytes; the limit is {MAX_BYTES}")
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        return _reject(con, path, None, "unreadable_file", str(exc), actor, roles)
    except DdexRejected as exc:
        return _reject(con, path, None, exc.reason_code, exc.message, actor, roles)
    file_sha = digest.hexdigest()
    if _imported_cleanly(con, file_sha, "ddex"):
        return ImportReport(path=str(path), kind="ddex", file_sha256=file_sha, already_imported=True)
    try:
        extract = read_ddex(path, source=path.name, validate_xsd=validate_xsd,
                            xsd_dir=Path(xsd_dir) if xsd_dir is not None else None)
        if strict and extract.errors:
            first = extract.errors[0]
            raise DdexRejected("ddex_strict_item_errors",
                               f"{len(extract.errors)} item(s) invalid, first: {first.source_ref}: {first.message}")
    except DdexRejected as exc:
        return _reject(con, path, file_sha, exc.reason_code, exc.message, actor, roles)

    if _already_applied(con, extract):
        return ImportReport(path=str(path), kind="ddex", file_sha256=file_sha, already_imported=True)
    newer = _newer_message(con, extract)
    if newer is not None:
        return _reject(con, path, file_sha, "ddex_stale_message", newer, actor, roles)

    source = f"ddex:{path.name}:{extract.message_id}"
    evidence = f"DDEX message {extract.message_id} from {extract.sender} ({path.name})"
    errors = list(extract.errors)
    with command(con, actor, "rights.import", subject, roles=roles) as w:
        resolution = resolve_parties(w.con, extract.parties.values(), match_names=match_names)
        _remap(extract, resolution)
        errors += _link_recordings(w.con, extract)
        events = records.upsert_parties(w, list(resolution.parties.values()), source=source).events
        affected: set[str] = set()
        deals: list[str] = []
        recording_events, same, refused = records.apply_recordings(w, extract.recordings, source=source,
                                                                   supersede=supersede)
        for isrc, exc in refused:
            errors.append(RecordError(source_ref=f"recording {isrc}", reason_code="rights_conflict",
                                      message=exc.message))
        recordings = sorted({r.isrc for r in extract.recordings} - {isrc for isrc, _ in refused})
        events += recording_events
        affected |= set(recordings) - set(same)
        unchanged = len(same)
        works = []
        for work in extract.works.values():
            try:
                event = records.apply_work(w, work, source=source, supersede=supersede)
            except records.RightsConflict as exc:
                errors.append(RecordError(source_ref=f"work {work.iswc}", reason_code="rights_conflict",
                                          message=exc.message))
                continue
            works.append(work.iswc)
            if event:
                events.append(event)
                affected |= records.event_isrcs(w.con, event)
        refused_releases: set[str] = set()
        for key in sorted(set(extract.releases) - set(extract.takedowns)):
            try:
                overridden = records.check_loosening(w, "release", key, ["withdrawn"], supersede)
            except records.RightsConflict as exc:
                refused_releases.add(key)
                errors.append(RecordError(source_ref=f"release {key}", reason_code="rights_conflict",
                                          message=exc.message))
                continue
            if overridden:
                events.append(_restore_release(w, key, overridden, supersede, source))
        for deal in extract.deals:
            if any(deal.deal_id.startswith(f"ddex:{key}:") for key in refused_releases):
                continue
            try:
                event = records.apply_deal(w, deal, source=source, supersede=supersede)
            except records.RightsConflict as exc:
                errors.append(RecordError(source_ref=f"deal {deal.deal_id}", reason_code="rights_conflict",
                                          message=exc.message))
                continue
            deals.append(deal.deal_id)
            if event:
                events.append(event)
                affected |= records.event_isrcs(w.con, event)
            else:
                unchanged += 1
        ended: list[str] = []
        for key in sorted(set(extract.releases) - refused_releases):
            isrcs = _set_release_recordings(w, key, extract.releases[key], extract)
            sent = extract.deal_ids
            day = (extract.created_at or datetime.now(UTC)).date()
            for deal_id in _release_deals(w.con, key):
                # a deal of the release that this message no longer carries (an update) or a takedown ends
                if deal_id not in sent or key in extract.takedowns:
                    event = _end_deal(w, deal_id, day, source, evidence)
                    if event:
                        events.append(event)
                        ended.append(deal_id)
                        affected |= records.event_isrcs(w.con, event)
            if key in extract.takedowns:
                events.append(_withdraw_release(w, key, isrcs, extract, source, evidence))
                affected |= isrcs
        quarantine(w, [Rejection(e.source_ref, e.reason_code, e.message) for e in errors], stage="rights_import")
        conflicts = sum(e.reason_code == "rights_conflict" for e in errors)
        w.upsert("ddex_messages", [{"sender": extract.sender, "message_id": extract.message_id,
                                    "created_at": extract.created_at, "kind": extract.kind,
                                    "ern_version": extract.version, "release_keys": _ordering_keys(extract),
                                    "file_sha256": file_sha, "conflicts": conflicts, "applied_at": datetime.now(UTC)}],
                 key=["sender", "message_id"])
        summary = {"ern": extract.version, "message_id": extract.message_id, "message_kind": extract.kind,
                   "sender": extract.sender, "file_sha256": file_sha, "parties": len(resolution.parties),
                   "parties_matched": resolution.matched, "recordings": recordings, "works": works, "deals": deals,
                   "deals_ended": ended, "withdrawn_releases": sorted(extract.takedowns), "errors": len(errors),
                   "conflicts": conflicts, "events": events}
        w.upsert("rights_imports", [{"file_sha256": file_sha, "kind": "ddex", "path": subject, "imported_by": w.actor,
                                     "imported_at": datetime.now(UTC), "summary": json.dumps(summary)}],
                 key=["file_sha256", "kind"])
        summary["redecided"] = redecide(w, affected)
        w.payload.update(summary)
    return ImportReport(path=str(path), kind="ddex", file_sha256=file_sha, parties=len(resolution.parties),
                        recordings=len(recordings), deals=len(deals), unchanged=unchanged, errors=tuple(errors))


def _link_recordings(con: duckdb.DuckDBPyConnection, extract: _Extract) -> list[RecordError]:
    """An MWN's recording-to-work links as recordings to write: a recording new to the ledger, or one
    recorded without a work, gets the work; one recorded with another work is left as it is and reported."""
    errors = []
    for isrc, (iswc, title, where) in sorted(extract.work_links.items()):
        row = con.execute("SELECT iswc, title, ai_generated, ai_evidence FROM recordings WHERE isrc = ?",
                          [isrc]).fetchone()
        if row is None:
            extract.recordings.append(Recording(isrc=isrc, iswc=iswc, title=title))
        elif row[0] is None:
            people = con.execute("SELECT party_id, name, role FROM recording_contributors WHERE isrc = ?",
                                 [isrc]).fetchall()
            extract.recordings.append(Recording(
                isrc=isrc, iswc=iswc, title=row[1] or title, ai_generated=row[2], ai_evidence=row[3],
                contributors=tuple(RecordingContributor(party_id=p, name=n, role=r) for p, n, r in people)))
        elif row[0] != iswc:
            errors.append(RecordError(source_ref=where, reason_code="recording_work_conflict",
                                      message=f"recording {isrc} is recorded as performing {row[0]}; the message "
                                              f"links it to {iswc}: left as recorded"))
    return errors


def _already_applied(con: duckdb.DuckDBPyConnection, extract: _Extract) -> bool:
    """A re-delivery of a message already applied without conflicts changes nothing."""
    row = con.execute("SELECT conflicts FROM ddex_messages WHERE sender = ? AND message_id = ?",
                      [extract.sender, extract.message_id]).fetchone()
    return row is not None and row[0] == 0


def _ordering_keys(extract: _Extract) -> list[str]:
    """What a message's order is kept per: its releases (ERN), else its works as ``work:<ISWC>`` (MWN)."""
    return sorted(extract.releases) or sorted(f"work:{iswc}" for iswc in extract.works)


def _newer_message(con: duckdb.DuckDBPyConnection, extract: _Extract) -> str | None:
    """Why the message is stale: a later message (by MessageCreatedDateTime, then MessageId) about one of its
    releases (or, for MWN, works) was applied already; None when it is not."""
    keys = _ordering_keys(extract)
    if extract.created_at is None or not keys:
        return None
    row = con.execute(
        "SELECT message_id, created_at, k.key FROM ddex_messages, unnest(release_keys) AS k(key) "
        "WHERE sender = ? AND message_id <> ? AND k.key IN (SELECT unnest(?::VARCHAR[])) "
        "AND (created_at > ? OR (created_at = ? AND message_id > ?)) ORDER BY created_at DESC, message_id DESC LIMIT 1",
        [extract.sender, extract.message_id, keys, extract.created_at, extract.created_at,
         extract.message_id]).fetchone()
    if row is None:
        return None
    return (f"message {extract.message_id} (created {extract.created_at:%Y-%m-%dT%H:%M:%S%z}) is older than message "
            f"{row[0]} (created {row[1]:%Y-%m-%dT%H:%M:%S%z}) already applied for "
            f"{'work ' + row[2][5:] if row[2].startswith('work:') else 'release ' + row[2]}: not applied")


def _release_deals(con: duckdb.DuckDBPyConnection, key: str) -> list[str]:
    return [r[0] for r in con.execute("SELECT deal_id FROM deals WHERE starts_with(deal_id, ?) ORDER BY deal_id",
                                      [f"ddex:{key}:"]).fetchall()]


def _set_release_recordings(w: Writer, key: str, isrcs: set[str], extract: _Extract) -> set[str]:
    """Record which recordings the release holds (a purge keeps what was recorded); return them."""
    known = {r[0] for r in w.con.execute("SELECT isrc FROM ddex_release_recordings WHERE release_key = ?",
                                         [key]).fetchall()}
    if extract.kind == "purge" or not isrcs:
        return known | isrcs
    w.supersede("ddex_release_recordings", "release_key = ? AND isrc NOT IN (SELECT unnest(?::VARCHAR[]))",
                [key, sorted(isrcs)])
    w.upsert("ddex_release_recordings", [{"release_key": key, "isrc": i, "message_id": extract.message_id}
                                         for i in sorted(isrcs - known)], key=["release_key", "isrc"])
    return isrcs


def _end_deal(w: Writer, deal_id: str, day: date, source: str, evidence: str) -> str | None:
    """End a DDEX deal the day before ``day`` (a deal not yet started loses its recordings instead)."""
    row = w.con.execute("SELECT valid_from, valid_to FROM deals WHERE deal_id = ?", [deal_id]).fetchone()
    isrcs = {r[0] for r in w.con.execute("SELECT isrc FROM deal_recordings WHERE deal_id = ?", [deal_id]).fetchall()}
    valid_from, valid_to = row
    end = day - timedelta(days=1)
    if valid_from is None or valid_from <= end:
        if valid_to is not None and valid_to <= end:
            return None
        w.update("deals", "deal_id = ?", [deal_id], {"valid_to": end})
        tightened, details = ["valid_to"], {"before": {"valid_to": valid_to}, "after": {"valid_to": end}}
    else:
        if not isrcs:
            return None
        w.supersede("deal_recordings", "deal_id = ?", [deal_id])
        w.supersede("rights_controllers", "deal_id = ?", [deal_id])
        tightened, details = ["recordings"], {"before": {"isrcs": sorted(isrcs)}, "after": {"isrcs": []}}
    return records.record_event(w, kind="deal.ended", subject_kind="deal", subject_id=deal_id, isrcs=isrcs,
                                tightened=tightened, evidence_ref=evidence, source=source, details=details)


def _withdraw_release(w: Writer, key: str, isrcs: set[str], extract: _Extract, source: str, evidence: str) -> str:
    """A takedown or purge: the release's recordings are withdrawn (``track_withdrawn``) with the message as evidence."""
    reason = (f"DDEX {'PurgeReleaseMessage' if extract.kind == 'purge' else 'takedown'} {extract.message_id} "
              f"from {extract.sender}: release {key} withdrawn")
    open_ids = {r[0] for r in w.con.execute(
        "SELECT track_id FROM track_withdrawals WHERE restored_at IS NULL AND delivery_id = ?",
        [f"ddex:{key}"]).fetchall()}
    tracks = [r[0] for r in w.con.execute("SELECT track_id FROM tracks WHERE isrc IN (SELECT unnest(?::VARCHAR[])) "
                                          "ORDER BY track_id", [sorted(isrcs)]).fetchall()]
    w.insert("track_withdrawals", [{"track_id": t, "delivery_id": f"ddex:{key}", "withdrawn_at": datetime.now(UTC),
                                    "reason": reason, "restored_at": None} for t in tracks if t not in open_ids])
    return records.record_event(w, kind="release.withdrawn", subject_kind="release", subject_id=key, isrcs=isrcs,
                                tightened=["withdrawn"], evidence_ref=evidence, source=source,
                                details={"message_id": extract.message_id, "kind": extract.kind, "tracks": tracks})


def _restore_release(w: Writer, key: str, overridden: list[str], supersede: Supersession | None, source: str) -> str:
    """A release delivered again after its withdrawal, with ``--supersede`` of that withdrawal: close it."""
    isrcs = {r[0] for r in w.con.execute("SELECT isrc FROM ddex_release_recordings WHERE release_key = ?",
                                         [key]).fetchall()}
    w.update("track_withdrawals", "delivery_id = ? AND restored_at IS NULL", [f"ddex:{key}"],
             {"restored_at": datetime.now(UTC)})
    return records.record_event(w, kind="release.restored", subject_kind="release", subject_id=key, isrcs=isrcs,
                                loosened=["withdrawn"], supersedes=overridden,
                                evidence_ref=supersede.evidence_ref if supersede else None, source=source)


def _remap(extract: _Extract, resolution: Resolution) -> None:
    """Point the message's contributors, licensors and rights controllers at the recorded parties."""
    m = resolution.map
    for i, rec in enumerate(extract.recordings):
        people = {(m(c.party_id), c.role): c.name for c in rec.contributors}
        extract.recordings[i] = rec.model_copy(update={"contributors": tuple(
            RecordingContributor(party_id=p, name=n, role=r) for (p, r), n in sorted(people.items()))})
    for iswc, work in extract.works.items():
        extract.works[iswc] = work.model_copy(update={"contributors": tuple(
            c.model_copy(update={"party_id": m(c.party_id)}) for c in work.contributors)})
    for i, deal in enumerate(extract.deals):
        extract.deals[i] = deal.model_copy(update={"licensor": m(deal.licensor), "rights_controllers": tuple(
            rc.model_copy(update={"party_id": m(rc.party_id)}) for rc in deal.rights_controllers)})


def _reject(con: duckdb.DuckDBPyConnection, path: Path, file_sha: str | None, reason_code: str, message: str,
            actor: Principal | str, roles: RoleBook | None) -> ImportReport:
    err = RecordError(source_ref=str(path), reason_code=reason_code, message=message)
    with command(con, actor, "rights.import", ledger_ref(con, path), roles=roles,
                 record_as="rights.import.rejected") as w:
        quarantine(w, [Rejection(str(path), reason_code, message)], stage="rights_import")
        w.payload.update({"rejected": True, "format": "ddex", "reason_code": reason_code, "message": message,
                          "file_sha256": file_sha})
    return ImportReport(path=str(path), kind="ddex", file_sha256=file_sha, rejected=True, errors=(err,))

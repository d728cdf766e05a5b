"""Test messages derived from DDEX's official ERN 4.3 sample "4 SimpleAudioSingle.xml" by editing it with lxml.

Every derived message keeps the sample's structure; only the edited values change, so the reader is
exercised on the official layout.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from tests.licensing.conftest import DDEX

SINGLE = DDEX / "ern43" / "4 SimpleAudioSingle.xml"
NS = "http://ddex.net/xml/ern/43"
# Valid ISNIs (ISO 7064 MOD 11-2 check characters)
ISNI_A = "000000012146438X"
ISNI_B = "0000000081266409"


def _el(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, tag)
    if text is not None:
        child.text = text
    return child


def single(path: Path, *, message_id: str = "W83814161", created: str = "2017-04-25T15:00:29+00:00",
           isrc: str = "GBAYC1700598", artist: str = "RIOPY", artist_ids: dict[str, str] | None = None,
           use_types: tuple[str, ...] | None = ("UseForTrainingGenerativeAI", "UseForDataMining"),
           end_date: str | None = None, takedown: bool = False, root: str = "NewReleaseMessage",
           extra_parties: list[tuple[str, str, dict[str, str], str]] = (), iswc: str | None = None,
           work_controllers: list[tuple[str, str, dict[str, str], float] | tuple[str, str, dict[str, str], float, str]] = ()) -> Path:
    """Write a derived single: the artist party's name/identifiers, one Worldwide deal with ``use_types``
    (or the sample's own deals when None; a deal without terms when ``takedown``), ``extra_parties`` as
    (reference, name, identifiers, contributor role) contributors of the recording, ``iswc`` its work and
    ``work_controllers`` (reference, name, identifiers, publishing share %[, territory]) the work's rights
    controllers."""
    doc = etree.parse(str(SINGLE))
    r = doc.getroot()
    r.tag = f"{{{NS}}}{root}"
    r.find("MessageHeader/MessageId").text = message_id
    r.find("MessageHeader/MessageCreatedDateTime").text = created
    r.find("ResourceList/SoundRecording/SoundRecordingEdition/ResourceId/ISRC").text = isrc
    party = r.find("PartyList/Party")
    party.find("PartyName/FullName").text = artist
    pid = party.find("PartyId")
    if artist_ids is not None:
        for child in list(pid):
            pid.remove(child)
        for scheme, value in artist_ids.items():
            _el(pid, scheme, value)
    plist, sr = r.find("PartyList"), r.find("ResourceList/SoundRecording")
    anchor = sr.find("Duration")
    for ref, name, ids, role in extra_parties:
        p = etree.Element("Party")
        _el(p, "PartyReference", ref)
        _el(_el(p, "PartyName"), "FullName", name)
        if ids:
            pe = _el(p, "PartyId")
            for scheme, value in ids.items():
                _el(pe, scheme, value)
        plist.append(p)
        c = etree.Element("Contributor")
        _el(c, "ContributorPartyReference", ref)
        _el(c, "Role", role)
        anchor.addprevious(c)
    if iswc:
        work = etree.Element("WorkId")
        _el(work, "ISWC", iswc)
        sr.find("DisplayTitleText").addprevious(work)
    listed: set[str] = set()
    for ref, name, ids, share, *territories in work_controllers:
        if ref not in listed:
            listed.add(ref)
            p = etree.Element("Party")
            _el(p, "PartyReference", ref)
            _el(_el(p, "PartyName"), "FullName", name)
            if ids:
                pe = _el(p, "PartyId")
                for scheme, value in ids.items():
                    _el(pe, scheme, value)
            plist.append(p)
        wrc = etree.Element("WorkRightsController")
        _el(wrc, "RightsControllerPartyReference", ref)
        _el(wrc, "RightsControlType", "RightsController")
        _el(wrc, "RightSharePercentage", f"{share:g}")
        for territory in territories:
            _el(wrc, "Territory", territory)
        anchor.addprevious(wrc)
    if use_types is not None or takedown:
        rd = r.find("DealList/ReleaseDeal")
        for deal in rd.findall("Deal"):
            rd.remove(deal)
        deal = _el(rd, "Deal")  # a Deal without DealTerms: the release is taken down
        if not takedown:
            terms = _el(deal, "DealTerms")
            _el(terms, "TerritoryCode", "Worldwide")
            period = _el(terms, "ValidityPeriod")
            _el(period, "StartDate", "2017-04-25")
            if end_date:
                _el(period, "EndDate", end_date)
            _el(terms, "CommercialModelType", "PayAsYouGoModel")
            for use in use_types or ():
                _el(terms, "UseType", use)
    path.write_bytes(etree.tostring(doc, xml_declaration=True, encoding="UTF-8"))
    return path


def purge(path: Path, *, message_id: str, created: str, grid: str = "A10302B0003989564F") -> Path:
    """A PurgeReleaseMessage for the sample's release, with the sample's header."""
    doc = etree.parse(str(SINGLE))
    src = doc.getroot()
    root = etree.Element(f"{{{NS}}}PurgeReleaseMessage", nsmap={"ern": NS})
    for name in ("LanguageAndScriptCode", "AvsVersionId"):
        if src.get(name):
            root.set(name, src.get(name))
    header = src.find("MessageHeader")
    header.find("MessageId").text = message_id
    header.find("MessageCreatedDateTime").text = created
    root.append(header)
    purged = _el(root, "PurgedRelease")
    _el(_el(purged, "ReleaseId"), "GRid", grid)
    path.write_bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))
    return path

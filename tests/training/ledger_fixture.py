"""A small, realistic ledger: three recordings, two deals, split ownership, an approved release,
real encoded audio, and real shards built from it; every row written through the write path."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import av
import duckdb
import numpy as np

from licensing.releases import approve_release, propose_release
from licensing.revocation import revoke_consent
from schemas.policy import Policy
from store.database import connect
from tests.ledger_seed import POLICY as DEFAULT_POLICY
from tests.ledger_seed import catalog, consent, deal, import_rights, party
from tests.roles import write_test_roles

RELEASE = "rel_test0001"
PURPOSE = "UseForTrainingNonGenerativeAI"
ON = date(2025, 1, 1)
T0 = datetime(2025, 1, 1, tzinfo=UTC)
ARTIST = "P-fixture-artist"
# The default policy, except that rights-controller shares need not add up to 100 %: deal_2 names a
# controller for a third of Tone C only, and the rest is attributed to no one (the attribution test's case).
POLICY = Policy.model_validate(DEFAULT_POLICY.model_dump() | {
    "policy_id": "fixture-partial-shares", "purposes": {
        purpose: rule.model_dump() | ({"require_full_shares": False} if purpose == PURPOSE else {})
        for purpose, rule in DEFAULT_POLICY.purposes.items()}})


@dataclass(frozen=True)
class FixtureTrack:
    track_id: str
    isrc: str
    title: str
    deal_id: str
    controllers: tuple[tuple[str, float], ...]


TRACKS = (
    FixtureTrack("trk_00000000000000a1", "USAAA2500001", "Tone A", "deal_1", (("pty_alpha", 50.0), ("pty_beta", 50.0))),
    FixtureTrack("trk_00000000000000a2", "USAAA2500002", "Tone B", "deal_1", (("pty_alpha", 100.0),)),
    FixtureTrack("trk_00000000000000a3", "GBBBB2500003", "Tone C", "deal_2", (("pty_gamma", 33.33),)),
)
PARTIES = {"pty_alpha": "Alpha Records", "pty_beta": "Beta Publishing", "pty_gamma": "Gamma Collective"}
LICENSES = {"deal_1": "contract:ALPHA-2025-01", "deal_2": "CC-BY-SA-3.0"}


def write_tone(path: Path, *, freq: float, seconds: float = 24.5, rate: int = 22050, seed: int = 0) -> Path:
    """A mono FLAC: a tone and its fifth plus a little noise, encoded with FFmpeg through PyAV."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    noise = np.random.default_rng(seed).standard_normal(n)
    wave = 0.3 * np.sin(2 * np.pi * freq * t) + 0.2 * np.sin(3 * np.pi * freq * t) + 0.03 * noise
    pcm = (np.clip(wave, -1, 1) * 32767).astype(np.int16)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("flac", rate=rate)
        stream.layout = "mono"
        for start in range(0, n, 4096):
            frame = av.AudioFrame.from_ndarray(pcm[None, start:start + 4096].copy(), format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def build(db_path: Path, output_dir: Path, *, crops_per_track: int = 6) -> str:
    """Build the release's shards with the real writer; return the manifest's location."""
    from schemas.shards import ShardConfig
    from shards.writer import MANIFEST_NAME, build_shards

    with connect(db_path) as con:
        build_shards(con, RELEASE, output_uri=str(output_dir), config=ShardConfig(crops_per_track=crops_per_track),
                     actor="data@label")
    return str(output_dir / MANIFEST_NAME)


def seed_ledger(db_path: Path, *, status: str = "approved", audio_dir: Path | None = None,
                tracks: tuple[FixtureTrack, ...] = TRACKS) -> None:
    """Catalog, rights and an approved release, written the way the other packages write them (with real
    audio when ``audio_dir`` is given; otherwise the catalog points at files that do not exist)."""
    write_test_roles(db_path.parent)
    rows = []
    for i, t in enumerate(tracks):
        source, sha = f"/nonexistent/{t.track_id}.flac", f"{i:064x}"
        if audio_dir is not None:
            audio_dir.mkdir(parents=True, exist_ok=True)
            path = write_tone(audio_dir / f"{t.track_id}.flac", freq=220.0 * (i + 1) ** 1.5, seed=i)
            source, sha = ledger_ref_for(db_path, path), hashlib.sha256(path.read_bytes()).hexdigest()
        rows.append({"track_id": t.track_id, "isrc": t.isrc, "title": t.title, "artists": ["Fixture Artist"],
                     "party_ids": [ARTIST], "source_path": source, "audio_sha256": sha})
    deals = [deal(deal_id, "pty_alpha", license_, [(p, t.isrc, share) for t in tracks if t.deal_id == deal_id
                                                    for p, share in t.controllers])
             for deal_id, license_ in LICENSES.items()]
    with connect(db_path) as con:
        catalog(con, rows, delivery_id="dlv_1", received_at=T0)
        import_rights(con, db_path.parent / "rights" / "fixture.json",
                      parties=[party(p, n) for p, n in {**PARTIES, ARTIST: "Fixture Artist"}.items()],
                      deals=deals, consents=[consent("C-fixture-artist", ARTIST)])
        propose_release(con, purpose=PURPOSE, territory="GB", on_date=ON, actor="ml@label", policy=POLICY,
                        release_id=RELEASE)
        if status == "approved":
            approve_release(con, RELEASE, actor="rights@label", comment="ok")


def deny_track(con: duckdb.DuckDBPyConnection, track: FixtureTrack) -> None:
    """The artist withdraws consent for one recording after approval (the policy denies it from then on)."""
    revoke_consent(con, party_id=ARTIST, isrc=track.isrc, actor="rights@label", evidence_ref="test://withdrawal")


def ledger_ref_for(db_path: Path, path: Path) -> str:
    """A location as the ledger records it: relative to the data directory when inside it."""
    try:
        return path.resolve().relative_to(db_path.parent.resolve()).as_posix()
    except ValueError:
        return str(path)

"""A small, realistic ledger: three recordings, two deals, split ownership, an approved release,
real encoded audio, and real shards built from it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import av
import duckdb
import numpy as np

from store.database import connect

RELEASE = "rel_test0001"
POLICY = "a" * 64
T0 = datetime(2025, 1, 1, tzinfo=UTC)


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
    """Build the release's shards with the real writer; return the manifest URI."""
    from schemas.shards import ShardConfig
    from shards.writer import MANIFEST_NAME, build_shards

    with connect(db_path) as con:
        build_shards(con, RELEASE, output_uri=str(output_dir), config=ShardConfig(crops_per_track=crops_per_track),
                     actor="data@label")
    return str(output_dir / MANIFEST_NAME)


def seed_ledger(db_path: Path, *, status: str = "approved", audio_dir: Path | None = None,
                tracks: tuple[FixtureTrack, ...] = TRACKS) -> None:
    """Write catalog, licensing and release rows the way the other packages would (with real audio
    when ``audio_dir`` is given)."""
    with connect(db_path) as con:
        con.execute("BEGIN")
        con.execute("INSERT INTO policies VALUES (?, 'default', '1', ?, ?)", [POLICY, json.dumps({}), T0])
        for party_id, name in PARTIES.items():
            con.execute("INSERT INTO parties VALUES (?, ?, NULL, NULL)", [party_id, name])
        for deal_id, license_ in LICENSES.items():
            con.execute(
                "INSERT INTO deals VALUES (?, 'pty_alpha', ?, ['ai_training'], ['Worldwide'], [], NULL, NULL, [], "
                "'fixture', ?)", [deal_id, license_, T0])
        con.execute("INSERT INTO deliveries VALUES ('dlv_1', 'fixture', ?, NULL, ?, 0)", [T0, len(tracks)])
        for i, t in enumerate(tracks):
            source, sha = f"/nonexistent/{t.track_id}.flac", f"{i:064x}"
            if audio_dir is not None:
                audio_dir.mkdir(parents=True, exist_ok=True)
                path = write_tone(audio_dir / f"{t.track_id}.flac", freq=220.0 * (i + 1) ** 1.5, seed=i)
                source, sha = str(path), hashlib.sha256(path.read_bytes()).hexdigest()
            con.execute(
                "INSERT INTO tracks (track_id, delivery_id, isrc, title, artists, license_tag, source_path, "
                "audio_sha256, ingested_at) VALUES (?, 'dlv_1', ?, ?, ['Fixture Artist'], NULL, ?, ?, ?)",
                [t.track_id, t.isrc, t.title, source, sha, T0])
            con.execute("INSERT INTO deal_recordings VALUES (?, ?)", [t.deal_id, t.isrc])
            for party_id, share in t.controllers:
                con.execute("INSERT INTO rights_controllers VALUES (?, ?, ?, ?)", [t.deal_id, t.isrc, party_id, share])
            decision_id = f"dec_{i}"
            con.execute(
                "INSERT INTO decisions VALUES (?, ?, ?, 'ai_training', 'Worldwide', ?, TRUE, [], 'allowed by deal', "
                "?, ?, ?, [], NULL, ?)", [decision_id, t.track_id, t.isrc, date(2025, 1, 1), POLICY, "b" * 64,
                                          t.deal_id, T0])
            con.execute("INSERT INTO release_tracks VALUES (?, ?, ?, ?)", [RELEASE, t.track_id, t.isrc, decision_id])
        con.execute(
            "INSERT INTO releases VALUES (?, 'ai_training', 'Worldwide', ?, ?, ?, 'rights@label', ?, ?, ?)",
            [RELEASE, date(2025, 1, 1), POLICY, status, T0, len(tracks), "c" * 64])
        if status == "approved":
            con.execute("INSERT INTO approvals VALUES (?, 'head.of.rights@label', 'approve', 'ok', ?)",
                        [RELEASE, T0 + timedelta(hours=1)])
        con.execute("COMMIT")


def deny_track(con: duckdb.DuckDBPyConnection, track: FixtureTrack, *, hours_after: int = 2,
               allowed: bool = False, decision_id: str | None = None) -> None:
    """A later decision for one track, e.g. after its rights holder revoked consent."""
    con.execute(
        "INSERT INTO decisions VALUES (?, ?, ?, 'ai_training', 'Worldwide', ?, ?, ?, 'consent revoked', ?, ?, ?, [], "
        "NULL, ?)",
        [decision_id or f"dec_late_{track.track_id}_{hours_after}", track.track_id, track.isrc, date(2025, 1, 2),
         allowed, [] if allowed else ["consent_revoked"], POLICY, "d" * 64, track.deal_id,
         T0 + timedelta(hours=hours_after)])

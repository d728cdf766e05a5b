"""A real ledger for shard tests: catalog, rights, decisions and an approved release, with real audio,
all written through the write path."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import av
import numpy as np

from store.database import connect
from store.digest import sha256_file
from tests.ledger_seed import (
    consent_row,
    decide_release,
    fingerprint_row,
    propose_release,
    refuse_recording,
    write_rows,
)
from tests.roles import write_test_roles

PURPOSE = "UseForTrainingNonGenerativeAI"
TERRITORY = "GB"
ON = date(2025, 1, 10)
DELIVERY = "dlv_1"
T0 = datetime(2025, 1, 10, 12, 0, tzinfo=UTC)


def write_audio(path: Path, seconds: float, *, freq: float, rate: int = 44100, codec: str = "flac",
                channels: int = 2, noise_seed: int = 0) -> Path:
    """Encode a chord plus a little noise with FFmpeg through PyAV."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    rng = np.random.default_rng(noise_seed)
    mono = 0.3 * np.sin(2 * np.pi * freq * t) + 0.2 * np.sin(2 * np.pi * freq * 1.25 * t) + 0.02 * rng.standard_normal(n)
    data = np.repeat(mono[None, :], channels, axis=0).astype(np.float32)
    fmt = {"flac": "s16", "libmp3lame": "fltp", "vorbis": "fltp", "pcm_s16le": "s16"}[codec]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "stereo" if channels == 2 else "mono"
        step = 4096
        for start in range(0, n, step):
            chunk = data[:, start:start + step]
            if fmt == "s16":
                arr = (np.clip(chunk, -1, 1) * 32767).astype(np.int16).T.reshape(1, -1).copy()
                frame = av.AudioFrame.from_ndarray(arr, format="s16", layout=stream.layout.name)
            else:
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout=stream.layout.name)
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@dataclass
class Release:
    db_path: Path
    release_id: str
    track_ids: list[str]
    audio: dict[str, Path] = field(default_factory=dict)
    decision_ids: dict[str, str] = field(default_factory=dict)


def isrc_for(i: int) -> str:
    return f"GBAYE25{i:05d}"


def make_release(tmp_path: Path, *, seconds: list[float], release_id: str = "rel_test",
                 status: str = "approved", bad_sha: set[int] | None = None, codec: str = "flac",
                 db_name: str = "ledger.duckdb") -> Release:
    """A catalog of real audio with its rights, decided by the default policy, frozen as a release.

    Every row goes through the write path; the tracks' audio paths are relative to the data directory.
    """
    db_path = tmp_path / db_name
    write_test_roles(db_path.parent)
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    ext = {"flac": "flac", "libmp3lame": "mp3", "vorbis": "ogg", "pcm_s16le": "wav"}[codec]
    release = Release(db_path=db_path, release_id=release_id, track_ids=[])
    tracks, contributors, fingerprints, recordings, controllers = [], [], [], [], []
    for i, secs in enumerate(seconds):
        track_id = f"trk_{i:016x}"
        isrc = isrc_for(i)
        path = write_audio(audio_dir / f"{track_id}.{ext}", secs, freq=220.0 * (1 + i % 5), codec=codec, noise_seed=i)
        sha = "0" * 64 if bad_sha and i in bad_sha else sha256_file(path)
        tracks.append({"track_id": track_id, "delivery_id": DELIVERY, "isrc": isrc, "isrc_assigned": False,
                       "ai_generated": False, "title": f"Tone {i}",
                       "artists": ["Ada Fixture"], "source_path": path.relative_to(db_path.parent).as_posix(),
                       "audio_sha256": sha, "ingested_at": T0})
        contributors.append({"track_id": track_id, "party_id": "pty_artist", "name": "Ada Fixture",
                             "role": "MainArtist"})
        fingerprints.append(fingerprint_row(track_id, i, delivery_id=DELIVERY))
        recordings.append({"deal_id": "deal_1", "isrc": isrc})
        controllers += [{"deal_id": "deal_1", "isrc": isrc, "party_id": "pty_label", "share": 75.0},
                        {"deal_id": "deal_1", "isrc": isrc, "party_id": "pty_artist", "share": 25.0}]
        release.track_ids.append(track_id)
        release.audio[track_id] = path
    with connect(db_path) as con:
        write_rows(con, "catalog.ingest", f"delivery:{DELIVERY}", {
            "deliveries": [{"delivery_id": DELIVERY, "source": "fixture", "received_at": T0,
                            "track_count": len(tracks), "quarantined_count": 0}],
            "tracks": tracks, "contributors": contributors})
        write_rows(con, "fingerprint.store", f"delivery:{DELIVERY}", {"fingerprints": fingerprints})
        write_rows(con, "rights.import", "fixture rights", {
            "parties": [{"party_id": "pty_label", "name": "Fixture Records"},
                        {"party_id": "pty_artist", "name": "Ada Fixture"}],
            "deals": [{"deal_id": "deal_1", "licensor_party_id": "pty_label", "license": "contract:FX-1",
                       "use_types": [PURPOSE], "territories_included": ["Worldwide"], "territories_excluded": [],
                       "valid_from": date(2024, 1, 1), "valid_to": None, "conditions": [], "source": "fixture",
                       "imported_at": T0}],
            "deal_recordings": recordings, "rights_controllers": controllers,
            "consents": [consent_row("cns_1", "pty_artist", granted_at=T0)]})
        frozen = propose_release(con, release_id, purpose=PURPOSE, territory=TERRITORY, on_date=ON,
                                 proposed_by="ml@x", proposed_at=T0)
        release.decision_ids = {t: d for t, _, d in frozen}
        if status in ("approved", "revoked"):
            decide_release(con, release_id, "approve", actor="rights@label", comment="looks right",
                           at=T0 + timedelta(hours=1))
        if status == "revoked":
            decide_release(con, release_id, "revoke", actor="rights@label", comment="deal under dispute",
                           at=T0 + timedelta(hours=2))
        elif status == "rejected":
            decide_release(con, release_id, "reject", actor="rights@label", comment="not this one")
    return release


def deny_since(db_path: Path, track_id: str, isrc: str) -> str:
    """The artist withdraws consent for one recording after approval: the policy denies it from now on."""
    with connect(db_path) as con:
        return refuse_recording(con, "pty_artist", isrc, at=datetime.now(UTC))


def set_status(db_path: Path, release_id: str, status: str) -> None:
    """Revoke (or reject) the release the way the rights team does."""
    action = {"revoked": "revoke", "rejected": "reject"}[status]
    with connect(db_path) as con:
        decide_release(con, release_id, action, actor="rights@label", comment=f"{status} in a test")

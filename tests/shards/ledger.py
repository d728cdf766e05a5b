"""A real ledger for shard tests: catalog, rights, decisions and an approved release, with real audio."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import numpy as np

from store.database import connect
from store.digest import sha256_file

PURPOSE = "ai_training"
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


def isrc_for(i: int) -> str:
    return f"GBAYE25{i:05d}"


def make_release(tmp_path: Path, *, seconds: list[float], release_id: str = "rel_test",
                 status: str = "approved", bad_sha: set[int] | None = None, codec: str = "flac",
                 db_name: str = "ledger.duckdb") -> Release:
    """Insert tracks, parties, deals, consents, allow decisions and an approved release into a DuckDB file."""
    db_path = tmp_path / db_name
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    ext = {"flac": "flac", "libmp3lame": "mp3", "vorbis": "ogg", "pcm_s16le": "wav"}[codec]
    release = Release(db_path=db_path, release_id=release_id, track_ids=[])
    with connect(db_path) as con:
        con.execute("INSERT INTO parties VALUES ('pty_label', 'Fixture Records', NULL, NULL) ON CONFLICT DO NOTHING")
        con.execute("INSERT INTO parties VALUES ('pty_artist', 'Ada Fixture', NULL, NULL) ON CONFLICT DO NOTHING")
        con.execute("INSERT INTO deals VALUES ('deal_1', 'pty_label', 'contract:FX-1', ['ai_training'], ['WORLD'], [], "
                    "DATE '2024-01-01', NULL, [], 'fixture', ?) ON CONFLICT DO NOTHING", [T0])
        con.execute("INSERT INTO consents VALUES ('cns_1', 'pty_artist', 'all', NULL, 'allowed', 'allowed', 'allowed', "
                    "'allowed', 'evidence/cns_1.pdf', NULL, ?, NULL, 'fixture') ON CONFLICT DO NOTHING", [T0])
        for i, secs in enumerate(seconds):
            track_id = f"trk_{i:016x}"
            isrc = isrc_for(i)
            path = write_audio(audio_dir / f"{track_id}.{ext}", secs, freq=220.0 * (1 + i % 5), codec=codec, noise_seed=i)
            sha = sha256_file(path)
            if bad_sha and i in bad_sha:
                sha = "0" * 64
            con.execute(
                "INSERT INTO tracks (track_id, delivery_id, isrc, title, artists, source_path, audio_sha256, "
                "ingested_at) VALUES (?, 'dlv_1', ?, ?, ?, ?, ?, ?)",
                [track_id, isrc, f"Tone {i}", ["Ada Fixture"], str(path), sha, T0],
            )
            con.execute("INSERT INTO deal_recordings VALUES ('deal_1', ?)", [isrc])
            con.execute("INSERT INTO rights_controllers VALUES ('deal_1', ?, 'pty_label', 75.0)", [isrc])
            con.execute("INSERT INTO rights_controllers VALUES ('deal_1', ?, 'pty_artist', 25.0)", [isrc])
            decision_id = f"dec_{release_id}_{i}"
            con.execute(
                "INSERT INTO decisions VALUES (?, ?, ?, ?, 'WORLD', DATE '2025-01-10', TRUE, ['allowed'], 'ok', "
                "'pol_hash_1', 'in_hash', 'deal_1', ['cns_1'], NULL, ?)",
                [decision_id, track_id, isrc, PURPOSE, T0],
            )
            release.track_ids.append(track_id)
            release.audio[track_id] = path
        con.execute("INSERT INTO releases VALUES (?, ?, 'WORLD', DATE '2025-01-10', 'pol_hash_1', ?, 'rights@x', ?, ?, ?)",
                    [release_id, PURPOSE, status, T0, len(seconds), "c" * 64])
        for i, track_id in enumerate(release.track_ids):
            con.execute("INSERT INTO release_tracks VALUES (?, ?, ?, ?)",
                        [release_id, track_id, isrc_for(i), f"dec_{release_id}_{i}"])
        if status in ("approved", "revoked"):
            con.execute("INSERT INTO approvals VALUES (?, 'approver@x', 'approve', 'looks right', ?)",
                        [release_id, T0 + timedelta(hours=1)])
    return release


def deny_since(db_path: Path, track_id: str, isrc: str, *, hours: int = 5) -> str:
    """Record a newer deny decision for a track (e.g. consent withdrawn)."""
    decision_id = f"dec_deny_{track_id}_{hours}"
    with connect(db_path) as con:
        con.execute(
            "INSERT INTO decisions VALUES (?, ?, ?, ?, 'WORLD', DATE '2025-02-01', FALSE, ['consent_revoked'], "
            "'consent withdrawn', 'pol_hash_1', 'in2', NULL, [], NULL, ?)",
            [decision_id, track_id, isrc, PURPOSE, T0 + timedelta(hours=hours)],
        )
    return decision_id


def set_status(db_path: Path, release_id: str, status: str) -> None:
    with connect(db_path) as con:
        con.execute("UPDATE releases SET status = ? WHERE release_id = ?", [status, release_id])

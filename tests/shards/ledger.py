"""A real ledger for shard tests: catalog, rights, decisions and an approved release, with real audio,
all written through the write path (see :mod:`tests.ledger_seed`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import av
import numpy as np

from licensing.releases import approve_release, propose_release, reject_release, revoke_release
from licensing.revocation import revoke_consent
from store.database import connect
from store.digest import sha256_file
from tests.ledger_seed import POLICY, catalog, consent, deal, import_rights, party
from tests.roles import write_test_roles

PURPOSE = "UseForTrainingNonGenerativeAI"
TERRITORY = "GB"
ON = date(2025, 1, 10)
DELIVERY = "dlv_1"
LABEL, ARTIST, CONSENT = "P-fixture-records", "P-ada-fixture", "C-ada-fixture"
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
                 db_name: str = "ledger.duckdb", tags: dict[int, dict[str, str]] | None = None,
                 album: str | None = None) -> Release:
    """Real audio, its rights imported, decided by the default policy and frozen as a release (then approved,
    revoked or rejected by the rights team), all through the write path; audio paths are relative to the
    data directory."""
    db_path = tmp_path / db_name
    write_test_roles(db_path.parent)
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    ext = {"flac": "flac", "libmp3lame": "mp3", "vorbis": "ogg", "pcm_s16le": "wav"}[codec]
    release = Release(db_path=db_path, release_id=release_id, track_ids=[])
    tracks, controllers = [], []
    for i, secs in enumerate(seconds):
        track_id = f"trk_{i:016x}"
        isrc = isrc_for(i)
        path = write_audio(audio_dir / f"{track_id}.{ext}", secs, freq=220.0 * (1 + i % 5), codec=codec, noise_seed=i)
        sha = "0" * 64 if bad_sha and i in bad_sha else sha256_file(path)
        tracks.append({"track_id": track_id, "isrc": isrc, "title": f"Tone {i}", "artists": ["Ada Fixture"],
                       "party_ids": [ARTIST], "source_path": path.relative_to(db_path.parent).as_posix(),
                       "audio_sha256": sha, "tags": (tags or {}).get(i), "album": album})
        controllers += [(LABEL, isrc, 75.0), (ARTIST, isrc, 25.0)]
        release.track_ids.append(track_id)
        release.audio[track_id] = path
    with connect(db_path) as con:
        catalog(con, tracks, delivery_id=DELIVERY, received_at=T0)
        import_rights(con, db_path.parent / "rights" / "fixture.json",
                      parties=[party(LABEL, "Fixture Records"), party(ARTIST, "Ada Fixture")],
                      deals=[deal("deal_1", LABEL, "contract:FX-1", controllers)],
                      consents=[consent(CONSENT, ARTIST)])
        frozen = propose_release(con, purpose=PURPOSE, territory=TERRITORY, on_date=ON, actor="ml@x",
                                 policy=POLICY, release_id=release_id)
        release.decision_ids = {t.track_id: t.decision_id for t in frozen.tracks}
        if status in ("approved", "revoked"):
            approve_release(con, release_id, actor="rights@label", comment="looks right")
        if status == "revoked":
            revoke_release(con, release_id, actor="rights@label", comment="deal under dispute")
        elif status == "rejected":
            reject_release(con, release_id, actor="rights@label", comment="not this one")
    return release


def deny_since(db_path: Path, track_id: str, isrc: str) -> None:
    """The artist withdraws consent for one recording after approval: the policy denies it from now on."""
    with connect(db_path) as con:
        revoke_consent(con, party_id=ARTIST, isrc=isrc, actor="rita.rights", evidence_ref="test://withdrawal")


def set_status(db_path: Path, release_id: str, status: str) -> None:
    """Revoke (or reject) the release the way the rights team does."""
    change = {"revoked": revoke_release, "rejected": reject_release}[status]
    with connect(db_path) as con:
        change(con, release_id, actor="rights@label", comment=f"{status} in a test")

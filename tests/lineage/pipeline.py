"""A ledger built the way the pipeline builds it: every row written by the real domain functions.

One delivery of five generated recordings goes through ingest, rights import, fingerprinting,
opt-out matching, evaluation, a release proposed and approved, a second release proposed and
rejected, shards, one real torchrun training run, and one refused training start. What is denied
and why: a refused consent, an AI-generated recording, a recording with no deal, and an opt-out
audio match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import av
import numpy as np

ON = date(2026, 3, 1)
PURPOSE = "UseForTrainingGenerativeAI"
TERRITORY = "GB"
RUN_ID = "run-lineage-1"
REFUSED_RUN_ID = "run-lineage-refused"
RELEASE_ID = "rel-lineage-gen"
REJECTED_RELEASE_ID = "rel-lineage-mining"


@dataclass(frozen=True)
class Song:
    isrc: str
    title: str
    artists: tuple[str, ...]
    freq: float
    ai_generated: bool = False


SONGS = (
    Song("GBLNR2600001", "First Light", ("Ada Lark",), 220.0),
    Song("GBLNR2600002", "Second Wind", ("Ada Lark", "Ben Byrd"), 277.0),
    Song("GBLNR2600003", "Third Rail", ("Cleo Refuser",), 330.0),      # refuses generative training
    Song("GBLNR2600004", "Fourth Wall", ("Ada Lark",), 392.0, True),    # declared AI-generated
    Song("GBLNR2600005", "Fifth Gear", ("Ben Byrd",), 440.0),           # no deal at all
    Song("GBLNR2600006", "Sixth Sense", ("Ben Byrd",), 523.0),          # opted out by audio
)
ALLOWED = ("GBLNR2600001", "GBLNR2600002")
ABSENT = "GBLNR2600003"
NEVER_DELIVERED = "GBLNR2699999"


@dataclass(frozen=True)
class Pipeline:
    home: Path
    db_path: Path
    release_id: str
    run_id: str
    manifest_uri: str
    run_dir: Path
    track_ids: dict[str, str]


def write_melody(path: Path, *, seed: int, seconds: float = 14.0, codec: str = "flac", rate: int = 22050) -> Path:
    """A mono melody of random notes (distinct enough for Chromaprint), encoded with FFmpeg through PyAV."""
    rng = np.random.default_rng(seed)
    note = int(0.25 * rate)
    freqs = 220.0 * 2 ** (rng.integers(0, 24, int(seconds / 0.25) + 1) / 12)
    t = np.arange(note) / rate
    wave = np.concatenate([0.4 * np.sin(2 * np.pi * f * t) + 0.2 * np.sin(4 * np.pi * f * t) for f in freqs])
    wave = wave[: int(seconds * rate)] + 0.01 * rng.standard_normal(int(seconds * rate))
    pcm = (np.clip(wave, -1, 1) * 32767).astype(np.int16)
    fmt = "s16" if codec == "flac" else "fltp"
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        for start in range(0, len(pcm), 4096):
            chunk = pcm[None, start:start + 4096]
            data = chunk.copy() if fmt == "s16" else (chunk / 32768).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(data, format=fmt, layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _party(name: str) -> str:
    from catalog.ingest import party_id_for

    return party_id_for(name)


def _rights(path: Path) -> Path:
    ada, ben, cleo = _party("Ada Lark"), _party("Ben Byrd"), _party("Cleo Refuser")
    label = "P-lineage-records"
    uses = ["UseForTrainingGenerativeAI", "UseForTrainingNonGenerativeAI", "UseForDataMining"]
    deals = [
        {"deal_id": "D-LNR-1", "licensor": label, "license": "contract:LNR-2026-01",
         "isrcs": ["GBLNR2600001", "GBLNR2600002", "GBLNR2600006"], "use_types": uses,
         "territories": {"include": ["Worldwide"], "exclude": []}, "valid_from": "2025-01-01", "valid_to": None,
         "conditions": ["attribution_required"],
         "rights_controllers": [{"party_id": label, "isrc": "GBLNR2600001", "share": 100.0},
                                {"party_id": label, "isrc": "GBLNR2600002", "share": 60.0},
                                {"party_id": ben, "isrc": "GBLNR2600002", "share": 40.0},
                                {"party_id": label, "isrc": "GBLNR2600006", "share": 100.0}]},
        {"deal_id": "D-LNR-2", "licensor": label, "license": "CC-BY-SA-3.0",
         "isrcs": ["GBLNR2600003", "GBLNR2600004"], "use_types": uses,
         "territories": {"include": ["Worldwide"], "exclude": []}, "valid_from": "2025-01-01", "valid_to": None,
         "conditions": ["attribution_required", "share_alike"],
         "rights_controllers": [{"party_id": label, "isrc": "GBLNR2600003", "share": 100.0},
                                {"party_id": label, "isrc": "GBLNR2600004", "share": 100.0}]},
    ]

    def consent(party: str, generative: str) -> dict[str, object]:
        return {"consent_id": f"C-{party}", "party_id": party, "scope": "all", "scope_ref": None,
                "ai_training": "allowed", "ai_generative_training": generative, "data_mining": "allowed",
                "ai_inference": "notAllowed", "evidence_ref": f"test://consent/{party}",
                "evidence_sha256": "e" * 64, "granted_at": "2026-01-15T00:00:00Z", "revoked_at": None}

    parties = [{"party_id": p, "name": n, "isni": None, "ipi": None}
               for p, n in ((label, "Lineage Records"), (ada, "Ada Lark"), (ben, "Ben Byrd"), (cleo, "Cleo Refuser"))]
    doc = {"schema_version": 1, "parties": parties, "deals": deals,
           "consents": [consent(ada, "allowed"), consent(ben, "allowed"), consent(cleo, "notAllowed")]}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def build_pipeline(root: Path) -> Pipeline:
    """Run every stage against a fresh data directory under ``root``."""
    from catalog.ingest import ingest_delivery
    from fingerprinting.batch import fingerprint_many
    from fingerprinting.ledger import match_catalog, register_optout, store_fingerprints
    from licensing.importers.tabular import import_rights_file
    from licensing.policy import load_policy
    from licensing.releases import approve_release, propose_release, reject_release
    from lineage.trace import ensure_snapshots
    from schemas.runs import TrainConfig
    from schemas.shards import ShardConfig
    from shards.writer import build_shards
    from store.database import connect
    from store.home import Home
    from store.paths import ledger_path
    from tests.roles import write_test_roles
    from training.launcher import TrainingRefused, launch_run

    home = Home.from_env(root / "home").ensure()
    write_test_roles(home.root)
    delivery = home.deliveries / "dlv-lineage"
    tracks = []
    for i, song in enumerate(SONGS):
        rel = f"audio/{i + 1:02d}.flac"
        (delivery / "audio").mkdir(parents=True, exist_ok=True)
        write_melody(delivery / rel, seed=i)
        tracks.append({"file": rel, "isrc": song.isrc, "title": song.title, "artists": list(song.artists),
                       "ai_generated": song.ai_generated})
    (delivery / "metadata.json").write_text(json.dumps({"schema_version": 1, "tracks": tracks}), encoding="utf-8")
    rights = _rights(delivery / "rights" / "rights.json")
    (home.root / "optout").mkdir(parents=True, exist_ok=True)
    optout_audio = write_melody(home.root / "optout" / "sixth-sense-reupload.mp3", seed=5, codec="libmp3lame")

    policy = load_policy()
    with connect(home.db_path) as con:
        ingest_delivery(con, delivery, delivery_id="dlv-lineage", actor="pipeline")
        import_rights_file(con, rights, actor="rita.rights")
        rows = con.execute("SELECT track_id, source_path FROM tracks ORDER BY track_id").fetchall()
        outcomes = list(fingerprint_many([ledger_path(con, r[1]) for r in rows], workers=2))
        store_fingerprints(con, [(r[0], o) for r, o in zip(rows, outcomes, strict=True)], "dlv-lineage",
                           actor="pipeline")
        register_optout(con, optout_id="OPT-LNR-1", claimant="Ben Byrd", audio_path=optout_audio,
                        title="Sixth Sense (re-upload)", actor="rita.rights")
        match_catalog(con, home.root / "index", actor="pipeline")
        propose_release(con, purpose=PURPOSE, territory=TERRITORY, on_date=ON, actor="mira.ml", policy=policy,
                        release_id=RELEASE_ID)
        approve_release(con, RELEASE_ID, actor="rita.rights", comment="consents and deals checked", on_date=ON)
        propose_release(con, purpose="UseForDataMining", territory=TERRITORY, on_date=ON, actor="mira.ml",
                        policy=policy, release_id=REJECTED_RELEASE_ID)
        reject_release(con, REJECTED_RELEASE_ID, actor="rita.rights", comment="no data-mining project approved")
        output = home.objects / "shards" / RELEASE_ID
        build_shards(con, RELEASE_ID, output_uri=str(output),
                     config=ShardConfig(crops_per_track=3, rows_per_shard=4, rows_per_row_group=2),
                     actor="mira.ml")
        track_ids = dict(con.execute("SELECT isrc, track_id FROM tracks").fetchall())
    launch_run(home.db_path, run_id=RUN_ID, actor="mira.ml", runs_dir=home.runs,
               config=TrainConfig(release_id=RELEASE_ID, epochs=1, batch_size=2, nproc=1, seed=1))
    with connect(home.db_path) as con:  # as `linernotes train` does once the run is recorded
        ensure_snapshots(con, actor="mira.ml", run_id=RUN_ID)
    try:
        launch_run(home.db_path, run_id=REFUSED_RUN_ID, actor="mira.ml", runs_dir=home.runs,
                   config=TrainConfig(release_id=REJECTED_RELEASE_ID, epochs=1, batch_size=2, nproc=1))
    except TrainingRefused:
        pass
    else:
        raise AssertionError("training on a rejected release was not refused")
    return Pipeline(home=home.root, db_path=home.db_path, release_id=RELEASE_ID, run_id=RUN_ID,
                    manifest_uri=str(output / "manifest.json"), run_dir=home.runs / RUN_ID, track_ids=track_ids)

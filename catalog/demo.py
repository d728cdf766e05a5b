"""The demo catalog: real, freely licensed music from two Debian packages, laid out as deliveries.

The demo treats an embedded open-licence tag (GPL, CC-BY-SA) as the licence grant for the training
uses; a track without one has no grant and must be denied. It adds consent records for every
artist and composer (one of whom refuses generative training) and an opt-out registry entry whose
audio is an MP3 transcode of a catalog track, filed under a different ISRC.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from catalog.audio import probe
from catalog.ingest import _split_names, party_id_for

DEMO_PACKAGES: dict[str, str] = {
    "wesnoth-1.16-music": "demo-wesnoth",
    "singularity-music": "demo-singularity",
}
REFUSING_ARTIST = "Gianmarco Leone"
OPTOUT_SOURCE_TITLE = "Awakening"
OPTOUT_ISRC = "ZZOPT2600001"
CONSENT_DATE = "2026-01-15T00:00:00Z"


class DemoSetupError(RuntimeError):
    """The demo catalog could not be obtained; the message says what to run."""


@dataclass(frozen=True)
class DemoCatalog:
    deliveries: dict[str, Path]
    optout_registry: Path
    refusing_artist: str
    optout_source_isrc: str | None


def _run(cmd: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)


def fetch_packages(downloads: Path) -> dict[str, Path]:
    """``apt-get download`` + ``dpkg -x`` each demo package once; returns the extracted roots."""
    downloads.mkdir(parents=True, exist_ok=True)
    roots: dict[str, Path] = {}
    for package in DEMO_PACKAGES:
        root = downloads / "extracted" / package
        if (root / ".complete").exists():
            roots[package] = root
            continue
        debs = sorted(downloads.glob(f"{package}_*.deb"))
        if not debs:
            result = _run(["apt-get", "download", package], downloads)
            if result.returncode != 0 and os.geteuid() == 0:
                _run(["apt-get", "update", "-qq"], downloads)
                result = _run(["apt-get", "download", package], downloads)
            debs = sorted(downloads.glob(f"{package}_*.deb"))
            if not debs:
                raise DemoSetupError(
                    f"could not download the Debian package {package!r}: {result.stderr.strip()}\n"
                    f"run `sudo apt-get update` and try again, or place {package}_*.deb in {downloads}"
                )
        if root.exists():
            shutil.rmtree(root)
        root.mkdir(parents=True)
        result = _run(["dpkg", "-x", str(debs[-1]), str(root)], downloads)
        if result.returncode != 0:
            raise DemoSetupError(f"dpkg -x {debs[-1].name} failed: {result.stderr.strip()}")
        (root / ".complete").touch()
        roots[package] = root
    return roots


def _place(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _license_id(tag: str) -> str:
    lowered = tag.lower()
    if "by-sa/3.0" in lowered:
        return "CC-BY-SA-3.0"
    if "gpl" in lowered:
        return "GPL-2.0-or-later"
    return tag


def _transcode_mp3(src: Path, dst: Path, bitrate: int = 128_000) -> None:
    """A re-upload as it happens in the wild: the same master, another codec, another file."""
    import av

    if dst.exists():
        return
    tmp = dst.with_suffix(".part")
    with av.open(str(src)) as inp, av.open(str(tmp), "w", format="mp3") as out:
        in_stream = inp.streams.audio[0]
        out_stream = out.add_stream("libmp3lame", rate=44100)
        out_stream.bit_rate = bitrate
        out_stream.layout = "stereo"
        for frame in inp.decode(in_stream):
            frame.pts = None
            for packet in out_stream.encode(frame):
                out.mux(packet)
        for packet in out_stream.encode(None):
            out.mux(packet)
    tmp.replace(dst)


def build_demo_catalog(deliveries_root: Path, downloads: Path, *, tracks_per_package: int | None = None,
                       optout_root: Path | None = None) -> DemoCatalog:
    """Lay the demo packages out as deliveries (idempotent); ``tracks_per_package`` takes a subset."""
    roots = fetch_packages(downloads)
    optout_root = optout_root or deliveries_root.parent / "optout"
    all_files: list[tuple[str, Path]] = []
    tags_of: dict[Path, dict[str, str]] = {}
    for package, root in roots.items():
        files = sorted(root.rglob("*.ogg"))
        tags_of.update((f, probe(f).tags) for f in files)  # each file is probed once
        if tracks_per_package is not None:
            files = _subset(files, tracks_per_package, tags_of)
        all_files.extend((package, f) for f in files)

    isrcs = {f: f"ZZLND26{i:05d}" for i, (_, f) in enumerate(sorted(all_files, key=lambda x: (x[0], x[1].name)), 1)}
    deliveries: dict[str, Path] = {}
    optout_source: tuple[Path, str] | None = None
    for package, delivery_id in DEMO_PACKAGES.items():
        files = [f for p, f in all_files if p == package]
        target = deliveries_root / delivery_id
        parties: dict[str, dict[str, object]] = {}
        tracks, deals, consents = [], [], []
        for src in files:
            rel = f"audio/{src.relative_to(roots[package]).as_posix().split('/music/', 1)[-1]}"
            _place(src, target / rel)
            tags = tags_of[src]
            isrc = isrcs[src]
            tracks.append({"file": rel, "isrc": isrc})
            names = _split_names(tags.get("ARTIST")) + _split_names(tags.get("COMPOSER"))
            for name in names:
                parties.setdefault(party_id_for(name), {"party_id": party_id_for(name), "name": name,
                                                        "isni": None, "ipi": None})
            if tags.get("TITLE") == OPTOUT_SOURCE_TITLE:
                optout_source = (src, isrc)
            licence = tags.get("LICENSE")
            artists = _split_names(tags.get("ARTIST"))
            if licence and artists:
                licensor = party_id_for(artists[0])
                conditions = ["attribution_required"] + (["share_alike"] if "BY-SA" in _license_id(licence) else [])
                deals.append({
                    "deal_id": f"D-{isrc}", "licensor": licensor, "license": _license_id(licence),
                    "isrcs": [isrc],
                    "use_types": ["UseForTrainingGenerativeAI", "UseForTrainingNonGenerativeAI", "UseForDataMining"],
                    "territories": {"include": ["Worldwide"], "exclude": []},
                    "valid_from": "2000-01-01", "valid_to": None, "conditions": conditions,
                    "rights_controllers": [{"party_id": licensor, "isrc": isrc, "share": 100.0}],
                })
        for party_id, party in sorted(parties.items()):
            refuses = party["name"] == REFUSING_ARTIST
            evidence = f"demo://consent/{party_id}"
            consents.append({
                "consent_id": f"C-{party_id}", "party_id": party_id, "scope": "all", "scope_ref": None,
                "ai_training": "allowed", "ai_generative_training": "notAllowed" if refuses else "allowed",
                "data_mining": "allowed", "ai_inference": "notAllowed", "evidence_ref": evidence,
                "evidence_sha256": hashlib.sha256(evidence.encode()).hexdigest(),
                "granted_at": CONSENT_DATE, "revoked_at": None,
            })
        _write_json(target / "metadata.json", {"schema_version": 1, "tracks": tracks})
        _write_json(target / "rights" / "rights.json", {"schema_version": 1, "parties": list(parties.values()),
                                                        "deals": deals, "consents": consents})
        deliveries[delivery_id] = target

    registry = optout_root / "registry.json"
    entries = []
    if optout_source is not None:
        copy = optout_root / "audio" / "awakening-reupload-128k.mp3"
        copy.parent.mkdir(parents=True, exist_ok=True)
        _transcode_mp3(optout_source[0], copy)
        entries.append({"optout_id": "OPT-0001", "claimant": "Maxstack", "isrc": OPTOUT_ISRC,
                        "title": f"{OPTOUT_SOURCE_TITLE} (re-upload)", "file": "audio/" + copy.name,
                        "note": "Artist opted this recording out of AI training."})
    _write_json(registry, {"schema_version": 1, "entries": entries})
    return DemoCatalog(deliveries, registry, REFUSING_ARTIST, optout_source[1] if optout_source else None)


def _subset(files: list[Path], count: int, tags_of: dict[Path, dict[str, str]]) -> list[Path]:
    """A small subset that still tells the demo's story: one track of each kind first, then the rest."""
    def kind(path: Path) -> int:
        tags = tags_of[path]
        if tags.get("TITLE") == OPTOUT_SOURCE_TITLE:
            return 0
        if tags.get("ARTIST") == REFUSING_ARTIST and tags.get("LICENSE"):
            return 1
        if not tags.get("LICENSE") and tags.get("ARTIST"):
            return 2
        return 3 if tags.get("ARTIST") else 4

    kinds = {f: kind(f) for f in files}
    firsts = {k: next(f for f in files if kinds[f] == k) for k in sorted(set(kinds.values()))}
    ordered = list(firsts.values()) + [f for f in files if f not in firsts.values()]
    return sorted(ordered[:count])


def _write_json(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)

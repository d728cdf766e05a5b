"""A persistent inverted index over Chromaprint items, in the manner of AcoustID's.

Each indexed item contributes its top ``key_bits`` bits as a key (Chromaprint's silence
item and repeats of the previous key are skipped). A query looks up its own keys, votes
for (track, time offset) pairs, and re-scores the best candidates by the bit error rate
of the aligned fingerprints over their overlap: ``score = 1 - 2 * BER``, so identical
audio scores 1 and unrelated audio scores near 0.

On disk the index is a set of immutable segments (sorted keys, postings, the full items
for re-scoring) plus a manifest naming the live segments and removed tracks; adding
writes a new segment, removing writes a tombstone, and small segments are merged as they
accumulate. Arrays are memory-mapped, so resident memory stays far below the index size.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import mmap
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Method = Literal["chromaprint", "landmark"]

from fingerprinting.chromaprint import ITEM_SECONDS, SILENCE_ITEM
from fingerprinting.landmarks import FANOUT, FRAME_SECONDS, HASH_BITS, landmark_seconds, speed_variants

FORMAT_VERSION = 2
_DIRECTORY_BITS = 16
_MAX_POSITION = (1 << 16) - 1
_SEGMENT_ARRAYS = ("directory", "low", "docs", "pos", "items", "starts", "doc_ids")
DEFAULT_KEY_BITS = 28
MAX_SEGMENTS = 12
STOP_POSTINGS = 4096  # a key this common in one segment carries no identity
MIN_VOTES = 3
CANDIDATES = 16
LANDMARK_WINDOW_S = 10.0  # landmark agreement is counted within the densest 10 s of the query
MAX_QUERY_KEYS = 400  # a long query votes with an even sample of its keys; re-scoring uses all items
_BUCKET_SHIFT = 4  # offset votes are pooled over 16 items (~2 s)
_OFFSET_BIAS = 1 << 24
CHROMAPRINT: Method = "chromaprint"
LANDMARK: Method = "landmark"

U32 = npt.NDArray[np.uint32]


@dataclass(frozen=True)
class Match:
    """One indexed track that matches a query, with the evidence for it.

    ``offset_s`` is where the query's first item falls in the matched track (negative
    when the query starts before it); ``span_s`` is how long the two overlap;
    For ``method="chromaprint"``, ``score`` is ``1 - 2 * bit_error_rate`` over that overlap;
    for ``method="landmark"`` it is the number of landmark hashes that agree on the offset
    within the densest 10 s of the query (``votes`` counts every agreeing hit over the whole
    overlap; ``bit_error_rate`` is None) and ``speed`` is the playback speed at which they agreed.
    """

    ref: str
    score: float
    offset_s: float
    span_s: float
    bit_error_rate: float | None
    votes: int
    query_start_s: float
    ref_start_s: float
    ref_length_s: float = 0.0
    method: Method = CHROMAPRINT
    speed: float = 1.0


def item_digest(items: npt.ArrayLike) -> str:
    """A short content hash of fingerprint items (tells a changed track from an unchanged one)."""
    return hashlib.sha256(np.ascontiguousarray(items, dtype="<u4").tobytes()).hexdigest()[:32]


def _read_manifest(root: Path, key_bits: int, method: Method = CHROMAPRINT) -> dict[str, Any]:
    path = root / "manifest.json"
    if not path.exists():
        return {"format": FORMAT_VERSION, "key_bits": key_bits, "next_doc": 0, "deleted": [], "segments": [],
                "method": method}
    manifest: dict[str, Any] = json.loads(path.read_text())
    if manifest.get("format") != FORMAT_VERSION:
        raise ValueError(f"{root}: index format {manifest.get('format')} is not {FORMAT_VERSION}")
    manifest.setdefault("method", CHROMAPRINT)
    if manifest["method"] != method:
        raise ValueError(f"{root}: holds {manifest['method']} fingerprints, not {method}")
    return manifest


def _random_access(arr: npt.NDArray[Any]) -> None:
    # Lookups touch scattered pages; without this hint the kernel reads ahead around every
    # fault and resident memory grows to the size of the index.
    mm = getattr(arr, "_mmap", None)
    if mm is not None and hasattr(mm, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        mm.madvise(mmap.MADV_RANDOM)


def _keys_and_positions(items: U32, key_bits: int, method: Method = CHROMAPRINT) -> tuple[U32, U32]:
    if method == LANDMARK:  # [hash, frame, hash, frame, ...]
        return (items[0::2] & np.uint32((1 << key_bits) - 1)).astype(np.uint32), items[1::2].astype(np.uint32)
    pos = np.flatnonzero(items != SILENCE_ITEM).astype(np.uint32)
    keys = (items[pos] >> np.uint32(32 - key_bits)).astype(np.uint32)
    if len(keys) > 1:
        keep = np.ones(len(keys), dtype=bool)
        keep[1:] = (keys[1:] != keys[:-1]) | (pos[1:] != pos[:-1] + 1)
        keys, pos = keys[keep], pos[keep]
    return keys, pos


class _Segment:
    """Immutable postings and items of a group of tracks.

    Postings are sorted by key. A directory indexed by a key's top 16 bits gives each
    key's bucket, so only the remaining low bits are stored per posting (2 bytes), and
    positions and segment-local track numbers take 2 bytes each where they fit.
    """

    def __init__(self, name: str, key_bits: int, directory: npt.NDArray[np.int64], low: npt.NDArray[Any],
                 docs: npt.NDArray[Any], pos: npt.NDArray[Any], items: U32, starts: npt.NDArray[np.int64],
                 refs: list[str], doc_ids: npt.NDArray[np.int64], digests: list[str],
                 method: Method = CHROMAPRINT) -> None:
        self.name, self.low_bits, self.method = name, key_bits - _DIRECTORY_BITS, method
        self.directory, self.low, self.docs, self.pos = directory, low, docs, pos
        self.items, self.starts = items, starts
        self.refs, self.doc_ids, self.digests = refs, doc_ids, digests

    @classmethod
    def build(cls, name: str, entries: list[tuple[int, str, U32, str]], key_bits: int,
              method: Method = CHROMAPRINT) -> "_Segment":
        all_keys, all_docs, all_pos, all_items = [], [], [], []
        starts = np.zeros(len(entries) + 1, dtype=np.int64)
        for local, (_doc_id, _ref, items, _digest) in enumerate(entries):
            keys, pos = _keys_and_positions(items, key_bits, method)
            reachable = pos <= _MAX_POSITION  # items past ~2.25 h are kept for scoring, not indexed
            keys, pos = keys[reachable], pos[reachable]
            all_keys.append(keys)
            all_pos.append(pos)
            all_docs.append(np.full(len(keys), local, dtype=np.uint32))
            all_items.append(items)
            starts[local + 1] = starts[local] + len(items)
        keys = np.concatenate(all_keys) if all_keys else np.zeros(0, np.uint32)
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        low_bits = key_bits - _DIRECTORY_BITS
        directory = np.searchsorted(keys >> np.uint32(low_bits),
                                    np.arange((1 << _DIRECTORY_BITS) + 1, dtype=np.uint32)).astype(np.int64)
        doc_type = np.uint16 if len(entries) <= 1 << 16 else np.uint32
        return cls(
            name, key_bits, directory,
            (keys & np.uint32((1 << low_bits) - 1)).astype(np.uint16),
            (np.concatenate(all_docs) if all_docs else np.zeros(0, np.uint32))[order].astype(doc_type),
            (np.concatenate(all_pos) if all_pos else np.zeros(0, np.uint32))[order].astype(np.uint16),
            np.concatenate(all_items).astype(np.uint32) if all_items else np.zeros(0, np.uint32),
            starts,
            [ref for _, ref, _, _ in entries],
            np.array([doc_id for doc_id, _, _, _ in entries], dtype=np.int64),
            [digest for _, _, _, digest in entries],
            method,
        )

    def save(self, root: Path) -> None:
        tmp = root / f".{self.name}.{uuid.uuid4().hex}"
        tmp.mkdir()
        for field in _SEGMENT_ARRAYS:
            np.save(tmp / f"{field}.npy", getattr(self, field))
        (tmp / "refs.json").write_text(json.dumps({"refs": self.refs, "digests": self.digests, "method": self.method,
                                                   "key_bits": self.low_bits + _DIRECTORY_BITS}))
        os.replace(tmp, root / self.name)

    @classmethod
    def load(cls, root: Path, name: str) -> "_Segment":
        d = root / name
        arrays = {f: np.load(d / f"{f}.npy", mmap_mode="r") for f in _SEGMENT_ARRAYS}
        for arr in arrays.values():
            _random_access(arr)
        meta = json.loads((d / "refs.json").read_text())
        return cls(name, meta["key_bits"], np.asarray(arrays["directory"]), arrays["low"], arrays["docs"],
                   arrays["pos"], arrays["items"], np.asarray(arrays["starts"]), meta["refs"],
                   np.asarray(arrays["doc_ids"]), meta["digests"], meta.get("method", CHROMAPRINT))

    def _bounds(self, ukeys: U32) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Posting range of each (sorted, unique) key: a binary search inside its bucket."""
        bucket = (ukeys >> np.uint32(self.low_bits)).astype(np.int64)
        target = (ukeys & np.uint32((1 << self.low_bits) - 1)).astype(np.int64)
        out = []
        for strict in (True, False):
            lo, hi = self.directory[bucket].copy(), self.directory[bucket + 1].copy()
            while True:
                active = lo < hi
                if not active.any():
                    break
                mid = (lo + hi) // 2
                probe = np.asarray(self.low[np.where(active, mid, 0)], dtype=np.int64) if len(self.low) else mid
                go_right = active & ((probe < target) if strict else (probe <= target))
                lo = np.where(go_right, mid + 1, lo)
                hi = np.where(active & ~go_right, mid, hi)
            out.append(lo)
        return out[0], out[1]

    def doc_items(self, local: int) -> U32:
        return np.asarray(self.items[self.starts[local]:self.starts[local + 1]])

    def entries(self, alive: "set[int]") -> list[tuple[int, str, U32, str]]:
        return [(int(self.doc_ids[i]), self.refs[i], self.doc_items(i).copy(), self.digests[i])
                for i in range(len(self.refs)) if int(self.doc_ids[i]) in alive]

    def hits(self, ukeys: U32, inv: npt.NDArray[np.intp], qpos: npt.NDArray[np.int64]
             ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """(local doc, offset, query key number) for every posting that shares a key with the query."""
        lo, hi = self._bounds(ukeys)
        counts = hi - lo
        counts[counts > STOP_POSTINGS] = 0
        per_q = counts[inv]
        total = int(per_q.sum())
        if total == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
        first = np.repeat(lo[inv], per_q)
        run_start = np.repeat(np.cumsum(per_q) - per_q, per_q)
        idx = first + (np.arange(total) - run_start)
        docs = np.asarray(self.docs[idx], dtype=np.int64)
        which = np.repeat(np.arange(len(inv)), per_q)
        return docs, np.asarray(self.pos[idx], dtype=np.int64) - qpos[which], which


def _dense_agreement(keys: U32, qpos: npt.NDArray[np.int64]) -> int:
    """Most agreeing landmark hashes within any LANDMARK_WINDOW_S of the query.

    A copy agrees densely where it overlaps; two unrelated long recordings collect scattered
    chance agreements at one offset, spread over minutes. A hash repeated within the same
    second (a held note) counts once.
    """
    second = max(1, round(1.0 / FRAME_SECONDS))
    pairs = np.unique((qpos // second) << 32 | keys.astype(np.int64))
    t = np.sort(pairs >> 32) * second
    if len(t) == 0:
        return 0
    window = round(LANDMARK_WINDOW_S / FRAME_SECONDS)
    return int((np.searchsorted(t, t + window, side="left") - np.arange(len(t))).max())


def _ber(query: U32, ref: U32, offset: int) -> tuple[float, int, int]:
    """Bit error rate of query item i against ref item i + offset over their overlap."""
    q0 = max(0, -offset)
    q1 = min(len(query), len(ref) - offset)
    if q1 <= q0:
        return 1.0, q0, 0
    q = query[q0:q1]
    r = ref[q0 + offset:q1 + offset]
    live = (q != SILENCE_ITEM) | (r != SILENCE_ITEM)
    n = int(live.sum())
    if n == 0:
        return 1.0, q0, 0
    errors = int(np.bitwise_count(q[live] ^ r[live]).sum())
    return errors / (32.0 * n), q0, q1 - q0


class FingerprintIndex:
    """A directory-backed fingerprint index: add, remove, commit, query.

    Changes made with :meth:`add` and :meth:`remove` are visible to :meth:`query` at once
    and become durable with :meth:`commit` (also done when a ``with`` block ends cleanly).
    Writers in several processes may share a directory: a commit takes a file lock and
    replays its additions and removals on whatever another writer committed meanwhile.
    Readers see the last committed state.
    """

    def __init__(self, root: Path, manifest: dict[str, Any], segments: list[_Segment]) -> None:
        self.root = root
        self.key_bits: int = manifest["key_bits"]
        self.method: Method = manifest.get("method", CHROMAPRINT)
        self._next_doc: int = manifest["next_doc"]
        self._deleted: set[int] = set(manifest["deleted"])
        self._segments = segments
        self._pending: dict[str, tuple[int, U32, str]] = {}
        self._pending_segment: _Segment | None = None
        self._removed: set[str] = set()  # committed refs removed since the last commit
        self._manifest_segments: list[str] = list(manifest["segments"])
        self._manifest_next_doc: int = manifest["next_doc"]
        self._refs: dict[str, tuple[int, _Segment, int]] = {}
        for seg in segments:
            for local, ref in enumerate(seg.refs):
                doc_id = int(seg.doc_ids[local])
                if doc_id not in self._deleted:
                    self._refs[ref] = (doc_id, seg, local)

    # ---- lifecycle -------------------------------------------------------------------

    @classmethod
    def open(cls, root: str | os.PathLike[str], *, key_bits: int | None = None,
             method: Method = CHROMAPRINT) -> "FingerprintIndex":
        """Open the index under ``root``, creating an empty one if there is none.

        ``method`` says which fingerprints it holds: Chromaprint items (keys are their top
        ``key_bits`` bits) or landmark arrays (keys are the landmark hashes).
        """
        if key_bits is None:
            key_bits = HASH_BITS if method == LANDMARK else DEFAULT_KEY_BITS
        if not _DIRECTORY_BITS < key_bits <= 32:
            raise ValueError(f"key_bits must be between {_DIRECTORY_BITS + 1} and 32")
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        for attempt in range(5):
            manifest = _read_manifest(root, key_bits, method)
            try:
                segments = [_Segment.load(root, name) for name in manifest["segments"]]
            except FileNotFoundError:  # a writer merged segments between our two reads
                if attempt == 4:
                    raise
                continue
            return cls(root, manifest, segments)
        raise AssertionError("unreachable")

    def __enter__(self) -> "FingerprintIndex":
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.commit()

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with (self.root / ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # ---- contents --------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._refs) + len(self._pending)

    def __contains__(self, ref: object) -> bool:
        return ref in self._refs or ref in self._pending

    def refs(self) -> list[str]:
        """Every ref in the index (committed or pending)."""
        return sorted([*self._refs, *self._pending])

    def digest(self, ref: str) -> str | None:
        """The :func:`item_digest` stored for ``ref``, or None when it is not indexed."""
        if ref in self._pending:
            return self._pending[ref][2]
        if ref in self._refs:
            _, seg, local = self._refs[ref]
            return seg.digests[local]
        return None

    def items(self, ref: str) -> U32:
        """The fingerprint items indexed under ``ref``."""
        if ref in self._pending:
            return self._pending[ref][1]
        _, seg, local = self._refs[ref]
        return seg.doc_items(local)

    def add(self, ref: str, items: npt.ArrayLike) -> None:
        """Index ``items`` under ``ref``, replacing what ``ref`` held before."""
        arr = np.array(items, dtype=np.uint32)
        self.remove(ref)
        self._pending[ref] = (self._next_doc, arr, item_digest(arr))
        self._next_doc += 1
        self._pending_segment = None

    def remove(self, ref: str) -> bool:
        """Drop ``ref`` from the index; False when it was not there."""
        if ref in self._pending:
            del self._pending[ref]
            self._pending_segment = None
            return True
        if ref in self._refs:
            doc_id, _, _ = self._refs.pop(ref)
            self._deleted.add(doc_id)
            self._removed.add(ref)
            return True
        return False

    def _rebase(self) -> None:
        """Under the lock: if another writer committed since we read, replay our changes on its state."""
        manifest = _read_manifest(self.root, self.key_bits, self.method)
        if manifest["segments"] == self._manifest_segments and manifest["next_doc"] == self._manifest_next_doc:
            return
        loaded = {s.name: s for s in self._segments}
        latest = FingerprintIndex(self.root, manifest, [loaded.get(n) or _Segment.load(self.root, n)
                                                        for n in manifest["segments"]])
        for ref in sorted(self._removed):
            latest.remove(ref)
        for ref, (_, items, _) in sorted(self._pending.items(), key=lambda kv: kv[1][0]):
            latest.add(ref, items)
        self.__dict__.update(latest.__dict__)

    def commit(self) -> None:
        """Make pending additions and removals durable."""
        with self._lock():
            self._rebase()
            if self._pending:
                entries = [(doc_id, ref, items, digest) for ref, (doc_id, items, digest) in self._pending.items()]
                seg = _Segment.build(f"seg-{uuid.uuid4().hex[:12]}", entries, self.key_bits, self.method)
                seg.save(self.root)
                self._segments.append(_Segment.load(self.root, seg.name))
                for local, ref in enumerate(seg.refs):
                    self._refs[ref] = (int(seg.doc_ids[local]), self._segments[-1], local)
                self._pending.clear()
                self._pending_segment = None
            dropped = self._merge_if_needed()
            self._write_manifest()
            for name in dropped:
                shutil.rmtree(self.root / name, ignore_errors=True)

    def _merge_if_needed(self) -> list[str]:
        """Merge the smallest segments (and purge removed tracks) once there are too many."""
        segs = self._segments
        mostly_dead = [s for s in segs if s.refs and
                       sum(int(d) in self._deleted for d in s.doc_ids) * 2 > len(s.refs)]
        if len(segs) <= MAX_SEGMENTS and not mostly_dead:
            return []
        by_size = sorted(segs, key=lambda s: len(s.items))
        victims = by_size[: max(2, len(segs) - MAX_SEGMENTS // 2)] if len(segs) > MAX_SEGMENTS else []
        victims = list({s.name: s for s in [*victims, *mostly_dead]}.values())
        alive = {doc for doc, _, _ in self._refs.values()}
        entries = [e for s in victims for e in s.entries(alive)]
        keep = [s for s in segs if s not in victims]
        if entries:
            merged = _Segment.build(f"seg-{uuid.uuid4().hex[:12]}", entries, self.key_bits, self.method)
            merged.save(self.root)
            loaded = _Segment.load(self.root, merged.name)
            keep.append(loaded)
            for local, ref in enumerate(loaded.refs):
                self._refs[ref] = (int(loaded.doc_ids[local]), loaded, local)
        victim_docs = {int(d) for s in victims for d in s.doc_ids}
        self._deleted -= victim_docs
        self._segments = keep
        return [s.name for s in victims]

    def _write_manifest(self) -> None:
        manifest = {"format": FORMAT_VERSION, "key_bits": self.key_bits, "method": self.method,
                    "next_doc": self._next_doc,
                    "deleted": sorted(self._deleted), "segments": [s.name for s in self._segments]}
        tmp = self.root / f".manifest.{uuid.uuid4().hex}.json"
        tmp.write_text(json.dumps(manifest))
        os.replace(tmp, self.root / "manifest.json")
        self._manifest_segments = list(manifest["segments"])
        self._manifest_next_doc = self._next_doc
        self._removed.clear()

    # ---- queries ---------------------------------------------------------------------

    def _live_segments(self) -> list[_Segment]:
        if self._pending and self._pending_segment is None:
            entries = [(doc_id, ref, items, digest) for ref, (doc_id, items, digest) in self._pending.items()]
            self._pending_segment = _Segment.build("pending", entries, self.key_bits, self.method)
        return [*self._segments, *([self._pending_segment] if self._pending and self._pending_segment else [])]

    def query(self, items: npt.ArrayLike, limit: int = 5, *, min_score: float = 0.0,
              exclude: str | None = None, fanout: int = FANOUT) -> list[Match]:
        """The indexed tracks that best match ``items``, best first.

        ``min_score`` drops weaker matches; ``exclude`` leaves one ref out (a track
        looking for its own duplicates). A landmark index takes a landmark array and scores
        by agreeing hashes (see :class:`Match`); ``fanout`` is the one the array was paired
        with (:data:`~fingerprinting.landmarks.QUERY_FANOUT` for :func:`~fingerprinting.landmarks.query_landmarks`).
        """
        if self.method == LANDMARK:
            return self._query_landmarks(np.asarray(items, dtype=np.uint32), limit, min_score, exclude, fanout)
        query = np.asarray(items, dtype=np.uint32)
        keys, qpos = _keys_and_positions(query, self.key_bits)
        if len(keys) == 0:
            return []
        if len(keys) > MAX_QUERY_KEYS:
            pick = np.linspace(0, len(keys) - 1, MAX_QUERY_KEYS).astype(np.intp)
            keys, qpos = keys[pick], qpos[pick]
        ukeys, inv = np.unique(keys, return_inverse=True)
        qpos64 = qpos.astype(np.int64)
        candidates: list[tuple[int, _Segment, int, npt.NDArray[np.int64]]] = []
        for seg in self._live_segments():
            docs, offsets, _ = seg.hits(ukeys, inv, qpos64)
            if len(docs) == 0:
                continue
            code = (docs << 26) | ((offsets + _OFFSET_BIAS) >> _BUCKET_SHIFT)
            uniq, counts = np.unique(code, return_counts=True)
            strong = counts >= MIN_VOTES
            uniq, counts = uniq[strong], counts[strong]
            if len(uniq) == 0:
                continue
            order = np.argsort(-counts, kind="stable")[: CANDIDATES * 2]
            for j in order:
                local = int(uniq[j] >> 26)
                doc_id = int(seg.doc_ids[local])
                if doc_id in self._deleted or (exclude is not None and seg.refs[local] == exclude):
                    continue
                in_bucket = offsets[code == uniq[j]]
                candidates.append((int(counts[j]), seg, local, in_bucket))
        candidates.sort(key=lambda c: -c[0])
        best: dict[str, Match] = {}
        for votes, seg, local, offsets in candidates[:CANDIDATES]:
            ref = seg.refs[local]
            ref_items = seg.doc_items(local)
            values, freq = np.unique(offsets, return_counts=True)
            mode = int(values[np.argmax(freq)])
            scored = [(*_ber(query, ref_items, off), off) for off in range(mode - 2, mode + 3)]
            ber, q0, n, off = min(scored, key=lambda s: (s[0] if s[2] else 2.0))
            if n == 0:
                continue
            match = Match(ref=ref, score=max(0.0, 1.0 - 2.0 * ber), offset_s=off * ITEM_SECONDS,
                          span_s=n * ITEM_SECONDS, bit_error_rate=ber, votes=votes,
                          query_start_s=q0 * ITEM_SECONDS, ref_start_s=(q0 + off) * ITEM_SECONDS,
                          ref_length_s=len(ref_items) * ITEM_SECONDS)
            if match.score >= min_score and (ref not in best or match.score > best[ref].score):
                best[ref] = match
        return sorted(best.values(), key=lambda m: (-m.score, m.ref))[:limit]

    def _query_landmarks(self, landmarks: U32, limit: int, min_score: float, exclude: str | None,
                         fanout: int) -> list[Match]:
        best: dict[str, Match] = {}
        segments = self._live_segments()
        for speed, variant in speed_variants(landmarks, fanout=fanout):
            keys, qpos = _keys_and_positions(variant, self.key_bits, LANDMARK)
            if len(keys) == 0:
                continue
            ukeys, inv = np.unique(keys, return_inverse=True)
            for seg in segments:
                qpos64 = qpos.astype(np.int64)
                docs, offsets, which = seg.hits(ukeys, inv, qpos64)
                if len(docs) == 0:
                    continue
                code = (docs << 26) | (offsets + _OFFSET_BIAS)
                uniq, counts = np.unique(code, return_counts=True)
                # A hash may land one frame off (peaks quantised to frames): pool each offset with its neighbours.
                pooled = counts.copy()
                for step in (-1, 1):
                    j = np.clip(np.searchsorted(uniq, uniq + step), 0, len(uniq) - 1)
                    pooled += np.where(uniq[j] == uniq + step, counts[j], 0)
                strong = np.flatnonzero(pooled >= max(MIN_VOTES, min_score))
                for j in strong[np.argsort(-pooled[strong], kind="stable")][: CANDIDATES * 2]:
                    local = int(uniq[j] >> 26)
                    ref = seg.refs[local]
                    if int(seg.doc_ids[local]) in self._deleted or ref == exclude:
                        continue
                    if ref in best and best[ref].score >= pooled[j]:
                        continue
                    offset = int(uniq[j] & ((1 << 26) - 1)) - _OFFSET_BIAS
                    near = which[(code >= uniq[j] - 1) & (code <= uniq[j] + 1)]
                    score = _dense_agreement(keys[near], qpos64[near])
                    if score < min_score or (ref in best and best[ref].score >= score):
                        continue
                    hit_at = qpos64[near]
                    first, last = int(hit_at.min()), int(hit_at.max())
                    best[ref] = Match(
                        ref=ref, score=float(score), offset_s=offset * FRAME_SECONDS,
                        span_s=(last - first) * FRAME_SECONDS, bit_error_rate=None, votes=int(pooled[j]),
                        query_start_s=first / speed * FRAME_SECONDS, ref_start_s=(first + offset) * FRAME_SECONDS,
                        ref_length_s=landmark_seconds(seg.doc_items(local)), method=LANDMARK, speed=speed)
        return sorted(best.values(), key=lambda m: (-m.score, m.ref))[:limit]

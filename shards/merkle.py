"""Merkle trees over sorted sample IDs: roots, inclusion proofs, and exclusion proofs.

The tree is RFC 9162 (Certificate Transparency v2) shaped: leaves hash as ``SHA-256(0x00 || id)``,
interior nodes as ``SHA-256(0x01 || left || right)``, and a list of n leaves splits at the largest
power of two below n, so no leaf is duplicated and proofs are the standard audit paths. Sample IDs
are sorted by their UTF-8 bytes before hashing, which makes adjacency meaningful: an ID is proven
absent by showing the two neighbours it would sit between.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, ConfigDict

EMPTY_ROOT = hashlib.sha256(b"").hexdigest()


class InclusionProof(BaseModel):
    """Proof that ``sample_id`` is leaf ``index`` of a tree of ``size`` leaves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_id: str
    index: int
    size: int
    path: tuple[str, ...]


class ExclusionProof(BaseModel):
    """Proof that ``sample_id`` is absent: its sorted neighbours are adjacent leaves of the tree."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_id: str
    size: int
    left: InclusionProof | None
    right: InclusionProof | None


def _leaf(sample_id: str) -> bytes:
    return hashlib.sha256(b"\x00" + sample_id.encode("utf-8")).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def sorted_ids(sample_ids: Iterable[str]) -> list[str]:
    """Sample IDs in tree order (UTF-8 byte order), duplicates refused."""
    ordered = sorted(sample_ids, key=lambda s: s.encode("utf-8"))
    for a, b in zip(ordered, ordered[1:]):
        if a == b:
            raise ValueError(f"duplicate sample id {a!r}")
    return ordered


def _root(leaves: Sequence[bytes]) -> bytes:
    level = list(leaves)
    if not level:
        return hashlib.sha256(b"").digest()
    return _subtree(level)


def _subtree(leaves: Sequence[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node(_subtree(leaves[:k]), _subtree(leaves[k:]))


def merkle_root(sample_ids: Iterable[str]) -> str:
    """Hex root over the sample IDs after sorting; the empty set has ``EMPTY_ROOT``."""
    return _root([_leaf(s) for s in sorted_ids(sample_ids)]).hex()


def _path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    if len(leaves) <= 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return _path(leaves[:k], index) + [_subtree(leaves[k:])]
    return _path(leaves[k:], index - k) + [_subtree(leaves[:k])]


def prove_inclusion(sample_ids: Iterable[str], sample_id: str) -> InclusionProof:
    """Audit path for ``sample_id``; raises KeyError when it is not in the set."""
    ordered = sorted_ids(sample_ids)
    index = _find(ordered, sample_id)
    if index is None:
        raise KeyError(sample_id)
    leaves = [_leaf(s) for s in ordered]
    return InclusionProof(sample_id=sample_id, index=index, size=len(ordered),
                          path=tuple(h.hex() for h in _path(leaves, index)))


def verify_inclusion(proof: InclusionProof, root: str) -> bool:
    """True when the proof's path leads from its sample ID to ``root`` (RFC 9162 §2.1.3.2)."""
    if not 0 <= proof.index < proof.size:
        return False
    fn, sn = proof.index, proof.size - 1
    node = _leaf(proof.sample_id)
    for hex_sibling in proof.path:
        if sn == 0:
            return False
        sibling = bytes.fromhex(hex_sibling)
        if fn & 1 or fn == sn:
            node = _node(sibling, node)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            node = _node(node, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and node.hex() == root


def prove_exclusion(sample_ids: Iterable[str], sample_id: str) -> ExclusionProof:
    """Neighbour proofs showing ``sample_id`` is absent; raises ValueError when it is present."""
    ordered = sorted_ids(sample_ids)
    if _find(ordered, sample_id) is not None:
        raise ValueError(f"{sample_id!r} is in the set")
    key = sample_id.encode("utf-8")
    pos = _bisect(ordered, key)
    leaves = [_leaf(s) for s in ordered]

    def proof(i: int) -> InclusionProof | None:
        if not 0 <= i < len(ordered):
            return None
        return InclusionProof(sample_id=ordered[i], index=i, size=len(ordered),
                              path=tuple(h.hex() for h in _path(leaves, i)))

    return ExclusionProof(sample_id=sample_id, size=len(ordered), left=proof(pos - 1), right=proof(pos))


def verify_exclusion(proof: ExclusionProof, root: str) -> bool:
    """True when the neighbours are proven, adjacent, and bracket the absent ID."""
    key = proof.sample_id.encode("utf-8")
    left, right = proof.left, proof.right
    if proof.size == 0:
        return left is None and right is None and root == EMPTY_ROOT
    for side in (left, right):
        if side is not None and (side.size != proof.size or not verify_inclusion(side, root)):
            return False
    if left is None and right is None:
        return False
    if left is not None and not left.sample_id.encode("utf-8") < key:
        return False
    if right is not None and not key < right.sample_id.encode("utf-8"):
        return False
    if left is None:
        return right is not None and right.index == 0
    if right is None:
        return left.index == proof.size - 1
    return right.index == left.index + 1


def _bisect(ordered: Sequence[str], key: bytes) -> int:
    lo, hi = 0, len(ordered)
    while lo < hi:
        mid = (lo + hi) // 2
        if ordered[mid].encode("utf-8") < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _find(ordered: Sequence[str], sample_id: str) -> int | None:
    pos = _bisect(ordered, sample_id.encode("utf-8"))
    return pos if pos < len(ordered) and ordered[pos] == sample_id else None

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shards.merkle import (
    EMPTY_ROOT,
    merkle_root,
    prove_exclusion,
    prove_inclusion,
    verify_exclusion,
    verify_inclusion,
)


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def test_root_matches_rfc9162_shape_for_three_leaves() -> None:
    leaf = {s: _h(b"\x00" + s.encode()) for s in ("a", "b", "c")}
    expected = _h(b"\x01" + _h(b"\x01" + leaf["a"] + leaf["b"]) + leaf["c"]).hex()
    assert merkle_root(["c", "a", "b"]) == expected
    assert merkle_root([]) == EMPTY_ROOT


def test_order_of_input_does_not_matter_but_duplicates_are_refused() -> None:
    assert merkle_root(["x:0001", "x:0000"]) == merkle_root(["x:0000", "x:0001"])
    with pytest.raises(ValueError):
        merkle_root(["a", "a"])


ids = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=40, unique=True)


@settings(max_examples=60, deadline=None)
@given(ids, st.data())
def test_every_inclusion_proof_verifies_and_tampering_fails(sample_ids: list[str], data: st.DataObject) -> None:
    root = merkle_root(sample_ids)
    target = data.draw(st.sampled_from(sample_ids))
    proof = prove_inclusion(sample_ids, target)
    assert verify_inclusion(proof, root)
    assert not verify_inclusion(proof.model_copy(update={"sample_id": target + "!"}), root)
    if proof.path:
        bad = ("00" * 32,) + proof.path[1:]
        assert not verify_inclusion(proof.model_copy(update={"path": bad}), root)
    if proof.size > 1:
        assert not verify_inclusion(proof.model_copy(update={"index": (proof.index + 1) % proof.size}), root)


@settings(max_examples=60, deadline=None)
@given(ids, st.text(min_size=1, max_size=12))
def test_exclusion_proofs(sample_ids: list[str], absent: str) -> None:
    root = merkle_root(sample_ids)
    if absent in sample_ids:
        with pytest.raises(ValueError):
            prove_exclusion(sample_ids, absent)
        return
    proof = prove_exclusion(sample_ids, absent)
    assert verify_exclusion(proof, root)
    # Claiming a present ID is absent cannot be proven with its own neighbours.
    present = sample_ids[0]
    forged = proof.model_copy(update={"sample_id": present})
    assert not verify_exclusion(forged, root)

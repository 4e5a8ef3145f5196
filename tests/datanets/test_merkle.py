"""RFC 9162 Merkle proofs, checked against the recursive definition and by tampering.

In the style of transparency-dev/merkle's tests: every (index, size) and every
(old, new) pair up to a size, then tampered, truncated, extended, swapped and
padded proofs must all fail.
"""

from __future__ import annotations

import hashlib

import pytest

from datanets import merkle

LEAVES = [merkle.leaf_hash(str(i).encode()) for i in range(33)]


def reference_root(leaves):
    """MTH exactly as RFC 9162 writes it (recursive split at the largest power of two)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return merkle.node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def test_leaf_and_node_hashes_follow_the_rfc_prefixes():
    assert merkle.leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert merkle.node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    # Known value: the empty tree (RFC 6962/9162 test vectors).
    assert merkle.root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    # The single leaf of the empty string, as in transparency-dev's vectors.
    assert merkle.leaf_hash(b"").hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"


@pytest.mark.parametrize("size", range(0, 34))
def test_the_iterative_root_equals_the_recursive_definition(size):
    assert merkle.root(LEAVES[:size]) == reference_root(LEAVES[:size])


def test_every_inclusion_proof_verifies_and_every_tampering_fails():
    for size in range(1, 34):
        tree, r = LEAVES[:size], merkle.root(LEAVES[:size])
        for index in range(size):
            proof = merkle.inclusion_proof(index, tree)
            assert merkle.verify_inclusion(tree[index], index, size, proof, r)
            other = (index + 1) % size
            if other != index:
                assert not merkle.verify_inclusion(tree[other], index, size, proof, r)  # wrong leaf
                assert not merkle.verify_inclusion(tree[index], other, size, proof, r)  # wrong index
            assert not merkle.verify_inclusion(tree[index], index, size, proof + [b"\x00" * 32], r)  # padded
            if index == 0:
                assert not merkle.verify_inclusion(tree[index], index, size * 4, proof, r)  # wrong size
            if proof:
                assert not merkle.verify_inclusion(tree[index], index, size, proof[:-1], r)  # truncated
                bad = list(proof)
                bad[0] = bytes([bad[0][0] ^ 1]) + bad[0][1:]
                assert not merkle.verify_inclusion(tree[index], index, size, bad, r)  # tampered
            if len(proof) > 1:
                swapped = [proof[1], proof[0], *proof[2:]]
                assert not merkle.verify_inclusion(tree[index], index, size, swapped, r)  # swapped


def test_every_consistency_proof_verifies_and_every_tampering_fails():
    for new in range(1, 34):
        new_root = merkle.root(LEAVES[:new])
        for old in range(1, new + 1):
            old_root = merkle.root(LEAVES[:old])
            proof = merkle.consistency_proof(old, LEAVES[:new])
            assert merkle.verify_consistency(old, new, old_root, new_root, proof)
            assert not merkle.verify_consistency(old, new, old_root, new_root, proof + [b"\x00" * 32])  # padded
            if proof:
                assert not merkle.verify_consistency(old, new, old_root, new_root, proof[:-1])  # truncated
                bad = list(proof)
                bad[-1] = bytes([bad[-1][0] ^ 1]) + bad[-1][1:]
                assert not merkle.verify_consistency(old, new, old_root, new_root, bad)  # tampered
            if len(proof) > 1:
                swapped = [proof[1], proof[0], *proof[2:]]
                assert not merkle.verify_consistency(old, new, old_root, new_root, swapped)  # swapped
            if old < new:
                fake_old = merkle.root([merkle.leaf_hash(b"x")] + LEAVES[1:old])
                assert not merkle.verify_consistency(old, new, fake_old, new_root, proof)  # rewritten history


def test_out_of_range_requests_are_refused():
    with pytest.raises(ValueError):
        merkle.inclusion_proof(3, LEAVES[:3])
    with pytest.raises(ValueError):
        merkle.consistency_proof(0, LEAVES[:3])
    assert not merkle.verify_inclusion(LEAVES[0], 5, 3, [], merkle.root(LEAVES[:3]))
    assert not merkle.verify_consistency(4, 3, b"", b"", [])


def test_roots_at_every_prefix_equal_the_definition():
    sizes = list(range(0, 34))
    roots = merkle.roots_at(LEAVES, sizes)
    assert all(roots[k] == reference_root(LEAVES[:k]) for k in sizes)

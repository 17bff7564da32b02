"""The Merkle tree (pligt/core/proof/merkle.py) against RFC 6962's definitions, written here again from the RFC text.

The reference below is the RFC's recursive definitions (§2.1 MTH, §2.1.1 PATH,
§2.1.2 PROOF/SUBPROOF) as they are printed, slow and obvious; the module's
builders and verifiers must agree with it on every tree size and index up to 33,
and its verifiers must refuse every altered proof.
"""

from __future__ import annotations

import hashlib

import pytest

from pligt.core.errors import InvalidProof
from pligt.core.proof import merkle


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n (RFC 6962 §2.1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 §2.1, over the leaves' data."""
    if not d:
        return _h(b"")
    if len(d) == 1:
        return _h(b"\x00" + d[0])
    k = _k(len(d))
    return _h(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 §2.1.1."""
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 6962 §2.1.2."""
    return ref_subproof(m, d, True)


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


DATA = [bytes([i]) * (i % 5) + f"entry {i}".encode() for i in range(33)]
LEAVES = [merkle.leaf_hash(x) for x in DATA]

# The leaves of certificate-transparency's RFC 6962 test vectors and the roots of their
# first 1..8 (as published with the reference implementation's tests).
CT_LEAVES = [
    bytes.fromhex(x)
    for x in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f")
]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_known_answers() -> None:
    assert merkle.root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    leaves = [merkle.leaf_hash(x) for x in CT_LEAVES]
    assert [merkle.root(leaves[:n]).hex() for n in range(1, 9)] == CT_ROOTS
    assert [ref_mth(CT_LEAVES[:n]).hex() for n in range(1, 9)] == CT_ROOTS


def test_leaf_and_node_are_separate_domains() -> None:
    assert merkle.leaf_hash(b"x") == _h(b"\x00x")
    assert merkle.node_hash(b"a", b"b") == _h(b"\x01ab")
    assert merkle.root([merkle.leaf_hash(b"x")]) != _h(b"x")


@pytest.mark.parametrize("n", range(34))
def test_root_matches_the_rfc(n: int) -> None:
    assert merkle.root(LEAVES[:n]) == ref_mth(DATA[:n])


def test_prefix_roots_match_the_rfc() -> None:
    assert merkle.prefix_roots(LEAVES, range(34)) == {n: ref_mth(DATA[:n]) for n in range(34)}
    assert merkle.prefix_roots(LEAVES, [5, 40]) == {5: ref_mth(DATA[:5])}


@pytest.mark.parametrize("n", range(1, 34))
def test_inclusion_proofs_match_the_rfc_and_verify(n: int) -> None:
    root = ref_mth(DATA[:n])
    for m in range(n):
        proof = merkle.inclusion_proof(LEAVES[:n], m)
        assert proof == ref_path(m, DATA[:n])
        merkle.verify_inclusion(m, n, LEAVES[m], proof, root)


@pytest.mark.parametrize("n", range(1, 34))
def test_consistency_proofs_match_the_rfc_and_verify(n: int) -> None:
    new_root = ref_mth(DATA[:n])
    for m in range(n + 1):
        proof = merkle.consistency_proof(LEAVES[:n], m)
        assert proof == (ref_proof(m, DATA[:n]) if 0 < m < n else [])
        merkle.verify_consistency(m, n, ref_mth(DATA[:m]), new_root, proof)


def test_altered_inclusion_proofs_are_refused() -> None:
    n, m = 13, 6
    root = merkle.root(LEAVES[:n])
    proof = merkle.inclusion_proof(LEAVES[:n], m)
    with pytest.raises(InvalidProof, match="leaf 6 is not in the tree of 13"):
        merkle.verify_inclusion(m, n, LEAVES[m + 1], proof, root)  # another leaf
    with pytest.raises(InvalidProof, match="not in the tree"):
        merkle.verify_inclusion(m + 1, n, LEAVES[m], proof, root)  # another index
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes(32)
        with pytest.raises(InvalidProof):
            merkle.verify_inclusion(m, n, LEAVES[m], bad, root)
    with pytest.raises(InvalidProof, match="shorter"):
        merkle.verify_inclusion(m, n, LEAVES[m], proof[:-1], root)
    with pytest.raises(InvalidProof, match="longer"):
        merkle.verify_inclusion(m, n, LEAVES[m], [*proof, bytes(32)], root)
    with pytest.raises(InvalidProof, match="cannot be in a tree"):
        merkle.verify_inclusion(n, n, LEAVES[m], proof, root)
    with pytest.raises(ValueError, match="not in a tree of 13"):
        merkle.inclusion_proof(LEAVES[:n], n)


def test_altered_consistency_proofs_are_refused() -> None:
    m, n = 7, 20
    old_root, new_root = merkle.root(LEAVES[:m]), merkle.root(LEAVES[:n])
    proof = merkle.consistency_proof(LEAVES[:n], m)
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bytes(32)
        with pytest.raises(InvalidProof):
            merkle.verify_consistency(m, n, old_root, new_root, bad)
    # A log whose 5th entry changed after the old tree was signed.
    changed = list(LEAVES[:n])
    changed[4] = merkle.leaf_hash(b"rewritten")
    with pytest.raises(InvalidProof, match="first 7 entries"):
        merkle.verify_consistency(m, n, old_root, merkle.root(changed), merkle.consistency_proof(changed, m))
    with pytest.raises(InvalidProof, match="cut off"):
        merkle.verify_consistency(n, m, new_root, old_root, [])
    with pytest.raises(InvalidProof, match="different roots"):
        merkle.verify_consistency(m, m, old_root, new_root, [])
    with pytest.raises(InvalidProof, match="empty"):
        merkle.verify_consistency(m, n, old_root, new_root, [])

"""A Merkle tree over the audit log, hashed as RFC 6962 / RFC 9162 say (no I/O here).

Leaf ``SHA-256(0x00 || bytes)``, node ``SHA-256(0x01 || left || right)``; a tree
of ``n`` leaves splits at the largest power of two smaller than ``n``. Inclusion
proofs show that one entry is in the tree a checkpoint signed; consistency proofs
show that a later tree extends an earlier one, so an entry cut off or changed
after a checkpoint is detected. The proofs and their verification follow RFC 9162
§2.1.3 and §2.1.4 word for word, so any RFC 6962 verifier accepts them.

The builders take every leaf hash (the audit log is read whole anyway: a few
thousand entries a year); verification needs only the proof.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from pligt.core.errors import InvalidProof

#: The root of the empty tree: SHA-256 of nothing (RFC 9162 §2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """Return the hash of one leaf's bytes."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the hash of an inner node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (``n`` > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash of the leaf hashes ``leaves``."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    # Bottom-up pairing gives the RFC's tree: an odd node at the end is carried up unchanged.
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def prefix_roots(leaves: Sequence[bytes], sizes: Sequence[int]) -> dict[int, bytes]:
    """Return the root of the tree of the first ``size`` leaves, for each of ``sizes``, in one pass.

    The tree of ``n`` leaves is its perfect subtrees (one per bit of ``n``) hashed together
    from the right, so keeping those subtrees while adding leaves gives every prefix's root.
    """
    wanted = set(sizes)
    found = {0: EMPTY_ROOT} if 0 in wanted else {}
    stack: list[tuple[int, bytes]] = []  # (leaves, hash) of perfect subtrees, largest first
    for n, leaf in enumerate(leaves, start=1):
        stack.append((1, leaf))
        while len(stack) > 1 and stack[-1][0] == stack[-2][0]:
            (size, right), (_, left) = stack.pop(), stack.pop()
            stack.append((2 * size, node_hash(left, right)))
        if n in wanted:
            r = stack[-1][1]
            for _, left in reversed(stack[:-1]):
                r = node_hash(left, r)
            found[n] = r
    return found


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Return the audit path of leaf ``index`` in the tree of ``leaves`` (RFC 9162 §2.1.3.1).

    :raises ValueError: for an index outside the tree.
    """
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaves)}")
    proof: list[bytes] = []
    start, end = 0, len(leaves)
    # Walk down from the root, keeping the sibling subtree of each step; the path lists them leaf-up.
    while end - start > 1:
        k = _split(end - start)
        if index - start < k:
            proof.append(root(leaves[start + k : end]))
            end = start + k
        else:
            proof.append(root(leaves[start : start + k]))
            start += k
    proof.reverse()
    return proof


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """Return the proof that the tree of the first ``old_size`` leaves is a prefix of ``leaves``.

    RFC 9162 §2.1.4.1 (SUBPROOF with its flag).

    :raises ValueError: for a size outside ``0..len(leaves)``.
    """
    if not 0 <= old_size <= len(leaves):
        raise ValueError(f"a tree of {old_size} is not a prefix of one of {len(leaves)}")
    if old_size in (0, len(leaves)):
        return []
    return _subproof(old_size, leaves, True)


def _subproof(m: int, leaves: Sequence[bytes], whole: bool) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if whole else [root(leaves)]
    k = _split(n)
    if m <= k:
        return _subproof(m, leaves[:k], whole) + [root(leaves[k:])]
    return _subproof(m - k, leaves[k:], False) + [root(leaves[:k])]


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes) -> None:
    """Check that ``leaf`` is leaf ``index`` of the tree of ``size`` with root ``expected_root``.

    RFC 9162 §2.1.3.2.

    :raises InvalidProof: saying why not.
    """
    if not 0 <= index < size:
        raise InvalidProof(f"leaf {index} cannot be in a tree of {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise InvalidProof("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise InvalidProof("the inclusion proof is shorter than the tree is deep")
    if not hmac.compare_digest(r, expected_root):
        raise InvalidProof(f"leaf {index} is not in the tree of {size} with root {expected_root.hex()}")


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Check that the tree of ``old_size`` with ``old_root`` is a prefix of the one of ``new_size``.

    RFC 9162 §2.1.4.2.

    :raises InvalidProof: saying why not.
    """
    if not 0 <= old_size <= new_size:
        raise InvalidProof(f"a tree of {old_size} cannot be a prefix of one of {new_size}: entries were cut off")
    if old_size == new_size:
        if proof or not hmac.compare_digest(old_root, new_root):
            raise InvalidProof(f"two trees of {new_size} entries have different roots")
        return
    if old_size == 0:
        if proof:
            raise InvalidProof("a consistency proof from the empty tree is empty")
        return
    if not proof:
        raise InvalidProof("the consistency proof is empty")
    fr, sr = _roots_from_consistency_proof(old_size, new_size, old_root, proof)
    if not hmac.compare_digest(fr, old_root):
        raise InvalidProof(f"the first {old_size} entries are not those the earlier tree's root covers")
    if not hmac.compare_digest(sr, new_root):
        raise InvalidProof(f"the tree of {new_size} does not extend the one of {old_size}")


def _roots_from_consistency_proof(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """Return the old and the new root that ``proof`` leads to (RFC 9162 §2.1.4.2, steps 1-7).

    The caller compares them with the roots it trusts; a proof of the wrong length is refused here.

    :raises InvalidProof: when the proof is longer or shorter than the trees are deep.
    """
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node of the path
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise InvalidProof("the consistency proof is longer than the trees are deep")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise InvalidProof("the consistency proof is shorter than the trees are deep")
    return fr, sr

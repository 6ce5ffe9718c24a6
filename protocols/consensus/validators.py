"""The validator set: who votes, how many votes make a quorum, and who proposes.

Every validator has the same voting power (DESIGN.md section 5), so thresholds are counts. "2f+1" in the
paper means *more than two thirds* of the power and "f+1" *more than one third*; with n = 3f+1 these are
the same numbers, and for other n the fractions are the ones that stay safe (n=5 needs 4, not 3).
"""

from __future__ import annotations

from collections.abc import Sequence

from protocols.consensus.messages import MAX_VALIDATORS


class ValidatorSet:
    """An ordered list of Ed25519 public keys (the genesis order), fixed for the chain's lifetime here."""

    def __init__(self, public_keys: Sequence[bytes]) -> None:
        keys = tuple(public_keys)
        if not 1 <= len(keys) <= MAX_VALIDATORS:
            raise ValueError(f"need 1 to {MAX_VALIDATORS} validators, got {len(keys)}")
        if len(set(keys)) != len(keys):
            raise ValueError("validator public keys must be distinct")
        if any(type(k) is not bytes or len(k) != 32 for k in keys):
            raise ValueError("validators are 32-byte Ed25519 public keys")
        self.keys = keys
        self._index = {k: i for i, k in enumerate(keys)}
        self.n = len(keys)
        # The largest number of Byzantine validators tolerated: n >= 3f + 1.
        self.f = (self.n - 1) // 3
        # More than two thirds: any two quorums share more than n/3 validators, so at least one correct one.
        self.quorum = 2 * self.n // 3 + 1
        # The paper's "f + 1" (its n is 3f + 1): more than a third, so at least one correct validator among
        # them for any n.
        self.f_plus_one = self.n // 3 + 1

    def index_of(self, public_key: bytes) -> int | None:
        return self._index.get(public_key)

    def proposer_index(self, height: int, round: int) -> int:
        """The paper's proposer(h, r): round robin over the genesis order, shifted by one each height."""
        return (height - 1 + round) % self.n

    def proposer(self, height: int, round: int) -> bytes:
        return self.keys[self.proposer_index(height, round)]

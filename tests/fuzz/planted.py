"""A target with a planted bug, for the tests of crash files, minimisation and replay: the `decode` target,
except that a decodable Transfer of more than 2^32 nRLC "crashes" (as a real oracle violation would)."""

from __future__ import annotations

from node.fuzz.targets.decode import DecodeTarget
from protocols.encoding import DecodeError, decode, encode
from protocols.fuzz.oracles import OracleViolation
from protocols.ledger.transactions import Transfer

PLANTED_ABOVE = 1 << 32


class PlantedTarget(DecodeTarget):
    """The decode target with a planted bug: a Transfer of more than 2^32 nRLC violates an oracle."""

    name = "planted"

    def seeds(self) -> list[bytes]:
        """Transfers below the planted bug, to mutate towards it."""
        return [self._input(Transfer, encode(Transfer(bytes(range(20)), amount))) for amount in (5, 1 << 20)]

    def execute(self, data: bytes) -> set[str]:
        features = super().execute(data)
        try:
            value = decode(Transfer, data[1:])
        except DecodeError:
            return features
        if value.amount > PLANTED_ABOVE:
            raise OracleViolation(f"planted: a transfer of {value.amount}")
        return features

"""The `decode` target: every wire type and every tagged union, fed hostile bytes."""

from __future__ import annotations

import random

from node.fuzz.samples import generated, realistic_values, wire_decoders
from node.fuzz.targets.base import Target, feature
from protocols.encoding import DecodeError, encode
from protocols.fuzz.oracles import checked_decode

# Seeds from annotations per wire class: a few, so that optional fields show up both set and unset.
GENERATED_PER_CLASS = 3


class DecodeTarget(Target):
    """Every wire decoder (80+ classes, 8 tagged unions) on mutated canonical encodings.

    Input: one byte choosing the decoder (modulo their number), then the bytes to decode.
    Oracles, on every input:
    - the decoder raises `DecodeError` with a non-empty reason, or returns a value; nothing else escapes;
    - an accepted input is the canonical encoding of the value (re-encoding gives the same bytes);
    - msgspec's fast path and the pure-Python slow path agree: on accept/reject, on the value and its
      type, and on the payload digest of signed values; a valid input is never refused by the fast path.
    """

    name = "decode"
    header = 1

    def __init__(self) -> None:
        self.decoders = wire_decoders()
        self._index = {expected: i for i, (_, expected) in enumerate(self.decoders)}

    def seeds(self) -> list[bytes]:
        rng = random.Random(0)
        seeds = []
        for value in realistic_values():
            seeds.append(self._input(type(value), encode(value)))
        for _, expected in self.decoders:
            if isinstance(expected, type):
                for _ in range(GENERATED_PER_CLASS):
                    value = generated(expected, rng)
                    if value is not None:
                        seeds.append(self._input(expected, encode(value)))
        # The unions decode what their members' seeds hold: pair each union with every seed of a member.
        for index, (_, expected) in enumerate(self.decoders):
            if not isinstance(expected, type):
                members = {self._index[m] for m in expected.__args__ if m in self._index}
                seeds += [bytes([index]) + s[1:] for s in list(seeds) if s[0] in members]
        return list(dict.fromkeys(seeds))

    def _input(self, expected: object, data: bytes) -> bytes:
        return bytes([self._index[expected]]) + data

    def execute(self, data: bytes) -> set[str]:
        if not data:
            return {"empty"}
        name, expected = self.decoders[data[0] % len(self.decoders)]
        value = checked_decode(expected, data[1:])
        if isinstance(value, DecodeError):
            return {feature(name, "rejected"), feature(name, _shape(value.reason))}
        return {feature(name, "accepted", type(value).__name__)}


def _shape(reason: str) -> str:
    """The part of a rejection reason that names a code path: msgpack's own messages (byte offsets,
    codec details) are cut after the exception type."""
    if reason.startswith("malformed msgpack:"):
        return ":".join(reason.split(":")[:2])
    return reason

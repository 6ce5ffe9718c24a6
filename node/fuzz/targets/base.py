"""What a fuzz target is: seeds, one execution with its oracles, and its own mutation of an input.

An input is `header` bytes of choices (which decoder, which sender, which topic...) followed by a
msgpack body; the default mutation changes a choice now and then and otherwise mutates the body as a
msgpack tree (node/fuzz/mutators.py). `execute` runs one input and returns its features: short strings
naming what the input made the code do (a rejection reason, an outcome code, a consensus step). A new
feature keeps the input in the corpus; that is the mutational engine's cheap stand-in for coverage.
Any exception out of `execute` is a crash: an oracle violation (`OracleViolation`) or a bug.
"""

from __future__ import annotations

import abc
import random
import re
from typing import ClassVar

from node.fuzz.mutators import mutate_msgpack

# Rejection reasons quote received values; features keep the reason's shape, not its values, so that
# every new integer does not count as new behaviour.
_QUOTED = re.compile(r"b?'[^']*'|b?\"[^\"]*\"")
_NUMBER = re.compile(r"-?\d+")
MAX_FEATURE_CHARS = 96


def feature(*parts: object) -> str:
    """One feature from its parts, with numbers and quoted values blanked out."""
    text = " ".join(str(p) for p in parts)
    return _NUMBER.sub("N", _QUOTED.sub("Q", text))[:MAX_FEATURE_CHARS]


class Target(abc.ABC):
    """One fuzz target. The class docstring lists the oracles `execute` checks on every input."""

    name: ClassVar[str]
    header: ClassVar[int] = 0  # bytes of choices before the msgpack body
    focus: ClassVar[tuple[int, ...]] = ()  # the body's subtree most mutations go to (see mutate_tree)

    @classmethod
    def summary(cls) -> str:
        """The docstring's first paragraph, on one line."""
        return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())

    @abc.abstractmethod
    def seeds(self) -> list[bytes]:
        """Valid inputs to start from, generated deterministically."""

    @abc.abstractmethod
    def execute(self, data: bytes) -> set[str]:
        """Run one input and check every oracle; return the features it showed."""

    def mutate(self, rng: random.Random, data: bytes, donors: list[bytes]) -> bytes:
        """A mutation of `data`; `donors` are other corpus entries to splice from."""
        head, body = data[: self.header], data[self.header :]
        if self.header and (rng.random() < 0.1 or not body):
            i = rng.randrange(self.header)
            head = head[:i] + bytes([rng.randrange(256)]) + head[i + 1 :]
            return head + body
        return head.ljust(self.header, b"\0") + mutate_msgpack(rng, body, [d[self.header :] for d in donors], self.focus)

    def report(self) -> list[str]:
        """Figures of the campaign only the target knows (printed at its end); its final checks may raise."""
        return []

    def close(self) -> None:  # noqa: B027 - a hook with a default: most targets hold nothing to release
        """Release what the target holds (nodes, threads, directories)."""

"""The fuzz targets, by name. Each is imported only when used: `network` starts libp2p hosts."""

from __future__ import annotations

import importlib

from node.fuzz.targets.base import Target

# name -> (module, class); the order is the order `pocnet fuzz list` shows.
TARGETS: dict[str, tuple[str, str]] = {
    "decode": ("node.fuzz.targets.decode", "DecodeTarget"),
    "ledger": ("node.fuzz.targets.ledger", "LedgerTarget"),
    "matching": ("node.fuzz.targets.matching", "MatchingTarget"),
    "consensus": ("node.fuzz.targets.consensus", "ConsensusTarget"),
    "simulation": ("node.fuzz.targets.simulation", "SimulationTarget"),
    "node": ("node.fuzz.targets.node", "NodeTarget"),
    "network": ("node.fuzz.targets.network", "NetworkTarget"),
}


class UnknownTarget(Exception):
    """An operator mistake: the message names the targets there are."""


def target_class(name: str) -> type[Target]:
    if name not in TARGETS:
        raise UnknownTarget(f"unknown fuzz target {name!r}: choose one of {', '.join(TARGETS)} (see `pocnet fuzz list`)")
    module, cls = TARGETS[name]
    found: type[Target] = getattr(importlib.import_module(module), cls)
    return found

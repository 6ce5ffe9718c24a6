"""One node's consensus timing: its own choice, like any node configuration.

Validators with different timeouts still agree on every block (safety never depends on time). What every
node must agree on (block limits, clock drift, empty-block interval) is the chain's `ChainParams`, from the
genesis (protocols/chain_params.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConsensusConfig:
    """Durations in milliseconds.

    Timeouts grow linearly with the round (`base + round * delta`), as in the paper, so that once the
    network settles some round is long enough for every correct validator to hear the others. The
    defaults are CometBFT's (3 s propose, 1 s prevote/precommit, +0.5 s per round) scaled down, because
    a loopback devnet's delays are milliseconds, not the internet's hundreds of milliseconds.
    """

    timeout_propose: int = 1_000
    timeout_propose_delta: int = 500
    timeout_prevote: int = 500
    timeout_prevote_delta: int = 250
    timeout_precommit: int = 500
    timeout_precommit_delta: int = 250
    # py-libp2p gossip drops messages silently (reference/py-libp2p.md): the paper's gossip property is
    # restored by re-sending our messages of the current round when a whole interval passed without
    # progress. A few times the usual message delay: shorter only adds traffic, longer adds latency.
    rebroadcast_interval: int = 1_000

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if type(value) is not int or value < 0:
                raise ValueError(f"consensus config {name} must be a non-negative int, got {value!r}")
        if self.rebroadcast_interval == 0:
            raise ValueError("rebroadcast_interval must be positive")

    def propose_timeout(self, round: int) -> int:
        return self.timeout_propose + round * self.timeout_propose_delta

    def prevote_timeout(self, round: int) -> int:
        return self.timeout_prevote + round * self.timeout_prevote_delta

    def precommit_timeout(self, round: int) -> int:
        return self.timeout_precommit + round * self.timeout_precommit_delta

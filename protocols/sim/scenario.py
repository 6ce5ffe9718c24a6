"""What a simulation run is made of: the network's behaviour, faults, load and consensus parameters.

A `Scenario` plus its seed determines the run completely; `random_scenario` draws one from a seed, which
is how the safety tests cover thousands of schedules.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

from protocols.chain_params import MAX_BLOCK_BYTES, ChainParams
from protocols.consensus.config import ConsensusConfig

# Simulated time starts here (ms) so that clock skew never makes a node's clock negative.
GENESIS_TIME = 1_000_000

# Faster than the defaults so a simulated minute is short, and in the same proportion to the delays
# below as the defaults are to a loopback devnet's.
SIM_CONSENSUS = ConsensusConfig(
    timeout_propose=300,
    timeout_propose_delta=100,
    timeout_prevote=150,
    timeout_prevote_delta=50,
    timeout_precommit=150,
    timeout_precommit_delta=50,
    rebroadcast_interval=100,
)
SIM_PARAMS = ChainParams(
    max_block_txs=200,
    max_block_bytes=MAX_BLOCK_BYTES,
    empty_block_interval_ms=300,
    max_clock_drift_ms=500,
)


class Behaviour(enum.Enum):
    """How a Byzantine validator misbehaves. It runs a real state machine and corrupts what it sends."""

    SILENT = "silent"  # sends nothing
    EQUIVOCATE = "equivocate"  # two different proposals and two different votes, each to half the peers
    DOUBLE_VOTE = "double-vote"  # its votes say one thing to some peers and another to the rest
    UNKNOWN_BLOCKS = "unknown-blocks"  # votes for blocks nobody proposed, also in future rounds
    CHAOS = "chaos"  # any of the above, chosen per message


@dataclass(frozen=True)
class Partition:
    """From `start` to `end` (ms after genesis) messages only flow inside each group; then it heals."""

    start: int
    end: int
    groups: tuple[frozenset[int], ...]

    def separates(self, a: int, b: int, t: int) -> bool:
        if not self.start <= t < self.end:
            return False
        return not any(a in g and b in g for g in self.groups)


@dataclass(frozen=True)
class Crash:
    """Node `node` stops at `at` (ms after genesis), losing its timers and mempool; restarts at `restart_at`."""

    node: int
    at: int
    restart_at: int | None


@dataclass(frozen=True)
class Congestion:
    """From `start` to `end` (ms after genesis) each node takes at most `capacity` consensus messages per
    `window` ms and drops the rest of that window's, like py-libp2p's bounded queues that a transaction
    flood fills and that drop without an error. Unlike `loss`, the drops come in bursts and hit exactly the
    moments when many messages fly at once (a new round, everyone's re-broadcast)."""

    start: int
    end: int
    capacity: int
    window: int

    def active(self, t: int) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True)
class Scenario:
    n: int = 4
    seed: int = 0
    duration: int = 10_000
    min_delay: int = 1
    max_delay: int = 30
    loss: float = 0.0
    duplicate: float = 0.0
    byzantine: tuple[tuple[int, Behaviour], ...] = ()
    partitions: tuple[Partition, ...] = ()
    crashes: tuple[Crash, ...] = ()
    congestion: tuple[Congestion, ...] = ()
    # Client load: every `tx_interval` ms a batch of transactions reaches each validator's mempool
    # (each copy lost with probability `loss`, like gossip); some are stale compare-and-sets.
    tx_interval: int = 200
    txs_per_batch: int = 4
    # Every k-th batch also registers a timer due a little later, so empty blocks get made (0: never).
    timer_every: int = 5
    # Share of client transactions that are compare-and-sets on a few hot keys (often stale: invalid
    # transactions, conflicts inside a block, evictions); the rest always apply.
    cas_share: float = 0.5
    clock_skew: int = 40
    # Gossip relaying: a correct validator forwards every consensus message it accepts, the first time
    # it sees it, to all peers (gossipsub does this; a Byzantine sender then cannot keep its two
    # different votes apart). Off by default: it multiplies the traffic by n.
    relay: bool = False
    sync_delay: int = 20
    consensus: ConsensusConfig = field(default=SIM_CONSENSUS)
    params: ChainParams = field(default=SIM_PARAMS)
    # Share one signature-verification cache among the nodes: the same results, less CPU (for CI).
    shared_verifier: bool = False

    @property
    def byzantine_nodes(self) -> frozenset[int]:
        return frozenset(i for i, _ in self.byzantine)

    def last_fault_end(self) -> int:
        """When the last partition healed, the last crashed node restarted and the last congestion ended
        (ms after genesis). A node that crashes for good is a fault that never ends: it does not count, the
        others must live without it."""
        ends = [p.end for p in self.partitions] + [c.end for c in self.congestion]
        ends += [c.restart_at for c in self.crashes if c.restart_at is not None]
        ends += [c.at for c in self.crashes if c.restart_at is None]
        return max(ends, default=0)


def random_scenario(seed: int, n: int, f_byzantine: int, duration: int = 6_000) -> Scenario:
    """A scenario drawn from `seed`: delays, loss, duplication, Byzantine behaviours, a partition that
    heals, crashes and restarts of correct validators. Safety must hold in all of them."""
    rng = random.Random(seed)
    nodes = list(range(n))
    rng.shuffle(nodes)
    byz = tuple((i, rng.choice(list(Behaviour))) for i in sorted(nodes[:f_byzantine]))
    correct = sorted(nodes[f_byzantine:])
    partitions: list[Partition] = []
    if rng.random() < 0.5:
        start = rng.randrange(0, duration // 2)
        members = list(range(n))
        rng.shuffle(members)
        cut = rng.randrange(1, n)
        groups = (frozenset(members[:cut]), frozenset(members[cut:]))
        partitions.append(Partition(start, start + rng.randrange(200, duration // 3), groups))
    crashes: list[Crash] = []
    if rng.random() < 0.4:
        node = rng.choice(correct)
        at = rng.randrange(0, duration // 2)
        restart = at + rng.randrange(100, duration // 3) if rng.random() < 0.8 else None
        crashes.append(Crash(node, at, restart))
    max_delay = rng.choice([5, 20, 60, 150])
    return Scenario(
        n=n,
        seed=seed,
        duration=duration,
        min_delay=1,
        max_delay=max_delay,
        loss=rng.choice([0.0, 0.0, 0.05, 0.2]),
        duplicate=rng.choice([0.0, 0.05, 0.2]),
        byzantine=byz,
        partitions=tuple(partitions),
        crashes=tuple(crashes),
        tx_interval=rng.choice([100, 300, 1000]),
        txs_per_batch=rng.randrange(1, 6),
        timer_every=rng.choice([0, 3, 10]),
        clock_skew=rng.choice([0, 20, 100]),
        relay=rng.random() < 0.25,
        shared_verifier=True,
    )

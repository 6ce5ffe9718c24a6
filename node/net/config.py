"""Configuration of the network layer: who we are, where we listen, whom we join, how gossip behaves.

Every number here is a named constant with the reason it has that value; most come from
`reference/py-libp2p.md` (measured on these machines with py-libp2p 0.8.1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Gossip payloads over 1 MiB vanish inside py-libp2p without an error; stay well below, leaving room
# for the protobuf envelope (topic, seqno, 64-byte signature, 36-byte key, sender record).
MAX_GOSSIP_BYTES = 900 * 1024

# GossipSub mesh degree, at the low end of the reference's working range (4-8; libp2p's default is 6).
# Each mesh peer sends a node its own copy of every message, and each copy costs the reader nearly what
# the first one does (the transport's decrypting and framing are most of a message's CPU in py-libp2p):
# at 6 the managers of the 10-node devnet took 7 copies of each transaction batch. A/B on the
# 3,000-transfer burst of bench/liveness.py, two runs each, verify 24,090-25,160/s: degree 4 committed
# 454-543 tx/s unlimited and 81-93 at --cpu-limit 0.5 (5.4-6.3 ms of CPU per transaction, longest gap
# 4.3-4.7 s) against 373-482 and 72-75 (6.8-7.1 ms, 4.4-7.0 s) at 6. Loss is still repaired by the
# gossip of message ids to further peers (IHAVE/IWANT) and, for what must arrive, by re-sending.
GOSSIP_DEGREE = 4
GOSSIP_DEGREE_LOW = 3
GOSSIP_DEGREE_HIGH = 5
# py-libp2p's default heartbeat is 120 s, which leaves a fresh mesh empty for two minutes; the spec says 1 s.
GOSSIP_HEARTBEAT_S = 1
# Rate limit per peer and topic before py-libp2p drops and penalises (default 10/s). Our real rates are
# below ~400 msg/s per host (the measured ceiling), so 2,000/s is only ever hit by a flooding peer.
GOSSIP_MAX_MSGS_PER_TOPIC_PER_S = 2_000.0
# How long a message id is remembered to suppress duplicates (libp2p default 120 s).
GOSSIP_SEEN_TTL_S = 120

# Items published to one topic within this window go out as one gossip message: a gossip hop costs
# ~1.3 ms of CPU whatever its size, so batching multiplies throughput (DESIGN.md section 8).
BATCH_DELAY_S = 0.005
# A batch is flushed early at this many items or bytes, so one message stays far below MAX_GOSSIP_BYTES.
BATCH_MAX_ITEMS = 512
BATCH_MAX_BYTES = 512 * 1024

# Bootstrap reconnection: first retry soon (a devnet starts nodes within a second of each other),
# then back off to avoid hammering a dead peer, capped so a returning peer is found within half a minute.
RECONNECT_INITIAL_S = 0.25
RECONNECT_MAX_S = 30.0
# How often connectivity (bootstrap peers, degree_low) is checked.
CONNECTIVITY_CHECK_S = 1.0
# A TCP + Noise + Yamux dial on loopback takes a few ms; 5 s covers a loaded machine without hanging a task.
DIAL_TIMEOUT_S = 5.0
# Live connections a host holds at most: py-libp2p's (and go-libp2p's) default high water mark. A node
# needs a gossip mesh's worth and its validators; a test of the limit passes a small one.
MAX_CONNECTIONS = 300

# Closing a host cancels everything; anything of the library still running after this is cancelled hard.
SHUTDOWN_GRACE_S = 2.0

# Penalty points after which a peer is disconnected and not redialled for BAN_DURATION_S.
# One invalid message costs INVALID_MESSAGE_PENALTY, so ten of them in a decay window is a ban.
INVALID_MESSAGE_PENALTY = 1.0
BAN_THRESHOLD = 10.0
BAN_DURATION_S = 60.0
# Penalties halve roughly every minute: an honest peer that relayed one stale message recovers.
PENALTY_DECAY_PER_S = 0.99


@dataclass(frozen=True)
class GossipConfig:
    """GossipSub v1.1 parameters, all explicit (py-libp2p's defaults suit neither a devnet nor production)."""

    degree: int = GOSSIP_DEGREE
    degree_low: int = GOSSIP_DEGREE_LOW
    degree_high: int = GOSSIP_DEGREE_HIGH
    heartbeat_interval_s: int = GOSSIP_HEARTBEAT_S
    # Lazy gossip (IHAVE) over the last 3 heartbeats out of 5 remembered: libp2p's defaults.
    gossip_window: int = 3
    gossip_history: int = 5
    # Fanout state for topics we publish to without being subscribed: dropped after a minute.
    fanout_ttl_s: int = 60
    # A pruned peer waits this long before it may GRAFT again (libp2p default 60 s is for the internet).
    prune_backoff_s: int = 10
    unsubscribe_backoff_s: int = 10
    seen_ttl_s: int = GOSSIP_SEEN_TTL_S
    # py-libp2p 0.8.1 queues every message it sends or forwards for each connected peer not subscribed to the
    # topic (in case the peer's SUBSCRIBE is still on its way), and trims the queue with a warning per message
    # once it holds 100. Followers never join the consensus topic, so on a manager those queues are always
    # full: keep a queued message only as long as a subscription can really be in flight on a live link.
    pending_ttl_s: float = 1.0
    pending_max_per_peer: int = 400
    spam_protection: bool = True
    max_msgs_per_topic_per_s: float = GOSSIP_MAX_MSGS_PER_TOPIC_PER_S
    # Eclipse protection wants mesh peers from several distinct IPs: impossible on a loopback devnet.
    eclipse_protection: bool = False
    max_message_bytes: int = MAX_GOSSIP_BYTES

    def __post_init__(self) -> None:
        if not 0 < self.degree_low <= self.degree <= self.degree_high:
            raise ValueError(
                f"gossip degrees must satisfy 0 < low <= degree <= high, got "
                f"low={self.degree_low} degree={self.degree} high={self.degree_high}"
            )
        if not 0 < self.max_message_bytes <= MAX_GOSSIP_BYTES:
            raise ValueError(f"max_message_bytes={self.max_message_bytes} must be in 1..{MAX_GOSSIP_BYTES}")


@dataclass(frozen=True)
class BatchConfig:
    """When the publish batcher flushes."""

    delay_s: float = BATCH_DELAY_S
    min_interval_s: float = 0.0
    max_items: int = BATCH_MAX_ITEMS
    max_bytes: int = BATCH_MAX_BYTES


@dataclass(frozen=True)
class HostConfig:
    """Everything `open_host` needs.

    `seed` is the node's 32-byte Ed25519 seed (`protocols.crypto.Keypair.seed`): the same key is the libp2p
    identity, so a peer id names an account. `bootstrap` entries must end with `/p2p/<peer id>`.
    """

    seed: bytes
    listen: str = "/ip4/127.0.0.1/tcp/0"
    bootstrap: tuple[str, ...] = ()
    gossip: GossipConfig = field(default_factory=GossipConfig)
    batch: BatchConfig = field(default_factory=BatchConfig)
    dial_timeout_s: float = DIAL_TIMEOUT_S
    max_connections: int = MAX_CONNECTIONS
    reconnect_initial_s: float = RECONNECT_INITIAL_S
    reconnect_max_s: float = RECONNECT_MAX_S
    connectivity_check_s: float = CONNECTIVITY_CHECK_S
    shutdown_grace_s: float = SHUTDOWN_GRACE_S

    def __post_init__(self) -> None:
        if type(self.seed) is not bytes or len(self.seed) != 32:
            raise ValueError("seed must be the 32-byte Ed25519 seed of the node key")

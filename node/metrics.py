"""A node's Prometheus metrics (DESIGN.md section 9), served at `/metrics` by the explorer (node/http).

Names follow Prometheus' advice: a `pocnet_` prefix, the unit in the name (`_seconds`, `_bytes`), `_total`
for counters. Each node has its own registry, so tests can run several nodes in one process.

Two kinds of numbers:
- events counted where they happen, through the few methods and metrics below (a block committed, a
  transaction refused by the mempool, a replicate reported, a key released, an enclave run);
- state read when Prometheus scrapes (`NodeCollector`): height, peers, mempool size, order book size,
  tasks by status, gossip counters of the host. Reading at scrape time costs nothing between scrapes; the
  tasks walk is over the in-memory ledger, a few milliseconds for ten thousand tasks.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from node.net.counters import HostCounters
from node.net.gossip import SubscriptionStats
from protocols.consensus.mempool import Mempool
from protocols.ledger.records import TaskStatus
from protocols.ledger.state import TASK, LedgerState

log = logging.getLogger(__name__)

# Commit latency runs from a block's time (set by its proposer) to its commit here: tens of milliseconds
# on a quiet devnet, seconds when a round times out. A block older than this was applied while catching
# up (sync), which says nothing about consensus latency: it is not counted.
CATCH_UP_AGE_S = 60.0
LATENCY_BUCKETS_S = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ROUND_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16)
ENCLAVE_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def reason_label(reason: str) -> str:
    """A bounded label from a reason: its code before any detail ("undecodable: bad tag 7" -> "undecodable"),
    so a peer cannot make a series per message."""
    return reason.split(":", 1)[0].strip()[:48] or "unknown"


@dataclass
class NodeReadings:
    """Where the scrape-time numbers come from: callables into the node, so this module needs no Node."""

    height: Callable[[], int]
    peers: Callable[[], int]
    mempool: Callable[[], int]
    orders: Callable[[], int]
    state: Callable[[], LedgerState]
    gossip: Callable[[], dict[str, SubscriptionStats]]
    host: HostCounters
    topic_name: Callable[[str], str]  # "pocnet/<chain>/txs" -> "txs"


class NodeCollector(Collector):
    """The numbers read at scrape time."""

    def __init__(self, readings: NodeReadings) -> None:
        self.readings = readings

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        r = self.readings
        yield GaugeMetricFamily("pocnet_chain_height", "Height of the last block this node committed.", r.height())
        yield GaugeMetricFamily("pocnet_peers", "Peers connected to this node.", r.peers())
        yield GaugeMetricFamily("pocnet_mempool_transactions", "Transactions waiting in the mempool.", r.mempool())
        yield GaugeMetricFamily("pocnet_orderbook_orders", "Orders in this node's order book.", r.orders())
        tasks = GaugeMetricFamily("pocnet_tasks", "Tasks on the ledger by status.", labels=["status"])
        by_status = Tally(task.status for _, task in r.state().items_with_prefix(TASK))
        for status in TaskStatus:
            if status != TaskStatus.UNSET:
                tasks.add_metric([status.name], by_status.get(status, 0))
        yield tasks
        received = CounterMetricFamily("pocnet_gossip_messages_received", "Gossip items delivered, by topic.", labels=["topic"])
        rejected = CounterMetricFamily("pocnet_gossip_messages_rejected", "Gossip items rejected by validation, by topic.", labels=["topic"])
        dropped = CounterMetricFamily("pocnet_gossip_messages_dropped", "Gossip items dropped on a full queue, by topic.", labels=["topic"])
        for topic, stats in r.gossip().items():
            name = r.topic_name(topic)
            received.add_metric([name], stats.delivered)
            rejected.add_metric([name], stats.rejected)
            dropped.add_metric([name], stats.dropped)
        sent = CounterMetricFamily("pocnet_gossip_messages_sent", "Gossip messages published, by topic.", labels=["topic"])
        for topic, count in r.host.published.items():
            sent.add_metric([r.topic_name(topic)], count)
        yield from (received, rejected, dropped, sent)
        yield CounterMetricFamily("pocnet_peer_penalties", "Penalties given to misbehaving peers.", r.host.penalties)
        yield CounterMetricFamily("pocnet_peer_bans", "Peers banned after too many penalties.", r.host.bans)


class NodeMetrics:
    """The node's registry and its event metrics; roles reach it as `api.metrics`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, process_resident_memory_bytes...
        r = self.registry
        self.commit_latency = Histogram(
            "pocnet_commit_latency_seconds", "From a block's time (its proposal) to its commit on this node.",
            buckets=LATENCY_BUCKETS_S, registry=r)
        self.rounds = Histogram(
            "pocnet_consensus_rounds_per_height", "Rounds consensus took to decide a height (1: the first).",
            buckets=ROUND_BUCKETS, registry=r)
        self.blocks = Counter("pocnet_blocks_committed", "Blocks committed by this node.", registry=r)
        self.mempool_rejections = Counter(
            "pocnet_mempool_rejections", "Transactions the mempool refused, by reason.", ["reason"], registry=r)
        self.replicates = Counter(
            "pocnet_replicates", "Replicates this worker ran, by outcome (ok or a failure reason).", ["outcome"],
            registry=r)
        self.key_releases = Counter(
            "pocnet_key_releases", "Dataset key requests answered by this provider.", ["decision"], registry=r)
        self.enclave_run = Histogram(
            "pocnet_enclave_run_duration_seconds", "Wall-clock time of an iApp run in the enclave, by outcome.",
            ["outcome"], buckets=ENCLAVE_BUCKETS_S, registry=r)

    def watch(self, readings: NodeReadings) -> None:
        """Add the scrape-time numbers (once the node's parts exist)."""
        self.registry.register(NodeCollector(readings))

    def block_committed(self, block_time_ms: int, round_: int, now_ms: int) -> None:
        self.blocks.inc()
        self.rounds.observe(round_ + 1)
        age_s = (now_ms - block_time_ms) / 1000
        if 0 <= age_s < CATCH_UP_AGE_S:
            self.commit_latency.observe(age_s)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)


class CountingMempool(Mempool):
    """The mempool, counting what it refuses by reason (gossip duplicates included: a high rate of them
    says the network re-sends too much)."""

    def __init__(self, *args: object, rejections: Counter, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._rejections = rejections

    def add(self, tx: bytes) -> str | None:
        reason = super().add(tx)
        if reason is not None:
            self._rejections.labels(reason_label(reason)).inc()
        return reason

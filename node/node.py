"""The node: one process, one nursery, every role (DESIGN.md sections 1, 8, 9).

`run_node` opens the store and rebuilds the ledger from it (or from the genesis), starts the libp2p host,
subscribes to the chain's topics, serves the sync protocol and the control socket, drives consensus, and
starts the role plugins once it has caught up. Leaving `run_node` (cancellation on SIGINT/SIGTERM) stops
all of it; the store is consistent at every commit, so nothing decided is lost.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import cast

import trio

from node.admission import Admission
from node.blobs import BLOB_PROTOCOL, RESULT_PROTOCOL, BlobStore
from node.blobs import LIMITS as BLOB_LIMITS
from node.byzantine import ByzantineHost
from node.chain_check import ChainCheck
from node.chain_pace import ChainPace
from node.config import NodeConfig
from node.consensus_driver import ConsensusDriver, wall_ms
from node.consensus_link import ConsensusLinks
from node.control import serve, socket_path
from node.control_handlers import handle_control
from node.datadir import lock_data_dir
from node.directory import PEERS_PROTOCOL, Directory
from node.evidence_reporter import EvidenceReporter
from node.http.server import serve_http
from node.keys import load_or_create_key
from node.metrics import CountingMempool, NodeMetrics, NodeReadings
from node.net.config import BatchConfig, HostConfig
from node.net.host import P2PHost, open_host
from node.net.identity import public_key_of
from node.net.ports import ensure_listen_address_free
from node.net.streams import StreamLimits
from node.outbox import Outbox
from node.restore import restore_ledger
from node.roles.runner import RoleRunner, make_role
from node.storage import Store
from node.sync import MAX_FRAME_BYTES, SYNC_PROTOCOL, sync_handler
from node.topic_handlers import BlockTopic, ConsensusTopic, OrderTopic, PeerRecordTopic, TopicHandlers, TxTopic
from node.topics import Topics
from node.trio_compat import TaskStatus
from node.validator_links import link_validators
from protocols.chain import CommittedBlock
from protocols.consensus.config import ConsensusConfig
from protocols.consensus.mempool import Mempool
from protocols.consensus.messages import Block, Certificate
from protocols.consensus.tendermint import Tendermint
from protocols.consensus.validators import ValidatorSet
from protocols.crypto import Keypair
from protocols.ledger.market import LedgerMarketView
from protocols.ledger.state import StateView
from protocols.ledger.transactions import Transaction, TxBody
from protocols.orderbook import OrderBook
from protocols.orders import OrderT

log = logging.getLogger(__name__)

ADDRESS_FILE = "node.addr"  # written once the node listens: its multiaddrs, one per line (devnet reads it)
BLOB_DIR = "blobs"
STORE_FILE = "node.db"
# A transaction or order published after a quiet spell leaves at once; what follows within the interval
# below is gathered into the next message. A fixed gathering delay (50 ms) was half of the light-load commit
# latency (bench/liveness.py), and the interval alone bounds the messages a burst makes, on any machine.
GOSSIP_BATCH_S = 0.0
# ... and a node publishes at most one batch per topic per this interval. Every node pays ~1.3 ms of CPU
# per gossip message it receives plus a fraction for each duplicate, so on 30 processes sharing 2 cores a
# message costs the network ~100 ms of CPU: six senders in a burst at one batch per 50 ms each asked for
# 12 cores, the managers starved, and the chain stopped. A lone transaction still leaves at once.
GOSSIP_MIN_INTERVAL_S = 0.25
# ... and while the chain is busy (its last block left transactions waiting), at most one batch per topic
# per this many blocks (node/chain_pace.py measures their interval). A fixed interval costs the network the
# same CPU per second on any machine, so a machine half as fast spent twice the share of its CPU on
# messages: the 3,000-transfer burst at --cpu-limit 0.5 took three times the messages of the unlimited
# run. A busy chain's latency is its queue (admission lets in ~10 s of blocks, node/admission.py), and a
# transaction waiting in our batch is in that queue too: it reaches the proposers later, but no later
# than the ones admitted before it reach the blocks. bench/liveness.py burst at 0.5 core, verify 24,715/s,
# one batch per 0.5 / 1 / 2 / 4 blocks: 80-84 / 101 / 114-118 / 132 tx/s, 6.2 / 5.1 / 4.3 / 3.7 ms of CPU
# per transaction, commit latency p50 3.4-4.3 / 2.6 / 2.9-3.3 / 2.9 s. Idle again, the floor applies at
# once (Batcher.pace): a lone transaction never waits for a pace measured under load.
GOSSIP_BLOCKS_PER_BATCH = 4
CHAIN_PACE_SAMPLES = 8
# At start a node asks peers for missed blocks for at most this long before its roles begin.
CATCH_UP_S = 10.0
# Admission control of local submissions (node/admission.py): a transaction admitted should commit within
# about this long at the commit rate measured over the last ADMISSION_WINDOW_S. A duration, not a count, so
# it holds on any machine: several blocks at whatever rate the chain measures, so blocks stay full. Longer
# only fills the network's buffers: every admitted transaction is read and checked by every node, and at
# --cpu-limit 0.5 the votes queued behind that intake. A/B on the 3,000-transfer burst, twice each: 10 s
# gave gaps of 10.9 and 14.7 s and p50 latency 10-12 s; 30 s gave 19.9 and 25.3 s, 21-23 s; the same
# throughput (40-44 tx/s; 440-460 tx/s unlimited, where p50 latency halved too).
ADMISSION_BACKLOG_S = 10.0
ADMISSION_WINDOW_S = 30.0
# Always admitted up to a fifth of a block (ChainParams.max_block_txs): an idle chain's measured rate says
# nothing of its capacity, so the floor only starts it, and the limit then grows by what each block commits.
# Every node admits its floor at once when a burst starts on several of them, and every node of the network
# must take in what was admitted: at two blocks' worth, six followers let 3,000 transfers in within a second,
# and at --cpu-limit 0.5 their intake starved the first block's votes for 25-40 s (bench/liveness.py). A
# count per node, so a slower machine is no worse off: its limit then grows with its own, slower, blocks.
ADMISSION_FLOOR_BLOCK_SHARE = 0.2


class Node:
    """One node as a composition: the ledger and consensus (driver), the gossip topics' handlers, the outbox
    for what we send, the control answers (node/control_handlers.py) and the role plugins (node/roles/).
    Its own methods are the roles' NodeAPI and the bookkeeping after each block; `run` starts the rest."""

    def __init__(self, config: NodeConfig, keypair: Keypair, store: Store, host: P2PHost) -> None:
        self.config = config
        self.genesis = config.genesis
        self.keypair = keypair
        self.store = store
        self.host = host
        self.topics = Topics(self.genesis.chain_id)
        self.app, tip = restore_ledger(self.genesis, store)
        self.verifier = self.app.ledger.rules.signatures  # one cache: gossip checks and the ledger verify each tx once
        self.order_book = OrderBook(self.verifier)
        self.roles = [make_role(r, config) for r in config.roles]
        self.role_runner = RoleRunner(self.roles)
        self.data_dir = config.data_dir
        self.blobs = BlobStore(config.data_dir / BLOB_DIR)
        self.directory = Directory(self.verifier)
        self.validators = ValidatorSet([v.public_key for v in self.genesis.validators])
        self.is_validator = self.validators.index_of(keypair.public_key) is not None
        self.metrics = NodeMetrics()
        self.mempool: Mempool = CountingMempool(
            self.app, max_tx_bytes=self.genesis.params.max_tx_bytes, rejections=self.metrics.mempool_rejections
        )
        self.http_url = ""  # the explorer's base URL once it serves (config.http)
        machine = Tendermint(
            chain_id=self.genesis.chain_id,
            validators=self.validators,
            app=self.app,
            config=ConsensusConfig(),
            params=self.genesis.params,
            tip=tip,
            keypair=keypair if self.is_validator else None,
            mempool=self.mempool,
            verifier=self.verifier,
            restore=store.signed_messages(),
        )
        consensus_host = host
        if config.byzantine is not None and self.is_validator:
            # A stand-in: every attribute but `publish` is the real host's.
            consensus_host = cast(
                P2PHost, ByzantineHost(host, config.byzantine, keypair, self.genesis.chain_id, self.topics.consensus)
            )
        self.driver = ConsensusDriver(
            machine, self.app, store, consensus_host, self.topics.consensus, self.topics.blocks, self._on_commit,
        )
        self.admission = Admission(
            ADMISSION_BACKLOG_S, max(1, int(ADMISSION_FLOOR_BLOCK_SHARE * self.genesis.params.max_block_txs)),
            ADMISSION_WINDOW_S,
        )
        self.chain_pace = ChainPace(CHAIN_PACE_SAMPLES)
        self.outbox = Outbox(
            keypair, self.topics, host, self.mempool, self.admission, self.ledger_view, self.driver.wake, store,
            self.app.decode,
        )
        self.outbox.restore()
        self.driver.on_evidence = EvidenceReporter(self.outbox.submit, self.ledger_view).report
        self.serve_sync = sync_handler(store)
        self.gossip = TopicHandlers(
            consensus=ConsensusTopic(self.validators, self.verifier, self.driver.on_consensus_gossip),
            blocks=BlockTopic(self.validators, self.verifier, self.driver.on_block_gossip),
            txs=TxTopic(self.mempool, self.app.decode, self.verifier, self.driver.wake),
            orders=OrderTopic(
                self.order_book, store, self._market_view, self.verifier, lambda: self.role_runner.opened, keypair,
                self.outbox,
            ),
            peers=PeerRecordTopic(
                self.directory, keypair, self.genesis.chain_id, host, self.topics.peers,
                lambda: self.links.addrs if self.links is not None else [],
            ),
        )
        # Validators also push their consensus messages to each other over streams (see consensus_link.py);
        # a Byzantine test node misbehaves on gossip only, so it gets no honest second channel.
        self.links: ConsensusLinks | None = None
        if self.is_validator and config.byzantine is None:
            self.links = ConsensusLinks(
                host, self.gossip.consensus.validate, self.gossip.consensus.handle, self._is_validator_peer,
                config.link_listen,
            )
            self.driver.push = self.links.send
        self.metrics.watch(NodeReadings(
            height=lambda: self.height, peers=lambda: len(self.host.connected_peers()), mempool=lambda: len(self.mempool),
            orders=lambda: len(self.order_book), state=lambda: self.app.ledger.state, gossip=self.host.subscription_stats,
            host=self.host.counters, topic_name=lambda topic: topic.rsplit("/", 1)[-1],
        ))

    def _is_validator_peer(self, peer_id: str) -> bool:
        try:
            return public_key_of(peer_id) in self.validators.keys
        except ValueError:  # not an Ed25519 peer id: no validator's
            return False

    # --- NodeAPI ------------------------------------------------------------------------------------

    @property
    def height(self) -> int:
        return self.driver.height

    @property
    def block_time(self) -> int:
        return self.app.last_block_time

    def ledger_view(self) -> StateView:
        return self.app.ledger.state.view()

    def _market_view(self) -> LedgerMarketView:
        return LedgerMarketView(self.ledger_view(), self.app.ledger.rules.categories)

    def proposer_rank(self) -> int | None:
        index = self.validators.index_of(self.keypair.public_key)
        if index is None:
            return None
        return (index - self.validators.proposer_index(self.height + 1, 0)) % self.validators.n

    async def submit(self, body: TxBody) -> Transaction:
        return await self.outbox.submit(body)

    async def publish_order(self, order: OrderT) -> OrderT:
        return await self.gossip.orders.publish(order)

    # --- after each block -----------------------------------------------------------------------------

    async def _on_commit(self, block: Block, certificate: Certificate, committed: CommittedBlock) -> None:
        """Tell each part what a stored block changed: admission its commit rate, the host the chain's pace
        (for its gossip batches), the book its spent orders, the outbox its committed transactions, the roles
        the block (they act on the state it left)."""
        now = trio.current_time()
        self.admission.on_commit(len(block.txs), now)
        self.chain_pace.on_commit(now, len(self.mempool))
        self.host.pace_publishing(publish_interval(self.chain_pace))
        self.metrics.block_committed(block.time, certificate.round, wall_ms())
        spent = self.gossip.orders.prune()
        self.outbox.committed((self.app.decode(data).tx_id for data in block.txs), spent)
        self.role_runner.committed(block.height, committed)

    # --- control API ----------------------------------------------------------------------------------

    async def handle_control(self, request: object) -> object:
        return await handle_control(self, request)

    # --- running --------------------------------------------------------------------------------------

    async def run(self, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        gossip = self.gossip
        async with trio.open_nursery() as nursery:
            if self.is_validator:
                # Followers take decided blocks with their certificates from the blocks topic (and sync),
                # and never see the votes: each vote then costs 3 gossip hops among 4 managers instead of
                # a relay through every node of the network.
                await self.host.subscribe(self.topics.consensus, gossip.consensus.validate, gossip.consensus.handle)
                if self.links is not None:  # none for a Byzantine test node (see __init__)
                    await nursery.start(self.links.run)
                nursery.start_soon(link_validators, self.host, self.directory, self.validators, self.keypair.public_key, self.links)
            for topic, handler in ((self.topics.blocks, gossip.blocks), (self.topics.txs, gossip.txs),
                                   (self.topics.orders, gossip.orders), (self.topics.peers, gossip.peers)):
                await self.host.subscribe(topic, handler.validate, handler.handle, batched=handler.batched)
            self.host.set_request_handler(SYNC_PROTOCOL, self.serve_sync, StreamLimits(max_frame_bytes=MAX_FRAME_BYTES))
            self.host.set_request_handler(BLOB_PROTOCOL, self.blobs.serve, BLOB_LIMITS)
            self.host.set_request_handler(PEERS_PROTOCOL, self.directory.serve)
            self.host.set_request_handler(RESULT_PROTOCOL, self.blobs.serve, BLOB_LIMITS)
            for role in self.roles:
                for protocol, answer in role.request_handlers(self).items():
                    self.host.set_request_handler(protocol, answer)
            nursery.start_soon(gossip.peers.announce)
            await nursery.start(serve, socket_path(self.config.data_dir), self.handle_control)
            if self.config.http is not None:
                self.http_url = await nursery.start(serve_http, self, self.config.http)
            write_addresses(self.data_dir, self.host.addrs)  # last: whoever reads it can use the control socket
            # The consensus loop first: catching up feeds it the fetched blocks and waits until it has applied
            # them. Started after, it left every fetched batch unapplied until the catch-up's time ran out,
            # and a restarted node that had missed blocks sat out CATCH_UP_S before voting again.
            await nursery.start(self.driver.run)
            await self.driver.catch_up(CATCH_UP_S if self.config.join else 0)
            self.role_runner.open()  # caught up: from now on the roles see every block
            nursery.start_soon(self.role_runner.run, self)
            for role in self.roles:
                nursery.start_soon(role.run, self)
            nursery.start_soon(self.outbox.run)
            log.info(
                "event=node-ready address=0x%s height=%d validator=%s roles=%s",
                self.keypair.address.hex(), self.height, self.is_validator, ",".join(self.config.roles),
            )
            task_status.started()


def write_addresses(data_dir: Path, addrs: list[str]) -> None:
    """Publish our multiaddrs for the devnet and for people joining by hand (atomic: write then rename)."""
    tmp = data_dir / (ADDRESS_FILE + ".tmp")
    tmp.write_text("\n".join(addrs) + "\n")
    os.replace(tmp, data_dir / ADDRESS_FILE)


def publish_interval(pace: ChainPace) -> float:
    """How often a topic's gossip batches may leave: once per GOSSIP_BLOCKS_PER_BATCH blocks while the chain
    is busy, never more often than GOSSIP_MIN_INTERVAL_S."""
    busy = pace.busy_block_interval()
    if busy is None or not pace.busy:
        return GOSSIP_MIN_INTERVAL_S
    return max(GOSSIP_MIN_INTERVAL_S, busy * GOSSIP_BLOCKS_PER_BATCH)


def host_config(seed: bytes, listen: str, join: tuple[str, ...]) -> HostConfig:
    """A node's network settings (bench/raw_gossip.py measures bare hosts with the same ones)."""
    batch = BatchConfig(delay_s=GOSSIP_BATCH_S, min_interval_s=GOSSIP_MIN_INTERVAL_S)
    return HostConfig(seed=seed, listen=listen, bootstrap=join, batch=batch)


async def run_node(config: NodeConfig, ready: Callable[[Node], Awaitable[None]] | None = None) -> None:
    """Run a node until cancelled. `ready` (tests) is called once it serves. Problems the operator can fix
    (another node on the directory, a damaged key or store) raise an `OperatorError` before anything in
    the directory changes: the lock comes first, so a refused node never removes a running one's files."""
    with lock_data_dir(config.data_dir):
        keypair = load_or_create_key(config.data_dir)
        store = Store(config.data_dir / STORE_FILE)
        served = False  # a node refused at start says so in one line, without a "stopped" after it
        try:
            store.bind_genesis(config.genesis.genesis_hash)
            if config.link_listen is not None:  # before anything listens: refused in one line, like --listen
                ensure_listen_address_free(config.link_listen, "--link-listen")
            async with open_host(host_config(keypair.seed, config.listen, config.join)) as host:
                served = True
                node = Node(config, keypair, store, host)
                chain_check = ChainCheck(host, config.genesis, config.join)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(chain_check.run)
                    await nursery.start(node.run)
                    if ready is not None:
                        await ready(node)
        finally:
            store.close()
            (config.data_dir / ADDRESS_FILE).unlink(missing_ok=True)
            if served:
                log.info("event=node-stopped")


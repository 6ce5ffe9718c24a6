"""The node: one process, one nursery, every role (DESIGN.md sections 1, 8, 9).

`run_node` opens the store and rebuilds the ledger from it (or from the genesis), starts the libp2p host,
subscribes to the chain's topics, serves the sync protocol and the control socket, drives consensus, and
starts the role plugins once it has caught up. Leaving `run_node` (cancellation on SIGINT/SIGTERM) stops
all of it; the store is consistent at every commit, so nothing decided is lost.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import trio

from node import queries
from node.admission import Admission
from node.blobs import BLOB_PROTOCOL, RESULT_PROTOCOL, BlobStore
from node.blobs import LIMITS as BLOB_LIMITS
from node.byzantine import ByzantineHost
from node.chain_check import ChainCheck
from node.config import NodeConfig
from node.consensus_driver import ConsensusDriver, wall_ms
from node.consensus_link import ConsensusLinks
from node.control import (
    AccountInfo,
    AccountRequest,
    AssetListRequest,
    BlocksRequest,
    CertifyPlatformRequest,
    ControlRejected,
    DealInfo,
    DealListRequest,
    DealRequest,
    DeployAppRequest,
    DeployDatasetRequest,
    ExplainRequest,
    FetchResultRequest,
    NodeStatus,
    OrderbookRequest,
    OrderPublished,
    OrderRequest,
    PlatformCertified,
    PublishOrderRequest,
    ReplicatesQuery,
    RunRequest,
    StatusRequest,
    SubmitRequest,
    TaskInfo,
    TaskListRequest,
    TaskRequest,
    TxLookupRequest,
    TxResultInfo,
    TxResultRequest,
    TxSubmitted,
    ValidatorsRequest,
    serve,
    socket_path,
)
from node.datadir import lock_data_dir
from node.deploy import deploy_app, deploy_dataset
from node.directory import MAX_ADDRESSES, PEERS_PROTOCOL, Directory, PeerRecord, reach
from node.http.server import serve_http
from node.keys import load_or_create_key
from node.metrics import CountingMempool, NodeMetrics, NodeReadings
from node.net.config import BatchConfig, HostConfig
from node.net.host import P2PHost, open_host
from node.net.streams import RequestRejected, StreamLimits
from node.requester import explain_request, fetch_result, find_order, start_run, task_report
from node.roles.authority import AuthorityRole
from node.roles.base import Role
from node.roles.manager import ManagerRole
from node.roles.passive import PassiveRole
from node.roles.provider import ProviderRole
from node.roles.worker import CertifyError, WorkerRole
from node.storage import Store
from node.sync import MAX_FRAME_BYTES, SYNC_PROTOCOL, answer
from node.topics import Topics
from protocols.chain import CommittedBlock, LedgerApplication
from protocols.consensus.blocks import genesis_tip, verify_certificate
from protocols.consensus.config import ConsensusConfig
from protocols.consensus.evidence import offender
from protocols.consensus.mempool import Mempool
from protocols.consensus.messages import (
    Block,
    Certificate,
    DecidedBlock,
    DuplicateVoteEvidence,
    block_id,
    decode_message,
)
from protocols.consensus.tendermint import Tendermint
from protocols.consensus.validators import ValidatorSet
from protocols.crypto import Keypair, address_of, sign
from protocols.encoding import DecodeError, decode, encode
from protocols.ledger.evidence import offence_key
from protocols.ledger.ledger import Ledger, genesis_state
from protocols.ledger.market import LedgerMarketView
from protocols.ledger.state import EQUIVOCATION, LedgerState, StateView
from protocols.ledger.transactions import RecordEquivocation, Transaction, TxBody
from protocols.matching import order_violations
from protocols.orderbook import OrderBook
from protocols.orders import Order

log = logging.getLogger(__name__)
RoleT = TypeVar("RoleT")

ADDRESS_FILE = "node.addr"
BLOB_DIR = "blobs"
# Our peer record goes out at start, again after each of these delays (nodes started together hear of
# each other within seconds), then every PEER_RECORD_S for nodes that joined since (gossip has no history).
# Every record reaches every node: at one per node per 5 s, a 30-node devnet spent a third of its idle CPU
# on them.
PEER_RECORD_EARLY_S = (2.0, 4.0, 8.0, 16.0)
PEER_RECORD_S = 30.0
STORE_FILE = "node.db"
# Gossip loses messages: our own orders are announced again at this interval until the ledger consumes
# them, our pending transactions first after it and then at doubling intervals up to REANNOUNCE_MAX_S
# (DESIGN.md section 8).
REANNOUNCE_S = 3.0
REANNOUNCE_MAX_S = 60.0
# At most this many of our pending transactions go out again per round: every receiver decodes and checks
# each one, so re-sending a whole backlog at once costs the network more than the loss it repairs.
REANNOUNCE_MAX_TXS = 200
# A proposal carries its block through gossip, and every validator re-checks it. On the 2-core devnet a
# 1,000-transfer (190 KB) proposal took six rounds (90 s) to decide under load, while blocks of a few
# hundred transfers decide in round 0: many small blocks beat few large ones here.
MAX_BLOCK_BYTES = 64 * 1024
MAX_BLOCK_TXS = 250
# A transaction or order published after a quiet spell leaves at once; what follows within the interval
# below is gathered into the next message. A fixed gathering delay (50 ms) was half of the light-load commit
# latency (bench/liveness.py), and the interval alone bounds the messages a burst makes, on any machine.
GOSSIP_BATCH_S = 0.0
# ... and a node publishes at most one batch per topic per this interval. Every node pays ~1.3 ms of CPU
# per gossip message it receives plus a fraction for each duplicate, so on 30 processes sharing 2 cores a
# message costs the network ~100 ms of CPU: six senders in a burst at one batch per 50 ms each asked for
# 12 cores, the managers starved, and the chain stopped. A lone transaction still leaves at once.
GOSSIP_MIN_INTERVAL_S = 0.25
# How often a validator checks that it is connected to every other validator it knows an address of.
# Only validators are on the consensus topic, so their votes must not depend on a path through followers.
VALIDATOR_LINK_S = 2.0
# How often roles get a tick for time-driven work (a manager's matching turn).
ROLE_TICK_S = 0.25
# At start a node asks peers for missed blocks for at most this long before its roles begin.
CATCH_UP_S = 10.0
# Admission control of local submissions (node/admission.py): a transaction admitted should commit within
# about this long at the commit rate measured over the last ADMISSION_WINDOW_S. A duration, not a count, so
# it holds on any machine; half a minute is what a user waiting on `--wait` tolerates.
ADMISSION_BACKLOG_S = 30.0
ADMISSION_WINDOW_S = 30.0
# Always admitted up to a fifth of a block: an idle chain's measured rate says nothing of its capacity, so
# the floor only starts it, and the limit then grows by what each block commits. Every node admits its
# floor at once when a burst starts on several of them, and every node of the network must take in what was
# admitted: at two blocks' worth, six followers let 3,000 transfers in within a second, and at --cpu-limit
# 0.5 their intake starved the first block's votes for 25-40 s (bench/liveness.py). A count per node, so a
# slower machine is no worse off: its limit then grows with its own, slower, blocks.
ADMISSION_FLOOR_TXS = MAX_BLOCK_TXS // 5


def make_role(name: str, config: NodeConfig) -> Role:
    if name == "manager":
        return ManagerRole()
    if name == "provider":
        return ProviderRole(config.data_dir)
    if name == "worker":
        return WorkerRole(config.data_dir, config.manager, config.dishonest)
    if name == "authority":
        return AuthorityRole()
    return PassiveRole(name)


@dataclass
class PendingTx:
    """One of our transactions not yet in a block, and when to gossip it again.

    The interval doubles with each re-announcement: a transaction still pending after several is waiting for
    a chain that is slow, not for a lost message, and re-sending a backlog at a fixed pace is what keeps an
    overloaded network overloaded (a 30-node devnet on 2 cores never recovered from a burst that way)."""

    nonce: int
    data: bytes
    announce_at: float  # trio clock
    interval: float = REANNOUNCE_S

    def backoff(self, now: float) -> None:
        self.interval = min(2 * self.interval, REANNOUNCE_MAX_S)
        self.announce_at = now + self.interval


class Node:
    """Everything one node holds; the methods below are the roles' NodeAPI and the control handlers."""

    def __init__(self, config: NodeConfig, keypair: Keypair, store: Store, host: P2PHost) -> None:
        self.config = config
        self.genesis = config.genesis
        self.keypair = keypair
        self.store = store
        self.host = host
        self.topics = Topics(self.genesis.chain_id)
        ledger = Ledger.from_genesis(self.genesis)
        self.verifier = ledger.rules.signatures  # one cache: gossip checks and the ledger verify each tx once
        self.order_book = OrderBook(self.verifier)
        self.roles = [make_role(r, config) for r in config.roles]
        self.data_dir = config.data_dir
        self.blobs = BlobStore(config.data_dir / BLOB_DIR)
        self.directory = Directory(self.verifier)
        self.validators = ValidatorSet([v.public_key for v in self.genesis.validators])
        self.is_validator = self.validators.index_of(keypair.public_key) is not None
        ledger.state = self._load_state()
        tip = store.tip() or genesis_tip(self.genesis.genesis_hash, self.genesis.genesis_time_ms)
        self.app = LedgerApplication(ledger, last_block_time=tip.time)
        self.metrics = NodeMetrics()
        self.mempool: Mempool = CountingMempool(self.app, rejections=self.metrics.mempool_rejections)
        self.http_url = ""  # the explorer's base URL once it serves (config.http)
        consensus_config = ConsensusConfig(
            empty_block_interval=self.genesis.empty_block_interval_ms,
            max_block_bytes=MAX_BLOCK_BYTES,
            max_block_txs=MAX_BLOCK_TXS,
        )
        machine = Tendermint(
            chain_id=self.genesis.chain_id,
            validators=self.validators,
            app=self.app,
            config=consensus_config,
            tip=tip,
            keypair=keypair if self.is_validator else None,
            mempool=self.mempool,
            verifier=self.verifier,
            restore=store.signed_messages(),
        )
        consensus_host = host
        if config.byzantine is not None and self.is_validator:
            consensus_host = ByzantineHost(host, config.byzantine, keypair, self.genesis.chain_id, self.topics.consensus)
        # Validators also push their consensus messages to each other over streams (see consensus_link.py);
        # a Byzantine test node misbehaves on gossip only, so it gets no honest second channel.
        use_links = self.is_validator and config.byzantine is None
        self.links = ConsensusLinks(host, self.validate_consensus, self.on_consensus) if use_links else None
        self.driver = ConsensusDriver(
            machine, self.app, store, consensus_host, self.topics.consensus, self.topics.blocks, self._on_commit,
            push=self.links.send if self.links is not None else None,
        )
        self.driver.on_evidence = self._report_equivocation
        self._reported_offences: set[bytes] = set()
        self._own_orders: dict[bytes, Order] = {}
        # Ours, not yet committed, by tx id.
        self._pending_txs: dict[bytes, PendingTx] = {}
        self._rejected_txs: dict[bytes, str] = {}
        self.admission = Admission(ADMISSION_BACKLOG_S, ADMISSION_FLOOR_TXS, ADMISSION_WINDOW_S)
        self._block_events: trio.MemorySendChannel[tuple[int, CommittedBlock]] | None = None
        for order, _ in store.load_orders():
            self.order_book.add(order)
        self.metrics.watch(NodeReadings(
            height=lambda: self.height, peers=lambda: len(self.host.connected_peers()), mempool=lambda: len(self.mempool),
            orders=lambda: len(self.order_book), state=lambda: self.app.ledger.state, gossip=self.host.subscription_stats,
            host=self.host.counters, topic_name=lambda topic: topic.rsplit("/", 1)[-1],
        ))

    def _load_state(self) -> LedgerState:
        stored = dict(self.store.load_state())
        if stored or self.store.tip() is not None:
            return LedgerState(stored)
        state = genesis_state(self.genesis)
        self.store.write_genesis_state(state.items())
        return state

    # --- NodeAPI ------------------------------------------------------------------------------------

    @property
    def height(self) -> int:
        return self.driver.height

    @property
    def block_time(self) -> int:
        return self.app.last_block_time

    def ledger_view(self) -> StateView:
        return self.app.ledger.state.view()

    def proposer_rank(self) -> int | None:
        index = self.validators.index_of(self.keypair.public_key)
        if index is None:
            return None
        return (index - self.validators.proposer_index(self.height + 1, 0)) % self.validators.n

    def _next_nonce(self) -> int:
        """After the committed nonce and after every transaction of ours still pending. Taking the maximum
        (not committed + pending count) stays right in the moment between a block's commit and the
        cleaning of `_pending_txs`, when a just-committed transaction would otherwise count twice."""
        committed = self.ledger_view().account(self.keypair.address).nonce
        return max([committed, *(pending.nonce + 1 for pending in self._pending_txs.values())])

    async def submit(self, body: TxBody) -> Transaction:
        """Sign, admit and gossip one transaction of ours. Raises ValueError with the reason it was refused."""
        overloaded = self.admission.refuse(len(self.mempool), trio.current_time())
        if overloaded is not None:
            raise ValueError(overloaded)
        # The submitter is owed the state's verdict now, which needs every transaction before theirs checked.
        self.mempool.recheck_all()
        self._forget_dropped()
        tx = sign(self.keypair, self.genesis.chain_id, Transaction(self._next_nonce(), body))
        data = encode(tx)
        reason = self.mempool.add(data)
        if reason is not None:
            raise ValueError(reason)
        self._pending_txs[tx.tx_id] = PendingTx(tx.nonce, data, trio.current_time() + REANNOUNCE_S)
        await self.host.publish_item(self.topics.txs, data)
        self.driver.wake()
        log.info("event=tx-submitted tx=%s kind=%s nonce=%d", tx.tx_id.hex()[:16], type(body).__name__, tx.nonce)
        return tx

    async def publish_order(self, order: Order) -> Order:
        signed = sign(self.keypair, self.genesis.chain_id, order)
        reason = self._order_refusal(signed) or self.order_book.add(signed)
        if reason not in (None, "duplicate"):
            raise ValueError(reason)
        self._own_orders[signed.payload_digest] = signed
        self.store.save_orders([(signed, wall_ms())])
        await self.host.publish_item(self.topics.orders, encode(signed))
        log.info("event=order-published kind=%s hash=%s", type(order).__name__, signed.payload_digest.hex()[:16])
        return signed

    # --- gossip handlers ------------------------------------------------------------------------------

    def validate_tx(self, peer: str, data: bytes) -> str | None:
        if data in self.mempool:
            return None  # a re-announcement of what we already checked: skip decoding it again
        try:
            tx = self.app.decode(data)
        except DecodeError as exc:
            return f"undecodable transaction: {exc.reason}"
        return None if self.verifier.verify(tx) else "bad transaction signature"

    async def on_tx(self, peer: str, data: bytes) -> None:
        if self.mempool.add(data) is None:
            self.driver.wake()

    def validate_order(self, peer: str, data: bytes) -> str | None:
        try:
            order = decode(Order, data)
        except DecodeError as exc:
            return f"undecodable order: {exc.reason}"
        return self._order_refusal(order, judge_unknown_assets=self._caught_up)

    @property
    def _caught_up(self) -> bool:
        """Whether start-up catch-up is over (`run` opens the roles' block channel right after it)."""
        return self._block_events is not None

    def _order_refusal(self, order: Order, judge_unknown_assets: bool = True) -> str | None:
        """Why the ledger already rules `order` out (its signature, its asset's owner, its category), or
        None: such an order is neither admitted to a book nor relayed. While the node is still catching
        up, an asset it does not know yet may well be registered in a block it has not seen: an order for
        it is then passed on (not admitted: `on_order` asks again), since a rejection would count against
        honest relays, and a node syncing a long chain would end up banning all of them."""
        view = LedgerMarketView(self.ledger_view(), self.app.ledger.rules.categories)
        found = order_violations(order, view, self.verifier)
        if not judge_unknown_assets:
            found = [v for v in found if not v.code.endswith("-not-registered")]
        return f"{found[0].code}: {found[0].detail}" if found else None

    async def on_order(self, peer: str, data: bytes) -> None:
        order = decode(Order, data)
        if self._order_refusal(order) is not None:
            return  # passed on while we caught up, for an asset still unknown here: its owner announces it again
        view = self.ledger_view()
        if view.consumed(order.payload_digest) >= order.volume:
            return  # an old announcement of a spent order
        if self.order_book.add(order) is None:
            self.store.save_orders([(order, wall_ms())])

    def validate_consensus(self, peer: str, data: bytes) -> str | None:
        try:
            message = decode_message(data)
        except DecodeError as exc:
            return f"undecodable consensus message: {exc.reason}"
        if self.validators.index_of(message.signature.public_key) is None:
            return "consensus message not signed by a validator"
        if not self.verifier.verify(message):  # cached: consensus checks it again for free
            return "consensus message with a bad signature"
        return None

    async def on_consensus(self, peer: str, data: bytes) -> None:
        await self.driver.on_consensus_gossip(peer, decode_message(data))

    def validate_block(self, peer: str, data: bytes) -> str | None:
        try:
            decided = decode(DecidedBlock, data)
        except DecodeError as exc:
            return f"undecodable block: {exc.reason}"
        block, certificate = decided.block, decided.certificate
        return verify_certificate(certificate, block.height, block_id(block), self.validators, self.verifier)

    async def on_block(self, peer: str, data: bytes) -> None:
        await self.driver.on_block_gossip(peer, decode(DecidedBlock, data))

    def validate_peer_record(self, peer: str, data: bytes) -> str | None:
        return self.directory.check(data)

    async def on_peer_record(self, peer: str, data: bytes) -> None:
        self.directory.learn(data)

    async def _announce_peer_record(self) -> None:
        sequence = wall_ms()
        for delay in itertools.chain(PEER_RECORD_EARLY_S, itertools.repeat(PEER_RECORD_S)):
            record = sign(self.keypair, self.genesis.chain_id, PeerRecord(tuple(self.host.addrs[:MAX_ADDRESSES]), sequence))
            self.directory.learn(encode(record))
            await self.host.publish(self.topics.peers, encode(record))
            await trio.sleep(delay)

    async def _link_validators(self) -> None:
        """Stay connected to every other validator and gossip with it as a direct peer, so consensus
        messages go straight between validators."""
        others = [address_of(key) for key in self.validators.keys if key != self.keypair.public_key]
        linked: set[bytes] = set()
        while True:
            for account in others:
                peer = await reach(self.host, self.directory, account)
                if peer is not None:
                    self.host.keep_direct(peer)
                    if self.links is not None:
                        self.links.link(peer)
                if peer is not None and account not in linked:
                    log.info("event=validator-linked validator=0x%s peer=%s", account.hex(), peer)
                    linked.add(account)
                elif peer is None and account in linked:
                    log.warning("event=validator-unreachable validator=0x%s", account.hex())
                    linked.discard(account)
            await trio.sleep(VALIDATOR_LINK_S)

    async def serve_sync(self, peer: str, request: bytes) -> bytes:
        try:
            return answer(self.store, request)
        except DecodeError as exc:
            raise RequestRejected(f"malformed sync request: {exc.reason}") from None

    async def _report_equivocation(self, evidence: DuplicateVoteEvidence) -> None:
        """Put the proof of a validator's equivocation on the ledger, once per offence from this node (the
        other validators saw it too and may report it first: the ledger records one, refuses the rest)."""
        vote = evidence.first
        key = offence_key(offender(evidence), vote.height, vote.round, vote.step)
        if key in self._reported_offences or self.ledger_view().get(key) is not None:
            return
        self._reported_offences.add(key)
        try:
            tx = await self.submit(RecordEquivocation(evidence))
        except ValueError as exc:  # refused by our mempool: already recorded, or reported by us before
            log.info("event=evidence-not-submitted reason=%r", str(exc))
            return
        log.warning("event=evidence-submitted validator=%s height=%d round=%d step=%d tx=%s",
                    offender(evidence).hex()[:16], vote.height, vote.round, vote.step, tx.tx_id.hex()[:16])

    # --- after each block -----------------------------------------------------------------------------

    async def _on_commit(self, block: Block, certificate: Certificate, committed: CommittedBlock) -> None:
        self.admission.on_commit(len(block.txs), trio.current_time())
        self.metrics.block_committed(block.time, certificate.round, wall_ms())
        for data in block.txs:
            self._pending_txs.pop(self.app.decode(data).tx_id, None)
        self._forget_dropped()
        view = LedgerMarketView(self.ledger_view(), self.app.ledger.rules.categories)
        before = {o.payload_digest for o in self.order_book.orders()}
        self.order_book.prune(view)
        spent = before - {o.payload_digest for o in self.order_book.orders()}
        if spent:
            self.store.delete_orders(spent)
            for order_hash in spent:
                self._own_orders.pop(order_hash, None)
        if self._block_events is not None:
            try:
                self._block_events.send_nowait((block.height, committed))
            except trio.WouldBlock:
                log.warning("event=roles-lagging height=%d", block.height)

    def _forget_dropped(self) -> None:
        """Our pending transactions that a block made invalid (evicted by a mempool re-check) will never
        commit: say so to whoever asks. The re-check runs after the commit, in slices, so this is also done
        before answering about a transaction and before a submit picks the next nonce."""
        for tx_id, pending in list(self._pending_txs.items()):
            if pending.data not in self.mempool:
                self._pending_txs.pop(tx_id)
                self._rejected_txs[tx_id] = "dropped from the mempool: no longer valid"

    async def _run_roles(self, receive: trio.MemoryReceiveChannel[tuple[int, CommittedBlock]]) -> None:
        """Roles see blocks in order and a tick every ROLE_TICK_S, one call at a time."""
        for role in self.roles:
            await role.start(self)
        while True:
            event = None
            with trio.move_on_after(ROLE_TICK_S):  # only the wait: a role's work is never cut short
                event = await receive.receive()
            if event is not None:
                height, committed = event
                for role in self.roles:
                    await self._guarded(role.name, role.on_block(self, height, committed))
            for role in self.roles:
                await self._guarded(role.name, role.tick(self, trio.current_time()))

    async def _guarded(self, role: str, call: Awaitable[None]) -> None:
        try:
            await call
        except Exception:  # a role's bug must not stop the node or the other roles
            log.exception("event=role-failed role=%s", role)

    async def _reannounce(self) -> None:
        """Gossip is lossy: re-send our live orders and our pending transactions until the ledger has them."""
        while True:
            await trio.sleep(REANNOUNCE_S)
            for order in list(self._own_orders.values()):
                await self.host.publish_item(self.topics.orders, encode(order))
            now = trio.current_time()
            due = [pending for pending in self._pending_txs.values() if pending.announce_at <= now]
            for pending in due[:REANNOUNCE_MAX_TXS]:
                pending.backoff(now)
                await self.host.publish_item(self.topics.txs, pending.data)

    # --- control API ----------------------------------------------------------------------------------

    async def handle_control(self, request: object) -> object:
        if isinstance(request, StatusRequest):
            tip = self.driver.machine.tip
            return NodeStatus(
                peer_id=self.host.peer_id,
                address=self.keypair.address,
                roles=tuple(self.config.roles),
                listen_addrs=tuple(self.host.addrs),
                height=tip.height,
                tip_hash=tip.block_id,
                tip_time=tip.time,
                peers=len(self.host.connected_peers()),
                mempool=len(self.mempool),
                orders=len(self.order_book),
                validator=self.is_validator,
                notes=tuple(note[:1024] for role in self.roles for note in role.notes(self)),
                equivocations=sum(1 for _ in self.app.ledger.state.items_with_prefix(EQUIVOCATION)),
                http=self.http_url,
            )
        if isinstance(request, AccountRequest):
            address = request.address or self.keypair.address
            if len(address) != 20:
                raise ControlRejected("an address is 20 bytes")
            account = self.ledger_view().account(address)
            return AccountInfo(address, account.balance, account.frozen, account.nonce, account.score)
        if isinstance(request, SubmitRequest):
            try:
                tx = await self.submit(request.body)
            except ValueError as exc:
                raise ControlRejected(f"transaction refused: {exc}") from None
            return TxSubmitted(tx.tx_id, tx.nonce)
        if isinstance(request, TxResultRequest):
            result = self.store.tx_result(request.tx_id)
            if result is not None:
                return TxResultInfo(result.height, result.code, result.created)
            self._forget_dropped()
            if request.tx_id in self._pending_txs:
                return TxResultInfo(0, "pending", b"")
            return TxResultInfo(0, self._rejected_txs.get(request.tx_id, "unknown transaction"), b"")
        if isinstance(request, OrderbookRequest):
            return queries.filter_orders(self.order_book, self.ledger_view(), request)
        if isinstance(request, OrderRequest):
            return queries.orders_with_remaining([find_order(self, request.order_id)], self.ledger_view())
        if isinstance(request, DealListRequest):
            return queries.list_deals(self.app.ledger.state, request.account or self.keypair.address)
        if isinstance(request, TaskListRequest):
            return queries.list_tasks(self.app.ledger.state, request.account or self.keypair.address, request.role)
        if isinstance(request, AssetListRequest):
            owner = queries.owner_or_everyone(request.owner, request.everyone, self.keypair.address)
            return queries.list_assets(self.app.ledger.state, request.kind, owner, request.address)
        if isinstance(request, BlocksRequest):
            return queries.block_summaries(
                self.store, self.app.decode, self.height, request.top, request.count, request.with_txs
            )
        if isinstance(request, TxLookupRequest):
            return queries.tx_detail(self.store, self.app.decode, request.tx_id)
        if isinstance(request, ValidatorsRequest):
            evidence = (
                f"validator 0x{e.first.signature.public_key.hex()} signed two different votes at height "
                f"{e.first.height} round {e.first.round} step {e.first.step}" for e in self.driver.evidence
            )
            return queries.validators(self.genesis, self.store, self.height, evidence)
        if isinstance(request, PublishOrderRequest):
            try:
                signed = await self.publish_order(request.order)
            except ValueError as exc:
                raise ControlRejected(f"order refused: {exc}") from None
            return OrderPublished(signed.payload_digest)
        if isinstance(request, DealRequest):
            return DealInfo(request.deal_id, self.ledger_view().deal(request.deal_id), self.height)
        if isinstance(request, TaskRequest):
            view = self.ledger_view()
            task = view.task(request.task_id)
            if task is None:
                return TaskInfo(request.task_id, None, self.height)
            contributions = tuple(
                c for w in task.contributors if (c := view.contribution(request.task_id, w)) is not None
            )
            return TaskInfo(request.task_id, task, self.height, view.deal(task.deal_id), contributions)
        if isinstance(request, DeployAppRequest):
            return await deploy_app(self, request)
        if isinstance(request, DeployDatasetRequest):
            return await deploy_dataset(self, request, self._role(ProviderRole).keys)
        if isinstance(request, RunRequest):
            return await start_run(self, request)
        if isinstance(request, FetchResultRequest):
            return await fetch_result(self, request.task_id)
        if isinstance(request, ReplicatesQuery):
            return await task_report(self, request)
        if isinstance(request, ExplainRequest):
            return explain_request(self, request)
        if isinstance(request, CertifyPlatformRequest):
            worker = self._role(WorkerRole)
            try:
                grant = await worker.certify(self, request.authority or None)
            except CertifyError as exc:
                raise ControlRejected(f"not certified: {exc}") from None
            return PlatformCertified(
                grant.certificate.platform_public_key, address_of(grant.certificate.signature.public_key), grant.policy
            )
        raise ControlRejected(f"unsupported request {type(request).__name__}")

    def _role(self, kind: type[RoleT]) -> RoleT:
        for role in self.roles:
            if isinstance(role, kind):
                return role
        raise ControlRejected(f"this node does not have the {kind.name} role (start it with --role {kind.name})")

    # --- running --------------------------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            if self.is_validator:
                # Followers take decided blocks with their certificates from the blocks topic (and sync),
                # and never see the votes: each vote then costs 3 gossip hops among 4 managers instead of
                # a relay through every node of the network.
                await self.host.subscribe(self.topics.consensus, self.validate_consensus, self.on_consensus)
                if self.links is not None:  # none for a Byzantine test node (see __init__)
                    await nursery.start(self.links.run)
                nursery.start_soon(self._link_validators)
            await self.host.subscribe(self.topics.blocks, self.validate_block, self.on_block)
            await self.host.subscribe(self.topics.txs, self.validate_tx, self.on_tx, batched=True)
            await self.host.subscribe(self.topics.orders, self.validate_order, self.on_order, batched=True)
            await self.host.subscribe(self.topics.peers, self.validate_peer_record, self.on_peer_record)
            self.host.set_request_handler(SYNC_PROTOCOL, self.serve_sync, StreamLimits(max_frame_bytes=MAX_FRAME_BYTES))
            self.host.set_request_handler(BLOB_PROTOCOL, self.blobs.serve, BLOB_LIMITS)
            self.host.set_request_handler(PEERS_PROTOCOL, self.directory.serve)
            self.host.set_request_handler(RESULT_PROTOCOL, self.blobs.serve, BLOB_LIMITS)
            for role in self.roles:
                for protocol, handler in role.request_handlers(self).items():
                    self.host.set_request_handler(protocol, handler)
            nursery.start_soon(self._announce_peer_record)
            await nursery.start(serve, socket_path(self.config.data_dir), self.handle_control)
            if self.config.http is not None:
                self.http_url = await nursery.start(serve_http, self, self.config.http)
            write_addresses(self.data_dir, self.host.addrs)  # last: whoever reads it can use the control socket
            # The consensus loop first: catching up feeds it the fetched blocks and waits until it has applied
            # them. Started after, it left every fetched batch unapplied until the catch-up's time ran out,
            # and a restarted node that had missed blocks sat out CATCH_UP_S before voting again.
            await nursery.start(self.driver.run)
            await self.driver.catch_up(CATCH_UP_S if self.config.join else 0)
            send, receive = trio.open_memory_channel[tuple[int, CommittedBlock]](1000)
            self._block_events = send
            nursery.start_soon(self._run_roles, receive)
            for role in self.roles:
                nursery.start_soon(role.run, self)
            nursery.start_soon(self._reannounce)
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


"""Runs the sans-IO Tendermint state machine with trio timers, gossip and the sync protocol.

Every input of the state machine (a gossiped proposal or vote, a timer, new mempool transactions, a decided
block from sync) goes through one channel and one task, so the machine is never entered twice at once.
Actions come back as values: messages this node signed are written to the store before they are sent (a
restarted validator must not sign a conflicting vote), decided blocks are stored with their certificate
and state writes in one SQLite transaction before anything else happens, then announced on the blocks
topic and handed to `on_commit` (the node's order book, roles and waiters).
"""

from __future__ import annotations

import heapq
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import trio

from node.consensus_inbox import WAKE, ConsensusInbox
from node.net.host import P2PHost
from node.net.streams import RequestError, StreamLimits
from node.storage import Store
from node.sync import (
    MAX_BLOCKS_PER_RESPONSE,
    MAX_FRAME_BYTES,
    SYNC_PROTOCOL,
    SYNC_TIMEOUT_S,
    SyncRequest,
    parse_response,
)
from node.trio_compat import TaskStatus
from protocols.chain import CommittedBlock, LedgerApplication
from protocols.consensus.actions import (
    Action,
    Broadcast,
    Commit,
    RecordEvidence,
    RequestSync,
    ScheduleTimeout,
    Timeout,
    Timer,
)
from protocols.consensus.blocks import check_timely
from protocols.consensus.mempool import Mempool
from protocols.consensus.messages import (
    Block,
    Certificate,
    DecidedBlock,
    DuplicateVoteEvidence,
    Proposal,
    Vote,
    block_id,
)
from protocols.consensus.tendermint import Blame, InvalidMessage, Tendermint
from protocols.encoding import DecodeError, encode

log = logging.getLogger(__name__)

# Gossiped proposals and votes waiting for the state machine. Beyond this they are dropped (and recovered by
# re-broadcast and sync, like any gossip loss) rather than letting a flood grow memory. A height needs about
# 3n messages and re-broadcasts add a few rounds' worth; 2,000 holds that many times over for n up to 100.
# Timers, decided blocks and mempool wake-ups do not count against it (node/consensus_inbox.py).
MAX_QUEUED_MESSAGES = 2_000
# How often a node that has heard of a higher height asks peers for blocks again.
SYNC_RETRY_S = 1.0
# A follower hears of a block only from its proposer's one announcement. If that gossip is lost while the
# chain goes quiet, no later block tells it that it is behind: after this long without a commit it asks a
# peer, then backs off (doubling) up to the maximum while nothing new comes.
FOLLOWER_POLL_S = 2.0
FOLLOWER_POLL_MAX_S = 30.0
# The mempool re-check after a block runs in slices of this many transactions, in turns of the bulk lane
# (node/net/bulk_lane.py), so votes and proposals that arrive meanwhile are handled after one turn at most
# instead of after the whole pool (protocols/consensus/mempool.py). A count, not a duration: the lane's turn
# bounds the time; a slice only has to be well inside it (0.13 ms a transfer on an unloaded core).
RECHECK_SLICE_TXS = 8

OnCommit = Callable[[Block, Certificate, CommittedBlock], Awaitable[None]]


def _recheck_slices(mempool: Mempool) -> Iterator[None]:
    """Re-check the whole pool, RECHECK_SLICE_TXS transactions per item (see BulkLane.drain)."""
    while mempool.unchecked:
        mempool.recheck(RECHECK_SLICE_TXS)
        yield None


def wall_ms() -> int:
    """Block times are wall-clock milliseconds (validators check them against their own clock)."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class _Message:
    peer: str
    message: Proposal | Vote
    queued_at: int = 0  # wall ms when it entered the inbox


@dataclass(frozen=True)
class _Decided:
    peer: str
    block: Block
    certificate: Certificate


class ConsensusDriver:
    # Set by the node: what to do with the proof of a validator's equivocation (submit it to the ledger).
    on_evidence: Callable[[DuplicateVoteEvidence], Awaitable[None]] | None = None

    def __init__(
        self,
        machine: Tendermint,
        app: LedgerApplication,
        store: Store,
        host: P2PHost,
        consensus_topic: str,
        blocks_topic: str,
        on_commit: OnCommit,
        push: Callable[[bytes], int] | None = None,
    ) -> None:
        """`push` sends an encoded consensus message straight to the other validators (node/consensus_link.py),
        besides gossip, and says to how many."""
        self.machine = machine
        self.push = push
        self.app = app
        self.store = store
        self.host = host
        self.consensus_topic = consensus_topic
        self.blocks_topic = blocks_topic
        self.on_commit = on_commit
        self.inbox = ConsensusInbox(MAX_QUEUED_MESSAGES)
        self._timers: list[tuple[int, int, Timer]] = []
        self._timer_seq = 0
        self._timers_changed = trio.Event()
        self._want_height = 0  # highest height heard of (from a peer's decided block)
        self._next_but_one: _Decided | None = None  # a gossiped block that came before its parent (see on_block_gossip)
        self._sync_wanted = trio.Event()
        self._peers_tip = 0  # the highest tip the peers asked in the last sync round reported
        self.committed = trio.Condition()
        self._last_commit_at = 0.0  # trio clock
        self.evidence: deque[DuplicateVoteEvidence] = deque(maxlen=100)  # read by the explorer (node/queries)
        self._recheck_wanted = trio.Event()
        self._last_proposal_sent = (0, 0)  # (height, round) of our last proposal, for its one log line
        self._untimely_logged = (0, 0)  # (height, round) of the last proposal logged as untimely
        self._persisted: set[bytes] = set()  # encodings of the signed messages stored since the last commit

    @property
    def height(self) -> int:
        """The last decided height."""
        return self.machine.tip.height

    @property
    def own_key(self) -> bytes | None:
        return self.machine._keypair.public_key if self.machine._keypair else None

    # --- inputs from the network and the node --------------------------------------------------------

    @property
    def dropped_inputs(self) -> int:
        return self.inbox.dropped_messages

    async def on_consensus_gossip(self, peer: str, message: Proposal | Vote) -> None:
        if not self.inbox.put_message(_Message(peer, message, wall_ms())) and self.inbox.dropped_messages % 100 == 1:
            log.warning("event=consensus-input-dropped total=%d", self.inbox.dropped_messages)

    async def on_block_gossip(self, peer: str, decided: DecidedBlock) -> None:
        """A block after ours: the next one is decided at once; one two ahead is kept until its parent is
        committed, and only a block further ahead asks for sync. Gossip often delivers a block just before
        its parent (they take different paths through the mesh, and at --cpu-limit 0.5 a block interval is
        about a propagation delay): fetching both by sync then cost both sides a response of whole blocks,
        about once every two blocks per follower in the 3,000-transfer burst of bench/liveness.py. A
        parent truly lost is fetched one block later, when the next block arrives, whatever the chain's
        pace; a chain that stops after it is covered by the follower's poll for blocks."""
        height = decided.block.height
        if height == self.height + 1:
            self.inbox.put_reliable(_Decided(peer, decided.block, decided.certificate))
        elif height == self.height + 2:
            self._next_but_one = _Decided(peer, decided.block, decided.certificate)
        elif height > self.height + 2:
            self._note_height(height)

    def _release_next_but_one(self) -> None:
        """After a commit: the block kept by `on_block_gossip` is next now (decide it), or stale (drop it)."""
        kept = self._next_but_one
        if kept is not None and kept.block.height <= self.height + 1:
            self._next_but_one = None
            if kept.block.height == self.height + 1:
                self.inbox.put_reliable(kept)

    def wake(self) -> None:
        """The mempool changed: let a waiting height start (one pending wake-up however many calls)."""
        self.inbox.wake()

    def _note_height(self, height: int) -> None:
        if height > self._want_height:
            self._want_height = height
            self._sync_wanted.set()

    # --- the loop -------------------------------------------------------------------------------------

    async def run(self, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._timer_loop)
            nursery.start_soon(self._sync_loop)
            nursery.start_soon(self._recheck_loop)
            if self.own_key is None:
                nursery.start_soon(self._follower_poll_loop)
            await self._perform(self.machine.start(wall_ms()))
            task_status.started()
            while True:
                await self._handle(await self.inbox.get())

    async def _handle(self, item: object) -> None:
        now = wall_ms()
        round_before = self.machine.round
        try:
            if isinstance(item, _Message):
                if isinstance(item.message, Proposal) and item.message.height == self.height + 1:
                    self._note_proposal_lag(item.message, now, item.queued_at)
                actions = self.machine.on_message(item.message, now)
            elif isinstance(item, Timer):
                actions = self.machine.on_timeout(item, now)
            elif isinstance(item, _Decided):
                actions = self.machine.on_decided_block(item.block, item.certificate, now)
            else:
                assert item is WAKE
                actions = self.machine.on_txs_available(now)
        except InvalidMessage as exc:
            peer = getattr(item, "peer", "")
            log.info("event=consensus-input-rejected peer=%s reason=%r", peer, exc.reason)
            if peer and exc.blame is Blame.SENDER:
                self.host.penalise(peer, f"invalid consensus input: {exc.reason}")
            return
        if self.machine.round > round_before:
            # A round change means the last one failed (a slow or faulty proposer, lost votes): worth a line.
            cause = f"timeout-{item.kind.value}" if isinstance(item, Timeout) else type(item).__name__.lstrip("_")
            log.info("event=round-started height=%d round=%d after=%s", self.height + 1, self.machine.round, cause)
        await self._perform(actions)

    def _note_proposal_lag(self, proposal: Proposal, now: int, queued_at: int) -> None:
        """A fresh proposal reaching the state machine later than the clock-drift bound is prevoted nil
        (blocks.check_timely): say so, with the lag, since it fails the round for a reason no timeout shows."""
        lag = now - proposal.block.time
        slack = self.machine.timeliness_slack()
        key = (proposal.height, proposal.round)
        if key == self._untimely_logged:
            return  # one line per round: later copies (gossip, re-broadcasts) are only later still
        if proposal.valid_round == -1 and check_timely(proposal.block, now, self.machine.params, proposal.round, slack):
            self._untimely_logged = key
            log.info(
                "event=proposal-untimely height=%d round=%d lag_ms=%d in_inbox_ms=%d txs=%d",
                proposal.height, proposal.round, lag, now - queued_at, len(proposal.block.txs),
            )

    async def _perform(self, actions: list[Action]) -> None:
        await self._persist_signed(actions)
        for action in actions:
            if isinstance(action, Broadcast):
                await self._broadcast(action.message)
            elif isinstance(action, ScheduleTimeout):
                self._schedule(action.timeout, action.at)
            elif isinstance(action, Commit):
                await self._commit(action.block, action.certificate, action.result)
            elif isinstance(action, RequestSync):
                self._note_height(max(action.from_height, self.height + 1))
            elif isinstance(action, RecordEvidence):
                evidence = action.evidence
                self.evidence.append(evidence)
                log.warning(
                    "event=equivocation validator=%s height=%d round=%d step=%d",
                    evidence.first.signature.public_key.hex()[:16], evidence.first.height,
                    evidence.first.round, evidence.first.step,
                )
                if self.on_evidence is not None:
                    await self.on_evidence(evidence)

    async def _persist_signed(self, actions: list[Action]) -> None:
        """Store the messages we signed that these actions send, before any of them leaves (see the module
        doc): all of one step in one transaction, in a worker thread, so that the fsync does not stop the
        node's other tasks (gossip, validation) while it runs. This task waits for it: nothing is sent
        before it is durable. A message re-sent (re-broadcast) is stored once: the first copy is enough for
        a restart, and each copy cost an fsync."""
        fresh: list[Proposal | Vote] = []
        for action in actions:
            if isinstance(action, Broadcast) and action.message.signature.public_key == self.own_key:
                data = encode(action.message)
                if data not in self._persisted:
                    self._persisted.add(data)
                    fresh.append(action.message)
        if fresh:
            await trio.to_thread.run_sync(self.store.save_signed, fresh)

    async def _broadcast(self, message: Proposal | Vote) -> None:
        """Push the message over the validator links, and publish it on the consensus topic unless every
        other validator's link has an open stream. Each gossip copy reaches every validator from each of its
        direct peers (the other validators), on top of the link's copy: a 30 KiB proposal was read four
        times by each validator, and re-broadcast every second or so while a height made no progress, by
        validators already behind in reading (at --cpu-limit 0.5). Gossip remains the path to a validator
        whose link is down or being re-opened (see ConsensusLinks.send)."""
        data = encode(message)
        linked = self.push(data) if self.push is not None else 0
        first_send = (message.height, message.round) != self._last_proposal_sent
        if isinstance(message, Proposal) and message.signature.public_key == self.own_key and first_send:
            self._last_proposal_sent = (message.height, message.round)
            built_ms = wall_ms() - message.block.time
            if message.valid_round == -1 and built_ms > self.machine.params.max_clock_drift_ms // 4:
                log.info("event=proposal-slow-to-build height=%d round=%d ms=%d txs=%d",
                         message.height, message.round, built_ms, len(message.block.txs))
        if linked >= len(self.machine.validators.keys) - 1:
            return
        try:
            await self.host.publish(self.consensus_topic, data, urgent=True)
        except ValueError as exc:  # over the gossip size limit: peers get the block by sync instead
            log.error("event=consensus-publish-failed reason=%r", str(exc))

    async def _commit(self, block: Block, certificate: Certificate, committed: CommittedBlock) -> None:
        tx_ids = [self.app.decode(tx).tx_id for tx in block.txs]
        self.store.commit_block(block, certificate, committed, tx_ids)  # (it deletes the signed messages up to here)
        self._persisted.clear()
        self._last_commit_at = trio.current_time()
        log.info(
            "event=block-committed height=%d txs=%d round=%d id=%s",
            block.height, len(block.txs), certificate.round, block_id(block).hex()[:16],
        )
        # One announcement per block is enough (followers also decide from the votes they hear, and sync
        # covers the rest): only the block's proposer sends it, which saves n-1 large gossip messages.
        validators = self.machine.validators
        if self.own_key is not None and validators.proposer(block.height, certificate.round) == self.own_key:
            try:
                await self.host.publish(self.blocks_topic, encode(DecidedBlock(block, certificate)))
            except ValueError:
                pass  # too large for gossip: followers fetch it by sync
        self._recheck_wanted.set()
        self._release_next_but_one()
        await self.on_commit(block, certificate, committed)
        async with self.committed:
            self.committed.notify_all()

    async def _recheck_loop(self) -> None:
        """Re-check the mempool against each new block in slices, between consensus inputs (see
        RECHECK_SLICE_TXS). A block committed meanwhile restarts the re-check from the oldest transaction."""
        mempool = self.machine.mempool
        if mempool is None:
            return
        while True:
            await self._recheck_wanted.wait()
            self._recheck_wanted = trio.Event()
            await self.host.bulk_lane.drain(_recheck_slices(mempool))

    # --- timers ---------------------------------------------------------------------------------------

    def _schedule(self, timeout: Timer, at: int) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (at, self._timer_seq, timeout))
        self._timers_changed.set()

    async def _timer_loop(self) -> None:
        while True:
            if not self._timers:
                await self._timers_changed.wait()
                self._timers_changed = trio.Event()
                continue
            at = self._timers[0][0]
            delay = (at - wall_ms()) / 1000
            if delay > 0:
                with trio.move_on_after(delay):
                    await self._timers_changed.wait()
                self._timers_changed = trio.Event()
                continue
            _, _, timeout = heapq.heappop(self._timers)
            self.inbox.put_reliable(timeout)

    # --- catching up ----------------------------------------------------------------------------------

    async def _sync_loop(self) -> None:
        """Fetch decided blocks from peers while we know of a height above ours."""
        while True:
            await self._sync_wanted.wait()
            self._sync_wanted = trio.Event()
            while self._want_height > self.height:
                if not await self.sync_once():
                    await trio.sleep(SYNC_RETRY_S)
                    if self._peers_tip <= self.height:
                        break  # nobody has more yet: consensus is simply at work on the next height

    async def _follower_poll_loop(self) -> None:
        quiet_s = FOLLOWER_POLL_S
        while True:
            await trio.sleep(quiet_s)
            if trio.current_time() - self._last_commit_at < quiet_s:
                quiet_s = FOLLOWER_POLL_S
                continue
            quiet_s = FOLLOWER_POLL_S if await self.sync_once() else min(2 * quiet_s, FOLLOWER_POLL_MAX_S)

    async def sync_once(self) -> bool:
        """Ask one random peer for the blocks after ours; feed them to consensus. True if any arrived."""
        self._peers_tip = 0
        peers = self.host.connected_peers()
        random.shuffle(peers)
        limits = StreamLimits(max_frame_bytes=MAX_FRAME_BYTES)
        for peer in peers[:3]:
            request = encode(SyncRequest(self.height + 1, MAX_BLOCKS_PER_RESPONSE))
            try:
                response = parse_response(await self.host.request(peer, SYNC_PROTOCOL, request, SYNC_TIMEOUT_S, limits))
            except (RequestError, DecodeError) as exc:
                log.info("event=sync-failed peer=%s reason=%r", peer, str(exc))
                continue
            self._peers_tip = max(self._peers_tip, response.tip_height)
            if not response.blocks:
                continue
            start = self.height
            for decided in response.blocks:
                self.inbox.put_reliable(_Decided(peer, decided.block, decided.certificate))
            # Wait until consensus has taken them (or rejected them) before asking again. The target is the
            # last block's height, not `start` plus their number: gossip may have committed some of them
            # while the response travelled, and that count was never reached (catch-up then sat out the
            # whole timeout, and a joining node was ready 10 s late).
            target = response.blocks[-1].block.height
            with trio.move_on_after(SYNC_TIMEOUT_S):
                async with self.committed:
                    while self.height < target:
                        await self.committed.wait()
            log.info("event=synced peer=%s from=%d to=%d", peer, start + 1, self.height)
            return self.height > start
        return False

    async def catch_up(self, timeout_s: float) -> None:
        """At start: fetch what peers have decided since we stopped, for at most `timeout_s`."""
        with trio.move_on_after(timeout_s):
            while not self.host.connected_peers():  # bootstrap dials may still be in flight
                await trio.sleep(0.05)
            while True:
                before = self.height
                if not await self.sync_once() or self.height == before:
                    return

"""The Tendermint consensus state machine: Algorithm 1 of "The latest gossip on BFT consensus".

Sans-IO, h11 style: the shell feeds `start`, `on_message`, `on_timeout`, `on_txs_available` and
`on_decided_block` with the current time (ms) and performs the returned actions (`actions.py`). Each
`upon` rule of the paper is one method named after its line numbers (see reference/tendermint.md); after
every input `_evaluate` runs the rules until none fires, which is how "upon" reads as code.

Untrusted input is checked before anything changes: a message from a non-validator, from the wrong
proposer, with a bad signature or a malformed block raises `InvalidMessage` and leaves the state as it
was; its `blame` tells the shell whether to lower the sender's peer score. Stale messages are ignored
without error.

Additions to the paper, each for a stated reason; the larger ones have modules of their own:
- Re-broadcast (rebroadcast.py) of what progress depends on when we made no progress for an interval,
  and `RequestSync` when f+1 validators are at a higher height: py-libp2p gossip loses messages, so the
  paper's gossip property needs help. `on_decided_block` accepts a block with a valid certificate from the
  sync protocol.
- Idle heights (idle.py): round 0 waits until a block is worth making. A proposer with nothing valid to
  propose waits for transactions and also schedules timeout-propose, so it still prevotes nil if nothing comes.
- The round-skip rule (line 55) counts validators whose highest round is >= r' rather than messages of
  exactly r': memory per validator is then one number for far-future rounds, and f+1 such validators
  still include a correct one at or beyond r'.
- The clock is only consulted when prevoting a fresh proposal (line 22), see `blocks.py`.
- Timeouts adapt to the network as measured (the paper only asks that they grow until they are long
  enough): how long a valid proposal took to arrive after our round started is sampled at every height,
  and the propose timeout and the re-broadcast interval are at least PROPOSE_TIMEOUT_MARGIN times the
  median of the recent samples. (The same floor on timeout-prevote and timeout-precommit made the rounds
  that still failed longer, and the longest gap in the simulator's slow-network scenario doubled.) On a machine where messages take a second (a loaded 2-core devnet),
  fixed 1 s propose timeouts made round 0 fail over and over; a faster network keeps the configured
  values. The median of several heights' samples cannot be pushed up by f Byzantine proposers that
  send their proposals just before the timeout: they are the minority of the samples.
- Restart safety (restore.py): the write-ahead log of the current height, handed back as `restore=`.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from protocols.chain_params import ChainParams
from protocols.consensus.actions import (
    Action,
    Broadcast,
    Commit,
    RebroadcastTimer,
    RecordEvidence,
    RequestSync,
    ScheduleTimeout,
    Timeout,
    TimeoutKind,
    Timer,
    WaitTimer,
)
from protocols.consensus.application import Application
from protocols.consensus.blocks import (
    ChainTip,
    check_block,
    check_empty_block_allowed,
    check_timely,
    first_empty_block_time,
    make_certificate,
    verify_certificate,
)
from protocols.consensus.config import ConsensusConfig
from protocols.consensus.idle import block_due
from protocols.consensus.mempool import Mempool
from protocols.consensus.messages import (
    NIL,
    Block,
    Certificate,
    DuplicateVoteEvidence,
    Proposal,
    Step,
    Vote,
    block_id,
)
from protocols.consensus.rebroadcast import Rebroadcaster, certificate_votes, resend
from protocols.consensus.restore import restored_lock
from protocols.consensus.validators import ValidatorSet
from protocols.consensus.votes import HeightMessages
from protocols.crypto import Keypair, SignatureVerifier, sign

log = logging.getLogger(__name__)

# Next-height messages kept per validator while we finish the current height: its proposal and votes
# of a couple of rounds. They arrive early all the time (the fastest validator moves on first).
MAX_BUFFERED_PER_VALIDATOR = 8


# How many heights' proposal delays the adaptive timeouts look at: enough that the f heights in n proposed by
# Byzantine validators stay a minority of the samples, few enough to follow a network that slows down or
# recovers within a few blocks.
PROPOSAL_DELAY_SAMPLES = 9
# A timeout is this many times the median proposal delay: room for the spread of delays around the median
# (half the samples are above it) without waiting much longer than a proposal usually takes.
PROPOSE_TIMEOUT_MARGIN = 2


class Blame(enum.Enum):
    """Whom an invalid input is the fault of."""

    # The peer that handed it to us: no correct peer sends it (its score goes down).
    SENDER = "sender"
    # Nobody: a race of our own, e.g. a sync block ahead of our height because gossip decided the height
    # in between (dropped quietly).
    NOBODY = "nobody"


class InvalidMessage(Exception):
    """An input the state machine refuses. Nothing was changed; `blame` says whose doing it was."""

    def __init__(self, reason: str, blame: Blame = Blame.SENDER) -> None:
        super().__init__(reason)
        self.reason = reason
        self.blame = blame


@dataclass
class _HeightLog:
    """What is kept for the current height only, beside the paper's variables: a new height starts with a
    fresh one (line 53's "empty message log", and our bookkeeping of the rules that fired)."""

    msgs: HeightMessages
    # (rule line, round) of the "for the first time" rules that fired.
    fired: set[tuple[int, int]] = field(default_factory=set)
    # valid(v) by block id: the committed state does not change within a height.
    valid_cache: dict[bytes, str | None] = field(default_factory=dict)
    invalid_decisions: set[bytes] = field(default_factory=set)
    # Our own messages of this height by (round, step).
    own: dict[tuple[int, int], Proposal | Vote] = field(default_factory=dict)
    # Rounds whose proposal's arrival was sampled for the adaptive timeouts (one sample per round).
    arrivals_sampled: set[int] = field(default_factory=set)
    evidence_seen: set[tuple[int, int, int]] = field(default_factory=set)
    # Next-height messages by validator index.
    buffer: dict[int, list[Proposal | Vote]] = field(default_factory=dict)
    sync_requested: bool = False
    # We are the proposer and had nothing to propose yet.
    awaiting_value: bool = False


class Tendermint:
    """One validator's (or, without a key, one follower's) consensus state for one chain."""

    def __init__(
        self,
        *,
        chain_id: str,
        validators: ValidatorSet,
        app: Application,
        config: ConsensusConfig,
        params: ChainParams,
        tip: ChainTip,
        keypair: Keypair | None = None,
        mempool: Mempool | None = None,
        verifier: SignatureVerifier | None = None,
        restore: Iterable[Proposal | Vote] = (),
    ) -> None:
        self.chain_id = chain_id
        self.validators = validators
        self.app = app
        self.config = config
        self.params = params
        self.mempool = mempool
        self._verifier = verifier if verifier is not None else SignatureVerifier(chain_id)
        if self._verifier.chain_id != chain_id:
            raise ValueError(f"verifier is for chain {self._verifier.chain_id!r}, not {chain_id!r}")
        self._keypair = keypair
        self.me = validators.index_of(keypair.public_key) if keypair is not None else None
        # Messages we signed at this height, by (height, round, step): we never sign a different one.
        self._signed_before: dict[tuple[int, int, int], Proposal | Vote] = {}
        self._out: list[Action] = []
        self._now = 0
        # ms from the start of our round to the arrival of its valid proposal, at the last heights.
        self._proposal_delays: deque[int] = deque(maxlen=PROPOSAL_DELAY_SAMPLES)
        # ms from a block's time to our accepting its proposal (building, carrying, reading it), at the last
        # heights: the timeliness bound leaves PROPOSE_TIMEOUT_MARGIN times their median on top of the clock
        # drift, so a machine that is slow at this is not failing round 0 at every height (blocks.check_timely).
        self._proposal_lags: deque[int] = deque(maxlen=PROPOSAL_DELAY_SAMPLES)
        self._round_started_at = 0
        self._rebroadcaster = Rebroadcaster()
        # The highest height each validator ahead of us showed (for RequestSync at f+1 of them).
        self._higher: dict[int, int] = {}
        # Initialization (lines 1-9); h_p is the height after `tip`, and `started` is False while the
        # height is idle (idle.py).
        self.tip = tip
        self.height = tip.height + 1  # line 2
        self.round = 0  # line 3
        self.step = Step.PROPOSE  # line 4
        self.started = False
        self.locked_value: Block | None = None  # line 6
        self.locked_round = -1  # line 7
        self.valid_value: Block | None = None  # line 8
        self.valid_round = -1  # line 9
        self._log = _HeightLog(HeightMessages(validators.quorum))
        self._restore(restore)

    def timeliness_slack(self) -> int:
        """ms the timeliness bound of a fresh proposal allows beyond the clock drift (blocks.check_timely):
        PROPOSE_TIMEOUT_MARGIN times the median lag of the proposals accepted at the last heights."""
        if not self._proposal_lags:
            return 0
        return PROPOSE_TIMEOUT_MARGIN * sorted(self._proposal_lags)[len(self._proposal_lags) // 2]

    # --- public inputs ---------------------------------------------------------------------------

    def start(self, now: int) -> list[Action]:
        """Begin (or, after a restart, resume) at the height after `tip`."""
        self._now = now
        self._out.append(ScheduleTimeout(RebroadcastTimer(), now + self.config.rebroadcast_interval))
        self._enter_height()
        return self._finish()

    def on_message(self, msg: Proposal | Vote, now: int) -> list[Action]:
        """A proposal or vote from the network. Raises InvalidMessage (and changes nothing) if invalid."""
        self._now = now
        index = self._check_sender(msg)
        if msg.height < self.height - 1:
            return []  # stale: that height is decided and the sender is far behind (sync is its way back)
        if not self._verifier.verify(msg):
            raise InvalidMessage("bad signature")
        if msg.height < self.height:
            self._rebroadcaster.note_laggard()
            return []
        if msg.height > self.height:
            self._note_higher_height(index, msg)
            return self._finish()
        self._store(index, msg)
        self._evaluate()
        return self._finish()

    def on_timeout(self, timer: Timer, now: int) -> list[Action]:
        """A timer we asked for is due (stale ones are ignored)."""
        self._now = now
        if isinstance(timer, RebroadcastTimer):
            resend_now, next_at = self._rebroadcaster.on_timer(now, self._rebroadcast_interval())
            if resend_now:
                self._rebroadcast()
            self._out.append(ScheduleTimeout(RebroadcastTimer(), next_at))
            return self._finish()
        if timer.height != self.height:
            return []
        if isinstance(timer, WaitTimer):
            self._wake_up()
        elif timer.kind is TimeoutKind.PROPOSE:
            self._line_57_on_timeout_propose(timer.round)
        elif timer.kind is TimeoutKind.PREVOTE:
            self._line_61_on_timeout_prevote(timer.round)
        else:
            self._line_65_on_timeout_precommit(timer.round)
        self._evaluate()
        return self._finish()

    def on_txs_available(self, now: int) -> list[Action]:
        """The mempool got transactions: a waiting height can start, a waiting proposer can propose."""
        self._now = now
        self._wake_up()
        self._evaluate()
        return self._finish()

    def on_decided_block(self, block: Block, certificate: Certificate, now: int) -> list[Action]:
        """Catch-up: a decided block from the sync protocol, trusted only through its certificate.

        Blocks must come in height order; one for a height already decided is ignored.
        """
        self._now = now
        if block.height < self.height:
            return []
        if block.height > self.height:
            raise InvalidMessage(f"sync block for height {block.height}, expected {self.height}", Blame.NOBODY)
        bid = block_id(block)
        reason = verify_certificate(certificate, block.height, bid, self.validators, self._verifier)
        if reason is not None:
            raise InvalidMessage(f"sync block: {reason}")
        reason = self._validity(block)
        if reason is not None:
            # A valid certificate for an invalid block means more than f faulty validators, or a bug.
            log.error("certified block invalid height=%d reason=%s", block.height, reason)
            raise InvalidMessage(f"sync block invalid: {reason}")
        self._decide(block, certificate)
        self._evaluate()
        return self._finish()

    # --- observable state ------------------------------------------------------------------------

    def snapshot(self) -> tuple[object, ...]:
        """The consensus state as a comparable value (tests check that rejected input changes nothing)."""
        return (
            self.height,
            self.round,
            self.step,
            self.started,
            self.locked_round,
            block_id(self.locked_value) if self.locked_value else None,
            self.valid_round,
            block_id(self.valid_value) if self.valid_value else None,
            self.tip,
            self._log.msgs.size(),
            tuple(sorted(self._log.msgs.max_round.items())),
            tuple(sorted(self._higher.items())),
            sum(len(v) for v in self._log.buffer.values()),
            len(self._log.own),
        )

    @property
    def stored_messages(self) -> int:
        return self._log.msgs.size() + sum(len(v) for v in self._log.buffer.values())

    def _restore(self, messages: Iterable[Proposal | Vote]) -> None:
        """Reload the write-ahead log of the current height after a restart (restore.py)."""
        for msg in messages:
            try:
                index = self._check_sender(msg)
            except InvalidMessage:
                continue
            if msg.height != self.height or not self._verifier.verify(msg):
                continue
            if index == self.me:
                step = Step.PROPOSE if isinstance(msg, Proposal) else msg.step
                self._signed_before[(msg.height, msg.round, int(step))] = msg
                self._log.own[(msg.round, int(step))] = msg
            self._store(index, msg)
        self._out.clear()  # evidence about old messages was already recorded before the restart
        lock = restored_lock(self._log.own, self._log.msgs)
        if lock is not None:
            self.locked_value, self.locked_round = lock
            self.valid_value, self.valid_round = lock

    # --- input checks ----------------------------------------------------------------------------

    def _check_sender(self, msg: object) -> int:
        if not isinstance(msg, (Proposal, Vote)):
            raise InvalidMessage(f"not a consensus message: {type(msg).__name__}")
        index = self.validators.index_of(msg.signature.public_key)
        if index is None:
            raise InvalidMessage("signer is not a validator")
        if isinstance(msg, Proposal) and index != self.validators.proposer_index(msg.height, msg.round):
            raise InvalidMessage(f"proposal for ({msg.height}, {msg.round}) not from its proposer")
        return index

    def _note_higher_height(self, index: int, msg: Proposal | Vote) -> None:
        """A validator is ahead of us: keep its next-height messages, and sync if f+1 are ahead."""
        if msg.height > self._higher.get(index, 0):
            self._higher[index] = msg.height
        if msg.height == self.height + 1:
            queue = self._log.buffer.setdefault(index, [])
            if len(queue) < MAX_BUFFERED_PER_VALIDATOR and msg not in queue:
                queue.append(msg)
        if not self._log.sync_requested and self._behind():
            self._log.sync_requested = True
            self._out.append(RequestSync(self.height))

    def _behind(self) -> bool:
        return len(self._higher) >= self.validators.f_plus_one

    def _store(self, index: int, msg: Proposal | Vote) -> None:
        """Record a checked message of the current height (bounded, see votes.py)."""
        self._log.msgs.note_sender(index, msg.round)
        if not self._log.msgs.storable(msg.round):
            return
        if isinstance(msg, Proposal):
            added = self._log.msgs.add_proposal(msg)
            if added and msg.round == self.round and self.step != Step.PROPOSE and msg.valid_round == -1:
                self._note_proposal_arrival(msg)  # too late for this round: the next timeouts must know
            return
        existing = self._log.msgs.add_vote(index, msg)
        if existing is not None:
            key = (index, msg.round, msg.step)
            if key not in self._log.evidence_seen:
                self._log.evidence_seen.add(key)
                log.info("equivocation validator=%d height=%d round=%d step=%d", index, msg.height, msg.round, msg.step)
                self._out.append(RecordEvidence(DuplicateVoteEvidence(existing, msg)))

    def _validity(self, block: Block) -> str | None:
        """valid(v), cached per block id for this height (the committed state does not change within it)."""
        bid = block_id(block)
        if bid not in self._log.valid_cache:
            self._log.valid_cache[bid] = check_block(
                block, self.tip, self.app, self.validators, self._verifier, self.params
            )
        return self._log.valid_cache[bid]

    def _valid(self, block: Block) -> bool:
        return self._validity(block) is None

    # --- the rules of Algorithm 1 ----------------------------------------------------------------

    def _evaluate(self) -> None:
        """Fire `upon` rules until none applies. Every rule that returns True changed the state."""
        while True:
            if self._line_49_decide():
                continue
            if not self.started:
                if len(self._log.msgs.senders) >= self.validators.f_plus_one or self._has_valid_proposal():
                    # f+1 validators, or a proposer with a valid block, work on this height: it is worth
                    # a block after all. (An invalid proposal, e.g. an empty block nothing waits for,
                    # does not count: a Byzantine proposer cannot make us run empty rounds.)
                    self._line_11_start_round(0)
                    continue
                return
            if self._line_55_round_skip():
                continue
            if self._line_22_fresh_proposal():
                continue
            if self._line_28_reproposal():
                continue
            if self._line_34_any_prevotes():
                continue
            if self._line_36_polka_for_value():
                continue
            if self._line_44_polka_for_nil():
                continue
            if self._line_47_any_precommits():
                continue
            return

    def _has_valid_proposal(self) -> bool:
        return any(self._valid(p.block) for r in self._log.msgs.rounds for p in self._log.msgs.proposals(r))

    def _line_11_start_round(self, round: int) -> None:
        """StartRound(round), lines 11-21."""
        self.started = True
        self.round = round  # line 12
        self.step = Step.PROPOSE  # line 13
        self._log.msgs.current_round = round
        self._log.awaiting_value = False
        self._round_started_at = self._now
        if self.me is not None and self.validators.proposer_index(self.height, round) == self.me:  # line 14
            self._propose_if_possible()
            if self._log.awaiting_value:
                # Nothing to propose yet: if nothing comes, at least prevote nil with the others.
                self._schedule(TimeoutKind.PROPOSE, self._propose_timeout(round))
        else:
            self._schedule(TimeoutKind.PROPOSE, self._propose_timeout(round))  # line 21

    def _propose_if_possible(self) -> None:
        """Lines 15-19: propose valid_value if there is one, else getValue(); broadcast PROPOSAL."""
        signed = self._signed_before.get((self.height, self.round, int(Step.PROPOSE)))
        if signed is not None:
            self._log.awaiting_value = False
            self._broadcast(signed)
            return
        proposal: Block | None
        if self.valid_value is not None:  # line 15
            proposal = self.valid_value  # line 16
        else:
            proposal = self._line_18_get_value()
            if proposal is None:
                self._log.awaiting_value = True
                return
            self._log.valid_cache[block_id(proposal)] = None  # built from our own committed state
        self._log.awaiting_value = False
        unsigned = Proposal(self.height, self.round, self.valid_round, proposal)  # line 19
        assert self._keypair is not None  # only a validator is ever the proposer we are
        self._broadcast(sign(self._keypair, self.chain_id, unsigned))

    def _line_18_get_value(self) -> Block | None:
        """getValue(): a block of mempool transactions, or an empty one if a deadline is due, else None."""
        time = max(self._now, self.tip.time + 1)
        txs: tuple[bytes, ...] = ()
        if self.mempool is not None and len(self.mempool):
            txs = self.mempool.reap(self.params.max_block_txs, self.params.max_block_bytes)
            if self.app.validate_block_txs(txs, time) is not None:
                txs = self._greedy_valid_prefix(txs, time)
        if not txs:
            due = first_empty_block_time(self.tip, self.app, self.params)
            if due is None or due > self._now:
                return None
            if check_empty_block_allowed(time, self.tip, self.app, self.params) is not None:
                return None
        return Block(self.height, time, self.tip.block_id, self.app.state_digest(), txs, self.tip.certificate)

    def _greedy_valid_prefix(self, txs: tuple[bytes, ...], time: int) -> tuple[bytes, ...]:
        """Keep the transactions, in order, that still apply after the ones kept before them.

        Only used when the whole batch does not apply (transactions that each pass check_tx but conflict
        with one another); quadratic in the batch, which is bounded by max_block_txs.
        """
        kept: list[bytes] = []
        for tx in txs:
            if self.app.validate_block_txs((*kept, tx), time) is None:
                kept.append(tx)
        return tuple(kept)

    def _line_22_fresh_proposal(self) -> bool:
        """upon PROPOSAL(h, round, v, -1) from proposer(h, round) while step = propose."""
        if self.step != Step.PROPOSE:
            return False
        for p in self._log.msgs.proposals(self.round):
            if p.valid_round != -1:
                continue
            v = p.block
            timely = check_timely(v, self._now, self.params, self.round, self.timeliness_slack()) is None
            valid = self._valid(v)
            if valid:
                self._note_proposal_arrival(p)
            if valid and timely and (self.locked_round == -1 or self._is_locked_on(v)):  # line 23
                self._vote(Step.PREVOTE, block_id(v))  # line 24
            else:
                self._vote(Step.PREVOTE, NIL)  # line 26
            self.step = Step.PREVOTE  # line 27
            return True
        return False

    def _line_28_reproposal(self) -> bool:
        """upon PROPOSAL(h, round, v, vr) from proposer(h, round) and 2f+1 PREVOTE(h, vr, id(v))
        while step = propose and 0 <= vr < round."""
        if self.step != Step.PROPOSE:
            return False
        for p in self._log.msgs.proposals(self.round):
            vr = p.valid_round
            if not 0 <= vr < self.round:
                continue
            v = p.block
            if self._log.msgs.count(vr, Step.PREVOTE, block_id(v)) < self.validators.quorum:
                continue
            if self._valid(v) and (self.locked_round <= vr or self._is_locked_on(v)):  # line 29
                self._vote(Step.PREVOTE, block_id(v))  # line 30
            else:
                self._vote(Step.PREVOTE, NIL)  # line 32
            self.step = Step.PREVOTE  # line 33
            return True
        return False

    def _line_34_any_prevotes(self) -> bool:
        """upon 2f+1 PREVOTE(h, round, *) while step = prevote, for the first time: schedule timeout-prevote."""
        if self.step != Step.PREVOTE or (34, self.round) in self._log.fired:
            return False
        if self._log.msgs.count(self.round, Step.PREVOTE) < self.validators.quorum:
            return False
        self._log.fired.add((34, self.round))
        self._schedule(TimeoutKind.PREVOTE, self.config.prevote_timeout(self.round))  # line 35
        return True

    def _line_36_polka_for_value(self) -> bool:
        """upon PROPOSAL(h, round, v, *) and 2f+1 PREVOTE(h, round, id(v)) while valid(v) and
        step >= prevote, for the first time: lock (if still prevoting) and remember v as valid."""
        if self.step < Step.PREVOTE or (36, self.round) in self._log.fired:
            return False
        for p in self._log.msgs.proposals(self.round):
            v = p.block
            bid = block_id(v)
            if self._log.msgs.count(self.round, Step.PREVOTE, bid) < self.validators.quorum or not self._valid(v):
                continue
            self._log.fired.add((36, self.round))
            if self.step == Step.PREVOTE:  # line 37
                self.locked_value = v  # line 38
                self.locked_round = self.round  # line 39
                self._vote(Step.PRECOMMIT, bid)  # line 40
                self.step = Step.PRECOMMIT  # line 41
            self.valid_value = v  # line 42
            self.valid_round = self.round  # line 43
            return True
        return False

    def _line_44_polka_for_nil(self) -> bool:
        """upon 2f+1 PREVOTE(h, round, nil) while step = prevote: precommit nil."""
        if self.step != Step.PREVOTE:
            return False
        if self._log.msgs.count(self.round, Step.PREVOTE, NIL) < self.validators.quorum:
            return False
        self._vote(Step.PRECOMMIT, NIL)  # line 45
        self.step = Step.PRECOMMIT  # line 46
        return True

    def _line_47_any_precommits(self) -> bool:
        """upon 2f+1 PRECOMMIT(h, round, *) for the first time: schedule timeout-precommit."""
        if (47, self.round) in self._log.fired:
            return False
        if self._log.msgs.count(self.round, Step.PRECOMMIT) < self.validators.quorum:
            return False
        self._log.fired.add((47, self.round))
        self._schedule(TimeoutKind.PRECOMMIT, self.config.precommit_timeout(self.round))  # line 48
        return True

    def _line_49_decide(self) -> bool:
        """upon PROPOSAL(h, r, v, *) and 2f+1 PRECOMMIT(h, r, id(v)) while decision[h] = nil: decide v.

        The block may come from the proposal of any round at this height: it is identified by its hash.
        """
        for r, bid in self._log.msgs.decidable:
            p = self._log.msgs.find_block_proposal(bid)
            if p is None:
                # The others decided a block we never received: fetch it with its certificate.
                if not self._log.sync_requested:
                    self._log.sync_requested = True
                    self._out.append(RequestSync(self.height))
                continue
            if not self._valid(p.block):  # line 50
                if bid not in self._log.invalid_decisions:  # more than f faulty, or our application diverged
                    self._log.invalid_decisions.add(bid)
                    reason = self._validity(p.block)
                    log.error("quorum precommitted an invalid block height=%d reason=%s", self.height, reason)
                continue
            certificate = make_certificate(self._log.msgs.votes_for(r, Step.PRECOMMIT, bid))
            self._decide(p.block, certificate)  # lines 51-54
            return True
        return False

    def _line_55_round_skip(self) -> bool:
        """upon f+1 messages of (h, r') with r' > round: StartRound(r'). See the module doc for ">=" ."""
        rounds = sorted(self._log.msgs.max_round.values(), reverse=True)
        k = self.validators.f_plus_one
        if len(rounds) < k or rounds[k - 1] <= self.round:
            return False
        self._line_11_start_round(rounds[k - 1])  # line 56
        return True

    def _line_57_on_timeout_propose(self, round: int) -> None:
        if round == self.round and self.step == Step.PROPOSE and self.started:  # line 58
            self._vote(Step.PREVOTE, NIL)  # line 59
            self.step = Step.PREVOTE  # line 60
            self._log.awaiting_value = False

    def _line_61_on_timeout_prevote(self, round: int) -> None:
        if round == self.round and self.step == Step.PREVOTE:  # line 62
            self._vote(Step.PRECOMMIT, NIL)  # line 63
            self.step = Step.PRECOMMIT  # line 64

    def _line_65_on_timeout_precommit(self, round: int) -> None:
        if round == self.round and self.started:  # line 66
            self._line_11_start_round(self.round + 1)  # line 67

    # --- deciding and moving to the next height --------------------------------------------------

    def _decide(self, block: Block, certificate: Certificate) -> None:
        """Lines 51-54: decision[h] = v, apply it, h += 1, reset locks, then start the next height."""
        result = self.app.commit_block(block.txs, block.time)
        if self.mempool is not None:
            self.mempool.update(block.txs)
        self._out.append(Commit(block, certificate, result))
        log.debug("decided height=%d round=%d txs=%d", block.height, certificate.round, len(block.txs))
        buffered = [m for queue in self._log.buffer.values() for m in queue if m.height == block.height + 1]
        self._reset_height(ChainTip(block.height, block_id(block), block.time, certificate))
        for msg in buffered:
            self._store(self.validators.index_of(msg.signature.public_key), msg)  # type: ignore[arg-type]
        self._enter_height()

    def _reset_height(self, tip: ChainTip) -> None:
        """Lines 52-53: the next height, its locks, valid values and message log back to their initial values."""
        self.tip = tip
        self.height = tip.height + 1  # line 52
        self.round = 0
        self.step = Step.PROPOSE
        self.started = False
        self.locked_value = None  # line 53
        self.locked_round = -1
        self.valid_value = None
        self.valid_round = -1
        self._log = _HeightLog(HeightMessages(self.validators.quorum))
        self._higher = {i: h for i, h in self._higher.items() if h > self.height}
        self._rebroadcaster.new_height()
        self._signed_before = {k: m for k, m in self._signed_before.items() if k[0] >= self.height}

    def _enter_height(self) -> None:
        """Start round 0 now if a block is worth making, else wait for transactions or a deadline (idle.py)."""
        self._start_when_worth_a_block()
        self._evaluate()

    def _start_when_worth_a_block(self) -> None:
        has_txs = self.mempool is not None and len(self.mempool) > 0
        due = block_due(self.tip, self.app, self.params, has_txs, self._now)
        if due is None:
            return
        if due <= self._now:
            self._line_11_start_round(0)
        else:
            self._out.append(ScheduleTimeout(WaitTimer(self.height), due))

    def _wake_up(self) -> None:
        if not self.started:
            self._start_when_worth_a_block()
        elif self._log.awaiting_value and self.step == Step.PROPOSE:
            self._propose_if_possible()

    # --- outputs ---------------------------------------------------------------------------------

    def _is_locked_on(self, v: Block) -> bool:
        return self.locked_value is not None and block_id(self.locked_value) == block_id(v)

    def _vote(self, step: Step, bid: bytes) -> None:
        if self.me is None or self._keypair is None:
            return  # a follower does not vote
        signed = self._signed_before.get((self.height, self.round, int(step)))
        if signed is None:
            signed = sign(self._keypair, self.chain_id, Vote(self.height, self.round, int(step), bid))
        self._broadcast(signed)

    def _broadcast(self, msg: Proposal | Vote) -> None:
        """Send to the others and count it ourselves (the paper's broadcast includes the sender)."""
        step = Step.PROPOSE if isinstance(msg, Proposal) else msg.step
        self._log.own[(msg.round, int(step))] = msg
        self._signed_before[(msg.height, msg.round, int(step))] = msg
        assert self.me is not None
        self._store(self.me, msg)
        self._out.append(Broadcast(msg))

    def _rebroadcast(self) -> None:
        """Re-send what progress depends on (rebroadcast.py), and ask for sync if f+1 validators are ahead."""
        cert = self.tip.certificate
        if self._rebroadcaster.take_certificate_push(self.started) and cert is not None:
            self._out.extend(Broadcast(vote) for vote in certificate_votes(cert))
        messages = resend(
            round=self.round, own=self._log.own, valid_value=self.valid_value, valid_round=self.valid_round,
            msgs=self._log.msgs, own_key=self._own_key(),
        )
        self._out.extend(Broadcast(msg) for msg in messages)
        if self._behind():
            self._out.append(RequestSync(self.height))

    def _note_proposal_arrival(self, p: Proposal) -> None:
        """Sample how long another validator's fresh proposal of our current round took to arrive: after our
        round started (the propose timeout's measure) and after its block time (the timeliness slack's).

        Every arrival counts, including proposals too late for their round or judged untimely: sampling only
        the ones that made it in time could never show that the timeouts are too short (each sample would
        be below the timeout it is meant to adjust), and on a loaded devnet a proposal arriving 1.3 s after
        a 1.2 s timeout failed round after round while the median stayed put. Byzantine proposers still
        supply a minority of the samples (see PROPOSAL_DELAY_SAMPLES)."""
        if p.signature.public_key == self._own_key() or p.round in self._log.arrivals_sampled:
            return
        self._log.arrivals_sampled.add(p.round)
        self._proposal_delays.append(self._now - self._round_started_at)
        self._proposal_lags.append(max(0, self._now - p.block.time))

    def _measured_delay(self) -> int:
        """PROPOSE_TIMEOUT_MARGIN times the median recent proposal delay (0 before any was measured)."""
        if not self._proposal_delays:
            return 0
        return PROPOSE_TIMEOUT_MARGIN * sorted(self._proposal_delays)[len(self._proposal_delays) // 2]

    def _propose_timeout(self, round: int) -> int:
        """The configured timeout, or the measured one if the network is slower (both grow with the round)."""
        measured = self._measured_delay() + round * self.config.timeout_propose_delta
        return max(self.config.propose_timeout(round), measured)

    def _rebroadcast_interval(self) -> int:
        """No re-send before a message had the time to arrive: re-sending what is only slow adds load."""
        return max(self.config.rebroadcast_interval, self._measured_delay())

    def _own_key(self) -> bytes | None:
        return self._keypair.public_key if self._keypair is not None else None

    def _schedule(self, kind: TimeoutKind, delay: int) -> None:
        """One of the paper's timeouts for the current (height, round)."""
        self._out.append(ScheduleTimeout(Timeout(kind, self.height, self.round), self._now + delay))

    def _finish(self) -> list[Action]:
        self._rebroadcaster.note_state((self.height, self.round, self.step, self.started), self._now)
        out, self._out = self._out, []
        return out

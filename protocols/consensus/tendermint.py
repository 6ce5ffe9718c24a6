"""The Tendermint consensus state machine: Algorithm 1 of "The latest gossip on BFT consensus".

Sans-IO, h11 style: the shell feeds `start`, `on_message`, `on_timeout`, `on_txs_available` and
`on_decided_block` with the current time (ms) and performs the returned actions (`actions.py`). Each
`upon` rule of the paper is one method named after its line numbers (see reference/tendermint.md); after
every input `_evaluate` runs the rules until none fires, which is how "upon" reads as code.

Untrusted input is checked before anything changes: a message from a non-validator, from the wrong
proposer, with a bad signature or a malformed block raises `InvalidMessage` and leaves the state as it
was (the shell then lowers the sender's peer score). Stale messages are ignored without error.

Additions to the paper, each for a stated reason:
- Re-broadcast of our own messages of the current round (and of the votes others need from us) when we
  made no progress for a `rebroadcast_interval`, and `RequestSync` when f+1 validators are at a higher
  height: py-libp2p gossip loses messages, so the paper's gossip property needs help. Only what can still
  help is re-sent (see `_rebroadcast`): under congestion, re-sending everything starved the messages of
  the current round and stopped the chain, and an idle validator re-sends nothing at all. `on_decided_block` accepts a block
  with a valid certificate from the sync protocol.
- Waiting before round 0 of a height until there is a transaction, a due deadline of the application,
  a valid proposal, or f+1 validators already at work on the height (CometBFT's
  `create_empty_blocks = false`): blocks are only made when they carry something. A proposer with
  nothing valid to propose waits for transactions and also schedules timeout-propose, so it still
  prevotes nil if nothing comes.
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
- Restart safety (the paper assumes validators never forget): the shell keeps the consensus messages
  of the current height it sent and accepted (a write-ahead log) and hands them back as `restore=`. We
  then never sign a different message for a (height, round, step) we signed before, and we re-lock on
  the block of our highest precommit, which is what the locking argument of the paper's proof needs.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable

from protocols.consensus.actions import (
    Action,
    Broadcast,
    Commit,
    RecordEvidence,
    RequestSync,
    ScheduleTimeout,
    Timeout,
    TimeoutKind,
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


class InvalidMessage(Exception):
    """An input that no correct peer sends. Nothing was changed; the sender deserves a lower score."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Tendermint:
    """One validator's (or, without a key, one follower's) consensus state for one chain."""

    def __init__(
        self,
        *,
        chain_id: str,
        validators: ValidatorSet,
        app: Application,
        config: ConsensusConfig,
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
        # A validator showed, since our last re-broadcast, that it is still at the height we last decided.
        self._laggard_seen = False
        # ms from the start of our round to the arrival of its valid proposal, at the last heights.
        self._proposal_delays: deque[int] = deque(maxlen=PROPOSAL_DELAY_SAMPLES)
        # ms from a block's time to our accepting its proposal (building, carrying, reading it), at the last
        # heights: the timeliness bound leaves PROPOSE_TIMEOUT_MARGIN times their median on top of the clock
        # drift, so a machine that is slow at this is not failing round 0 at every height (blocks.check_timely).
        self._proposal_lags: deque[int] = deque(maxlen=PROPOSAL_DELAY_SAMPLES)
        self._round_started_at = 0
        # (height, round, step, started) after the last input, and when it last changed: we only re-send
        # when stuck, an interval after our own last progress.
        self._marker: tuple[int, int, int, bool] | None = None
        self._progress_at = 0
        self._reset_height(tip)
        self._restore(restore)

    # --- public inputs ---------------------------------------------------------------------------

    def start(self, now: int) -> list[Action]:
        """Begin (or, after a restart, resume) at the height after `tip`."""
        self._now = now
        self._schedule(TimeoutKind.REBROADCAST, self.config.rebroadcast_interval, height=0, round=0)
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
            self._laggard_seen = True  # it may miss exactly the precommits we decided with: see _rebroadcast
            return []
        if msg.height > self.height:
            self._note_higher_height(index, msg)
            return self._finish()
        self._store(index, msg)
        self._evaluate()
        return self._finish()

    def on_timeout(self, timeout: Timeout, now: int) -> list[Action]:
        self._now = now
        kind = timeout.kind
        if kind is TimeoutKind.REBROADCAST:
            # No progress for a whole interval: something may have been lost. The interval counts from our
            # own last progress, not from a common tick, so validators stuck together do not all re-send
            # at the same moment (a burst the congested queues would drop most of).
            quiet_until = self._progress_at + self._rebroadcast_interval()
            if now >= quiet_until:
                self._rebroadcast()
                quiet_until = now + self._rebroadcast_interval()
            self._schedule(TimeoutKind.REBROADCAST, quiet_until - now, height=0, round=0)
            return self._finish()
        if timeout.height != self.height:
            return []
        if kind is TimeoutKind.PROPOSE:
            self._line_57_on_timeout_propose(timeout.round)
        elif kind is TimeoutKind.PREVOTE:
            self._line_61_on_timeout_prevote(timeout.round)
        elif kind is TimeoutKind.PRECOMMIT:
            self._line_65_on_timeout_precommit(timeout.round)
        elif kind is TimeoutKind.WAIT:
            self._wake_up()
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
            raise InvalidMessage(f"sync block for height {block.height}, expected {self.height}")
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
            self._msgs.size(),
            tuple(sorted(self._msgs.max_round.items())),
            tuple(sorted(self._higher.items())),
            sum(len(v) for v in self._buffer.values()),
            len(self._own),
        )

    @property
    def stored_messages(self) -> int:
        return self._msgs.size() + sum(len(v) for v in self._buffer.values())

    def _restore(self, messages: Iterable[Proposal | Vote]) -> None:
        """Reload the write-ahead log of the current height after a restart (see the module doc)."""
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
                self._own[(msg.round, int(step))] = msg
            self._store(index, msg)
        self._out.clear()  # evidence about old messages was already recorded before the restart
        own_precommits = [
            m for (r, s), m in self._own.items() if s == Step.PRECOMMIT and isinstance(m, Vote) and m.block_id
        ]
        if own_precommits:
            last = max(own_precommits, key=lambda v: v.round)
            proposal = self._msgs.find_block_proposal(last.block_id)
            if proposal is not None:
                self.locked_value = proposal.block
                self.locked_round = last.round
                self.valid_value = proposal.block
                self.valid_round = last.round

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
            queue = self._buffer.setdefault(index, [])
            if len(queue) < MAX_BUFFERED_PER_VALIDATOR and msg not in queue:
                queue.append(msg)
        if not self._sync_requested and self._behind():
            self._sync_requested = True
            self._out.append(RequestSync(self.height))

    def _behind(self) -> bool:
        return len(self._higher) >= self.validators.one_third

    def _store(self, index: int, msg: Proposal | Vote) -> None:
        """Record a checked message of the current height (bounded, see votes.py)."""
        self._msgs.note_sender(index, msg.round)
        if not self._msgs.storable(msg.round):
            return
        if isinstance(msg, Proposal):
            self._msgs.add_proposal(msg)
            return
        existing = self._msgs.add_vote(index, msg)
        if existing is not None:
            key = (index, msg.round, msg.step)
            if key not in self._evidence_seen:
                self._evidence_seen.add(key)
                log.info("equivocation validator=%d height=%d round=%d step=%d", index, msg.height, msg.round, msg.step)
                self._out.append(RecordEvidence(DuplicateVoteEvidence(existing, msg)))

    def _validity(self, block: Block) -> str | None:
        """valid(v), cached per block id for this height (the committed state does not change within it)."""
        bid = block_id(block)
        if bid not in self._valid_cache:
            self._valid_cache[bid] = check_block(
                block, self.tip, self.app, self.validators, self._verifier, self.config
            )
        return self._valid_cache[bid]

    def _valid(self, block: Block) -> bool:
        return self._validity(block) is None

    # --- the rules of Algorithm 1 ----------------------------------------------------------------

    def _evaluate(self) -> None:
        """Fire `upon` rules until none applies. Every rule that returns True changed the state."""
        while True:
            if self._line_49_decide():
                continue
            if not self.started:
                if len(self._msgs.senders) >= self.validators.one_third or self._has_valid_proposal():
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
        return any(self._valid(p.block) for r in self._msgs.rounds for p in self._msgs.proposals(r))

    def _line_11_start_round(self, round: int) -> None:
        """StartRound(round), lines 11-21."""
        self.started = True
        self.round = round  # line 11
        self.step = Step.PROPOSE  # line 12
        self._msgs.current_round = round
        self._awaiting_value = False
        self._round_started_at = self._now
        if self.me is not None and self.validators.proposer_index(self.height, round) == self.me:  # line 13
            self._propose_if_possible()
            if self._awaiting_value:
                # Nothing to propose yet: if nothing comes, at least prevote nil with the others.
                self._schedule(TimeoutKind.PROPOSE, self._propose_timeout(round))
        else:
            self._schedule(TimeoutKind.PROPOSE, self._propose_timeout(round))  # line 21

    def _propose_if_possible(self) -> None:
        """Lines 14-19: propose valid_value if there is one, else getValue(); broadcast PROPOSAL."""
        signed = self._signed_before.get((self.height, self.round, int(Step.PROPOSE)))
        if signed is not None:
            self._awaiting_value = False
            self._broadcast(signed)
            return
        if self.valid_value is not None:  # line 14
            proposal = self.valid_value  # line 15
        else:
            proposal = self._line_16_get_value()
            if proposal is None:
                self._awaiting_value = True
                return
            self._valid_cache[block_id(proposal)] = None  # built from our own committed state
        self._awaiting_value = False
        unsigned = Proposal(self.height, self.round, self.valid_round, proposal)  # line 19
        self._broadcast(sign(self._keypair, self.chain_id, unsigned))

    def _line_16_get_value(self) -> Block | None:
        """getValue(): a block of mempool transactions, or an empty one if a deadline is due, else None."""
        time = max(self._now, self.tip.time + 1)
        txs: tuple[bytes, ...] = ()
        if self.mempool is not None and len(self.mempool):
            txs = self.mempool.reap(self.config.max_block_txs, self.config.max_block_bytes)
            if self.app.validate_block_txs(txs, time) is not None:
                txs = self._greedy_valid_prefix(txs, time)
        if not txs:
            due = first_empty_block_time(self.tip, self.app, self.config)
            if due is None or due > self._now:
                return None
            if check_empty_block_allowed(time, self.tip, self.app, self.config) is not None:
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
        for p in self._msgs.proposals(self.round):
            if p.valid_round != -1:
                continue
            v = p.block
            slack = PROPOSE_TIMEOUT_MARGIN * sorted(self._proposal_lags)[len(self._proposal_lags) // 2] if self._proposal_lags else 0
            timely = check_timely(v, self._now, self.config, self.round, slack) is None
            if self._valid(v) and timely and (self.locked_round == -1 or self._is_locked_on(v)):  # line 23
                if p.signature.public_key != self._own_key():
                    self._proposal_delays.append(self._now - self._round_started_at)
                    self._proposal_lags.append(max(0, self._now - v.time))
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
        for p in self._msgs.proposals(self.round):
            vr = p.valid_round
            if not 0 <= vr < self.round:
                continue
            v = p.block
            if self._msgs.count(vr, Step.PREVOTE, block_id(v)) < self.validators.quorum:
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
        if self.step != Step.PREVOTE or (34, self.round) in self._fired:
            return False
        if self._msgs.count(self.round, Step.PREVOTE) < self.validators.quorum:
            return False
        self._fired.add((34, self.round))
        self._schedule(TimeoutKind.PREVOTE, self.config.prevote_timeout(self.round))  # line 35
        return True

    def _line_36_polka_for_value(self) -> bool:
        """upon PROPOSAL(h, round, v, *) and 2f+1 PREVOTE(h, round, id(v)) while valid(v) and
        step >= prevote, for the first time: lock (if still prevoting) and remember v as valid."""
        if self.step < Step.PREVOTE or (36, self.round) in self._fired:
            return False
        for p in self._msgs.proposals(self.round):
            v = p.block
            bid = block_id(v)
            if self._msgs.count(self.round, Step.PREVOTE, bid) < self.validators.quorum or not self._valid(v):
                continue
            self._fired.add((36, self.round))
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
        if self._msgs.count(self.round, Step.PREVOTE, NIL) < self.validators.quorum:
            return False
        self._vote(Step.PRECOMMIT, NIL)  # line 45
        self.step = Step.PRECOMMIT  # line 46
        return True

    def _line_47_any_precommits(self) -> bool:
        """upon 2f+1 PRECOMMIT(h, round, *) for the first time: schedule timeout-precommit."""
        if (47, self.round) in self._fired:
            return False
        if self._msgs.count(self.round, Step.PRECOMMIT) < self.validators.quorum:
            return False
        self._fired.add((47, self.round))
        self._schedule(TimeoutKind.PRECOMMIT, self.config.precommit_timeout(self.round))  # line 48
        return True

    def _line_49_decide(self) -> bool:
        """upon PROPOSAL(h, r, v, *) and 2f+1 PRECOMMIT(h, r, id(v)) while decision[h] = nil: decide v.

        The block may come from the proposal of any round at this height: it is identified by its hash.
        """
        for r, bid in self._msgs.decidable:
            p = self._msgs.find_block_proposal(bid)
            if p is None:
                # The others decided a block we never received: fetch it with its certificate.
                if not self._sync_requested:
                    self._sync_requested = True
                    self._out.append(RequestSync(self.height))
                continue
            if not self._valid(p.block):  # line 50
                if bid not in self._invalid_decisions:  # more than f faulty, or our application diverged
                    self._invalid_decisions.add(bid)
                    reason = self._validity(p.block)
                    log.error("quorum precommitted an invalid block height=%d reason=%s", self.height, reason)
                continue
            certificate = make_certificate(self._msgs.votes_for(r, Step.PRECOMMIT, bid))
            self._decide(p.block, certificate)  # lines 51-54
            return True
        return False

    def _line_55_round_skip(self) -> bool:
        """upon f+1 messages of (h, r') with r' > round: StartRound(r'). See the module doc for ">=" ."""
        rounds = sorted(self._msgs.max_round.values(), reverse=True)
        k = self.validators.one_third
        if len(rounds) < k or rounds[k - 1] <= self.round:
            return False
        self._line_11_start_round(rounds[k - 1])  # line 56
        return True

    def _line_57_on_timeout_propose(self, round: int) -> None:
        if round == self.round and self.step == Step.PROPOSE and self.started:  # line 58
            self._vote(Step.PREVOTE, NIL)  # line 59
            self.step = Step.PREVOTE  # line 60
            self._awaiting_value = False

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
        self.app.commit_block(block.txs, block.time)
        if self.mempool is not None:
            self.mempool.update(block.txs)
        self._out.append(Commit(block, certificate))
        log.debug("decided height=%d round=%d txs=%d", block.height, certificate.round, len(block.txs))
        buffered = [m for queue in self._buffer.values() for m in queue if m.height == block.height + 1]
        self._reset_height(ChainTip(block.height, block_id(block), block.time, certificate))
        for msg in buffered:
            self._store(self.validators.index_of(msg.signature.public_key), msg)  # type: ignore[arg-type]
        self._enter_height()

    def _reset_height(self, tip: ChainTip) -> None:
        self.tip = tip
        self.height = tip.height + 1
        self.round = 0
        self.step = Step.PROPOSE
        self.started = False
        self.locked_value: Block | None = None  # line 53
        self.locked_round = -1
        self.valid_value: Block | None = None
        self.valid_round = -1
        self._msgs = HeightMessages(self.validators.quorum)
        self._fired: set[tuple[int, int]] = set()
        self._valid_cache: dict[bytes, str | None] = {}
        self._invalid_decisions: set[bytes] = set()
        self._own: dict[tuple[int, int], Proposal | Vote] = {}
        self._evidence_seen: set[tuple[int, int, int]] = set()
        self._buffer: dict[int, list[Proposal | Vote]] = {}
        self._higher = {i: h for i, h in getattr(self, "_higher", {}).items() if h > self.height}
        self._sync_requested = False
        self._certificate_pushed = False  # re-sent the previous height's certificate since this height started
        self._awaiting_value = False
        self._signed_before = {k: m for k, m in self._signed_before.items() if k[0] >= self.height}

    def _enter_height(self) -> None:
        """Start round 0 now if a block is worth making, else wait for transactions or a deadline."""
        if self._worth_a_block():
            self._line_11_start_round(0)
        else:
            due = first_empty_block_time(self.tip, self.app, self.config)
            if due is not None:
                self._schedule(TimeoutKind.WAIT, max(0, due - self._now))
        self._evaluate()

    def _worth_a_block(self) -> bool:
        if self.mempool is not None and len(self.mempool):
            return True
        due = first_empty_block_time(self.tip, self.app, self.config)
        return due is not None and due <= self._now

    def _wake_up(self) -> None:
        if not self.started:
            if self._worth_a_block():
                self._line_11_start_round(0)
            else:
                due = first_empty_block_time(self.tip, self.app, self.config)
                if due is not None and due > self._now:
                    self._schedule(TimeoutKind.WAIT, due - self._now)
        elif self._awaiting_value and self.step == Step.PROPOSE:
            self._propose_if_possible()

    # --- outputs ---------------------------------------------------------------------------------

    def _is_locked_on(self, v: Block) -> bool:
        return self.locked_value is not None and block_id(self.locked_value) == block_id(v)

    def _vote(self, step: Step, bid: bytes) -> None:
        if self.me is None:
            return  # a follower does not vote
        signed = self._signed_before.get((self.height, self.round, int(step)))
        if signed is None:
            signed = sign(self._keypair, self.chain_id, Vote(self.height, self.round, int(step), bid))
        self._broadcast(signed)

    def _broadcast(self, msg: Proposal | Vote) -> None:
        """Send to the others and count it ourselves (the paper's broadcast includes the sender)."""
        step = Step.PROPOSE if isinstance(msg, Proposal) else msg.step
        self._own[(msg.round, int(step))] = msg
        self._signed_before[(msg.height, msg.round, int(step))] = msg
        assert self.me is not None
        self._store(self.me, msg)
        self._out.append(Broadcast(msg))

    def _rebroadcast(self) -> None:
        """Restore the gossip property the paper assumes, for the messages progress depends on, and only those:
        every message re-sent competes with the current round's votes for the same lossy queues, and in the
        simulator's congestion scenario re-sending everything (about 13 messages per validator per interval)
        stopped the chain for as long as the congestion lasted.

        - our own messages of the current round. Earlier rounds are not needed: a validator still in an
          earlier round joins ours by the round-skip rule once it hears f+1 of us, and one that missed a
          decision of an earlier round is sent the certificate by those who decided (next item);
        - the certificate of the previous height, as precommits, when a validator showed since the last
          re-broadcast that it is still at that height: it may be missing exactly the votes we decided with,
          and nobody else is left there to send them. While our height runs, only once per height: our
          messages of it also tell the laggard it is behind, and it then fetches the block by sync, a stream
          that does not lose it. Every validator re-sending the certificate every interval to a laggard
          whose queues overflow is what kept it (and, with it, the quorum) stuck in the congestion
          scenario; a single push still spares it the sync round trip in the common case (in the rolling
          restart scenario the longest gap is about 40% shorter with it than with sync alone);
        - the polka behind our valid value when it is from an earlier round (its proposal and 2f+1 prevotes,
          which may include an equivocator's vote that only we received): a validator locked on an older
          value needs it to unlock at line 28, and the next proposer needs it to re-propose the value. A
          polka of the current round is re-sent by its own voters.
        """
        out = self._out
        cert = self.tip.certificate
        if cert is not None and self._laggard_seen and not (self.started and self._certificate_pushed):
            self._certificate_pushed = self.started
            for sig in cert.signatures:
                out.append(Broadcast(Vote(cert.height, cert.round, int(Step.PRECOMMIT), cert.block_id, sig)))
        self._laggard_seen = False
        for (round, _step), msg in sorted(self._own.items()):
            if round == self.round:
                out.append(Broadcast(msg))
        if self.valid_value is not None and self.valid_round < self.round:
            bid = block_id(self.valid_value)
            proposal = self._msgs.find_block_proposal(bid)
            if proposal is not None and proposal.signature.public_key != self._own_key():
                out.append(Broadcast(proposal))
            for vote in self._msgs.votes_for(self.valid_round, Step.PREVOTE, bid):
                if vote.signature.public_key != self._own_key():
                    out.append(Broadcast(vote))
        if self._behind():
            out.append(RequestSync(self.height))

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

    def _schedule(self, kind: TimeoutKind, delay: int, height: int | None = None, round: int | None = None) -> None:
        timeout = Timeout(kind, self.height if height is None else height, self.round if round is None else round)
        self._out.append(ScheduleTimeout(timeout, self._now + delay))

    def _finish(self) -> list[Action]:
        marker = (self.height, self.round, self.step, self.started)
        if marker != self._marker:
            self._marker = marker
            self._progress_at = self._now
        out, self._out = self._out, []
        return out

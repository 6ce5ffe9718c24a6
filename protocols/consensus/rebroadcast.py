"""Re-broadcast: the paper's gossip property, restored over a gossip that loses messages.

Algorithm 1 assumes that a message a correct validator received is eventually received by every correct
validator. py-libp2p gossip drops messages under load, so a validator that made no progress for a whole
interval re-sends the messages progress depends on, and only those: every message re-sent competes with the
current round's votes for the same lossy queues, and in the simulator's congestion scenario re-sending
everything (about 13 messages per validator per interval) stopped the chain for as long as the congestion
lasted. An idle validator re-sends nothing at all.

`Rebroadcaster` decides when (one `RebroadcastTimer` for the machine's life) and whether the previous height's
certificate is owed; `resend` chooses the messages. The state machine (tendermint.py) owns the state they read.
"""

from __future__ import annotations

from collections.abc import Mapping

from protocols.consensus.messages import Block, Certificate, Proposal, Step, Vote, block_id
from protocols.consensus.votes import HeightMessages

# (height, round, step, started) of the state machine: a change is progress.
Marker = tuple[int, int, int, bool]


class Rebroadcaster:
    """When to re-send, counted from our own last progress rather than a common tick, so that validators
    stuck together do not all re-send at the same moment (a burst the congested queues would drop most of)."""

    def __init__(self) -> None:
        self._marker: Marker | None = None
        self._progress_at = 0
        # A validator showed, since our last re-broadcast, that it is still at the height we last decided.
        self._laggard_seen = False
        # The previous height's certificate was re-sent since this height started.
        self._certificate_pushed = False

    def note_state(self, marker: Marker, now: int) -> None:
        """After every input: a changed marker is progress, and restarts the quiet interval."""
        if marker != self._marker:
            self._marker = marker
            self._progress_at = now

    def on_timer(self, now: int, interval: int) -> tuple[bool, int]:
        """(re-send now?, when the next `RebroadcastTimer` is due). Re-sending needs a whole `interval`
        without progress; after one, the next waits a whole interval again."""
        quiet_until = self._progress_at + interval
        if now >= quiet_until:
            return True, now + interval
        return False, quiet_until

    def note_laggard(self) -> None:
        """A validator sent a message of the height we last decided: it may miss our certificate."""
        self._laggard_seen = True

    def new_height(self) -> None:
        self._certificate_pushed = False

    def take_certificate_push(self, started: bool) -> bool:
        """Whether to re-send the previous height's certificate with this re-broadcast.

        Only when a laggard showed since the last one: it may be missing exactly the votes we decided with,
        and nobody else is left at that height to send them. While our height runs (`started`), only once
        per height: our messages of it also tell the laggard it is behind, and it then fetches the block by
        sync, a stream that does not lose it. Every validator re-sending the certificate every interval to a
        laggard whose queues overflow is what kept it (and, with it, the quorum) stuck in the congestion
        scenario; a single push still spares it the sync round trip in the common case (in the rolling
        restart scenario the longest gap is about 40% shorter with it than with sync alone).
        """
        push = self._laggard_seen and not (started and self._certificate_pushed)
        self._laggard_seen = False
        if push:
            self._certificate_pushed = started
        return push


def certificate_votes(certificate: Certificate) -> list[Vote]:
    """The precommits a certificate was made of, as they were gossiped."""
    c = certificate
    return [Vote(c.height, c.round, int(Step.PRECOMMIT), c.block_id, sig) for sig in c.signatures]


def resend(
    *,
    round: int,
    own: Mapping[tuple[int, int], Proposal | Vote],
    valid_value: Block | None,
    valid_round: int,
    msgs: HeightMessages,
    own_key: bytes | None,
) -> list[Proposal | Vote]:
    """The messages of this height worth sending again:

    - our own messages of the current `round` (`own` is keyed by (round, step)). Earlier rounds are not
      needed: a validator still in an earlier round joins ours by the round-skip rule once it hears f+1 of
      us, and one that missed a decision of an earlier round is sent the certificate by those who decided;
    - the polka behind our valid value when it is from an earlier round (its proposal and 2f+1 prevotes,
      which may include an equivocator's vote that only we received): a validator locked on an older value
      needs it to unlock at line 28, and the next proposer needs it to re-propose the value. A polka of the
      current round is re-sent by its own voters.
    """
    out: list[Proposal | Vote] = [msg for (r, _step), msg in sorted(own.items()) if r == round]
    if valid_value is not None and valid_round < round:
        bid = block_id(valid_value)
        proposal = msgs.find_block_proposal(bid)
        if proposal is not None and proposal.signature.public_key != own_key:
            out.append(proposal)
        out.extend(v for v in msgs.votes_for(valid_round, Step.PREVOTE, bid) if v.signature.public_key != own_key)
    return out

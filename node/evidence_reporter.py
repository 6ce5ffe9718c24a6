"""Proofs of a validator's equivocation, found by our consensus driver, go on the ledger."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from protocols.consensus.evidence import offender
from protocols.consensus.messages import DuplicateVoteEvidence
from protocols.ledger.evidence import offence_key
from protocols.ledger.state import StateView
from protocols.ledger.transactions import RecordEquivocation, Transaction, TxBody

log = logging.getLogger(__name__)


class EvidenceReporter:
    def __init__(self, submit: Callable[[TxBody], Awaitable[Transaction]], ledger_view: Callable[[], StateView]) -> None:
        """`submit` sends a transaction of ours (the outbox's)."""
        self._submit = submit
        self._ledger_view = ledger_view
        self._reported_offences: set[bytes] = set()

    async def report(self, evidence: DuplicateVoteEvidence) -> None:
        """Put the proof of a validator's equivocation on the ledger, once per offence from this node (the
        other validators saw it too and may report it first: the ledger records one, refuses the rest)."""
        vote = evidence.first
        key = offence_key(offender(evidence), vote.height, vote.round, vote.step)
        if key in self._reported_offences or self._ledger_view().get(key) is not None:
            return
        self._reported_offences.add(key)
        try:
            tx = await self._submit(RecordEquivocation(evidence))
        except ValueError as exc:  # refused by our mempool: already recorded, or reported by us before
            log.info("event=evidence-not-submitted reason=%r", str(exc))
            return
        log.warning("event=evidence-submitted validator=%s height=%d round=%d step=%d tx=%s",
                    offender(evidence).hex()[:16], vote.height, vote.round, vote.step, tx.tx_id.hex()[:16])

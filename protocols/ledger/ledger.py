"""The ledger's transition function: `apply(state, tx, block_time) -> TxOutcome`.

Pure and deterministic: the outcome depends only on the state, the transaction, the block time and the
chain rules. A rejected transaction returns a reason code and no writes, whatever rule failed and however
far the handler had gone, because handlers write into a `StateView` that is dropped on rejection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from protocols.attestation import QuoteVerifier
from protocols.genesis import Genesis
from protocols.ledger import evidence, market, poco
from protocols.ledger.context import ChainRules, ContributionVerifier, TxContext
from protocols.ledger.escrow import Reject
from protocols.ledger.records import Account
from protocols.ledger.state import ACCOUNT, LedgerState, Writes
from protocols.ledger.transactions import (
    CancelOrder,
    Claim,
    Contribute,
    ContributeAndFinalize,
    Finalize,
    InitializeTask,
    MatchOrders,
    RecordEquivocation,
    RegisterApp,
    RegisterDataset,
    RegisterWorkerpool,
    Reopen,
    Reveal,
    Transaction,
    Transfer,
)

OK = "ok"

Handler = Callable[[TxContext, Any], bytes]
HANDLERS: dict[type, Handler] = {
    Transfer: market.transfer,
    RegisterApp: market.register_app,
    RegisterDataset: market.register_dataset,
    RegisterWorkerpool: market.register_workerpool,
    MatchOrders: market.match_orders,
    CancelOrder: market.cancel_order,
    InitializeTask: poco.initialize,
    Contribute: poco.contribute,
    ContributeAndFinalize: poco.contribute_and_finalize,
    Reveal: poco.reveal,
    Finalize: poco.finalize,
    Reopen: poco.reopen,
    Claim: poco.claim,
    RecordEquivocation: evidence.record_equivocation,
}


@dataclass(frozen=True)
class TxOutcome:
    """`code` is "ok" or a rejection reason; `created` names what the transaction made (asset address,
    deal id, task id, order hash); `writes` are the state changes, empty on rejection."""

    code: str
    detail: str = ""
    created: bytes = b""
    writes: Writes | None = None

    @property
    def ok(self) -> bool:
        return self.code == OK


def apply(rules: ChainRules, state: LedgerState, tx: Transaction, block_time: int) -> TxOutcome:
    """Run `tx` against `state` without modifying it."""
    view = state.view()
    if not rules.signatures.verify(tx):
        return TxOutcome("bad-signature", "transaction signature does not verify for this chain")
    sender = tx.signer
    account = view.account(sender)
    if tx.nonce != account.nonce:
        return TxOutcome("bad-nonce", f"expected nonce {account.nonce}, got {tx.nonce}")
    ctx = TxContext(view, rules, sender, tx.nonce, block_time)
    try:
        created = HANDLERS[type(tx.body)](ctx, tx.body)
    except Reject as rejection:
        return TxOutcome(rejection.code, rejection.detail)
    account = view.account(sender)
    view.put_account(sender, replace(account, nonce=account.nonce + 1))
    return TxOutcome(OK, created=created, writes=view.writes)


class Ledger:
    """A state plus the chain rules: applies transactions and keeps the ones that succeed."""

    def __init__(self, rules: ChainRules, state: LedgerState) -> None:
        self.rules = rules
        self.state = state

    @classmethod
    def from_genesis(cls, genesis: Genesis, contribution_verifier: ContributionVerifier | None = None) -> Ledger:
        verifier = contribution_verifier or QuoteVerifier(genesis.chain_id, genesis.attestation_authorities)
        rules = ChainRules(genesis.chain_id, {c.id: c for c in genesis.categories}, verifier,
                           tuple(v.public_key for v in genesis.validators))
        return cls(rules, genesis_state(genesis))

    def apply(self, tx: Transaction, block_time: int) -> TxOutcome:
        outcome = apply(self.rules, self.state, tx, block_time)
        if outcome.writes:
            self.state.apply_writes(outcome.writes)
        return outcome


def genesis_state(genesis: Genesis) -> LedgerState:
    """The state before block 1: the genesis allocations (the faucet) as free balances."""
    return LedgerState({ACCOUNT + a.address: Account(balance=a.amount) for a in genesis.allocations})

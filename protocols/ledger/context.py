"""What a transaction handler sees: the state view, the sender, the block time and the chain's rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from protocols.crypto import SignatureVerifier
from protocols.genesis import Category
from protocols.ledger.records import App, Deal
from protocols.ledger.state import StateView
from protocols.ledger.transactions import Contribute


class ContributionVerifier(Protocol):
    """Checks the attestation carried by a contribution; returns None if acceptable, else a reason code.

    Every validator must reach the same answer from the same inputs, so an implementation may depend only on
    its arguments and on configuration fixed by the genesis (e.g. attestation authorities). `app` is the deal's
    app record, whose measurement a quote must match.
    """

    def check(self, contribution: Contribute, worker: bytes, deal: Deal, app: App) -> str | None: ...


@dataclass
class ChainRules:
    """Chain-wide configuration every validator shares, derived from the genesis."""

    chain_id: str
    categories: dict[int, Category]
    contribution_verifier: ContributionVerifier
    validators: tuple[bytes, ...] = ()  # public keys, in genesis order: equivocation evidence names one
    signatures: SignatureVerifier = field(init=False)

    def __post_init__(self) -> None:
        self.signatures = SignatureVerifier(self.chain_id)


@dataclass
class TxContext:
    view: StateView
    rules: ChainRules
    sender: bytes
    nonce: int
    block_time: int

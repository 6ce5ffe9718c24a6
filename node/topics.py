"""The chain's gossip topics (DESIGN.md section 8). The chain id is in every name, so two devnets on one
machine never mix their messages."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    chain_id: str

    @property
    def orders(self) -> str:
        return f"pocnet/{self.chain_id}/orders"

    @property
    def txs(self) -> str:
        return f"pocnet/{self.chain_id}/txs"

    @property
    def consensus(self) -> str:
        return f"pocnet/{self.chain_id}/consensus"

    @property
    def blocks(self) -> str:
        return f"pocnet/{self.chain_id}/blocks"

    @property
    def peers(self) -> str:
        return f"pocnet/{self.chain_id}/peers"

"""Signing on behalf of one account: transactions with the next nonce, and orders with PoCo's default fields.

Defaults follow iexec-sdk's order templates (reference/poco.md section 1): app and dataset orders offer
1,000,000 tasks, workerpool and request orders one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from protocols.crypto import ZERO_ADDRESS, Keypair, SignedT, sign
from protocols.ledger.transactions import Transaction, TxBody
from protocols.orders import NO_TAG, AppOrder, DatasetOrder, RequestOrder, WorkerpoolOrder

ASSET_ORDER_VOLUME = 1_000_000
SALT_LEN = 16


class Wallet:
    """One key on one chain. `nonce` is the next transaction nonce; the caller keeps it in step with the ledger."""

    def __init__(self, keypair: Keypair, chain_id: str, entropy: Callable[[int], bytes], nonce: int = 0) -> None:
        """`entropy(n)` gives n random bytes for order salts (os.urandom in the node, a seeded source in tests)."""
        self.keypair = keypair
        self.entropy = entropy
        self.chain_id = chain_id
        self.nonce = nonce

    @property
    def address(self) -> bytes:
        return self.keypair.address

    def sign(self, unsigned: SignedT) -> SignedT:
        return sign(self.keypair, self.chain_id, unsigned)

    def tx(self, body: TxBody) -> Transaction:
        """A signed transaction with the next nonce (which it then advances)."""
        signed = self.sign(Transaction(self.nonce, body))
        self.nonce += 1
        return signed

    def app_order(self, app: bytes, price: int, **fields: Any) -> AppOrder:
        order = AppOrder(app, price, ASSET_ORDER_VOLUME, NO_TAG, ZERO_ADDRESS, ZERO_ADDRESS, ZERO_ADDRESS, self._salt())
        return self.sign(replace(order, **fields))

    def dataset_order(self, dataset: bytes, price: int, **fields: Any) -> DatasetOrder:
        order = DatasetOrder(
            dataset, price, ASSET_ORDER_VOLUME, NO_TAG, ZERO_ADDRESS, ZERO_ADDRESS, ZERO_ADDRESS, self._salt()
        )
        return self.sign(replace(order, **fields))

    def workerpool_order(self, workerpool: bytes, price: int, category: int, trust: int, **fields: Any) -> WorkerpoolOrder:
        order = WorkerpoolOrder(
            workerpool, price, 1, NO_TAG, category, trust, ZERO_ADDRESS, ZERO_ADDRESS, ZERO_ADDRESS, self._salt()
        )
        return self.sign(replace(order, **fields))

    def request_order(self, app: bytes, app_max_price: int, category: int, **fields: Any) -> RequestOrder:
        order = RequestOrder(
            app=app,
            app_max_price=app_max_price,
            dataset=ZERO_ADDRESS,
            dataset_max_price=0,
            workerpool=ZERO_ADDRESS,
            workerpool_max_price=0,
            requester=self.address,
            volume=1,
            tag=NO_TAG,
            category=category,
            trust=0,
            beneficiary=self.address,
            callback=ZERO_ADDRESS,
            params="",
            salt=self._salt(),
        )
        return self.sign(replace(order, **fields))


    def _salt(self) -> bytes:
        # A salt only makes otherwise equal orders distinct; it enters no consensus decision.
        return self.entropy(SALT_LEN)

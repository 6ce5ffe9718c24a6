"""Signing on behalf of one account: transactions with the next nonce, and orders from the templates in
`protocols.orders` (iexec-sdk's defaults)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from protocols import orders
from protocols.crypto import Keypair, SignedT, sign
from protocols.ledger.transactions import Transaction, TxBody
from protocols.orders import AppOrder, DatasetOrder, RequestOrder, WorkerpoolOrder

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
        return self.sign(orders.app_order(app, price, **self._defaults(fields)))

    def dataset_order(self, dataset: bytes, price: int, **fields: Any) -> DatasetOrder:
        return self.sign(orders.dataset_order(dataset, price, **self._defaults(fields)))

    def workerpool_order(self, workerpool: bytes, price: int, category: int, trust: int, **fields: Any) -> WorkerpoolOrder:
        return self.sign(orders.workerpool_order(workerpool, price, category, trust, **self._defaults(fields)))

    def request_order(self, app: bytes, app_max_price: int, category: int, **fields: Any) -> RequestOrder:
        """Asked by this account unless `requester=` says otherwise (tests sign requests for someone else)."""
        return self.sign(orders.request_order(
            app, app_max_price, category, **self._defaults({"requester": self.address, **fields})))

    def _defaults(self, fields: dict[str, Any]) -> dict[str, Any]:
        """`fields` over a fresh salt. Entropy is drawn even when the caller gives `salt=`, so a seeded source
        gives the same later salts whatever the caller passed."""
        return {"salt": self.entropy(SALT_LEN), **fields}

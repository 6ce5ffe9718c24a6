"""An in-process demo of the protocol core: orders signed by their owners are matched into a deal.

Five participants on a fresh ledger: an app developer, a data provider, a workerpool manager and two
requesters. They register their assets, sign orders, the matching engine picks the cheapest compatible
set for each request, the ledger checks every PoCo rule and writes the deal, and `explain` says why the
second request cannot match. No network yet: this is what every validator computes.
"""

from __future__ import annotations

import os

from protocols.chain_params import ChainParams
from protocols.crypto import Keypair, SignatureVerifier, hex_address
from protocols.genesis import NRLC_PER_RLC, Allocation, Category, Genesis, Validator
from protocols.ledger.ledger import Ledger
from protocols.ledger.market import LedgerMarketView
from protocols.ledger.records import Deal
from protocols.ledger.transactions import RegisterApp, RegisterDataset, RegisterWorkerpool, TxBody
from protocols.matching import task_id_for
from protocols.orderbook import OrderBook, explain, propose_matches
from protocols.orders import Order
from protocols.wallet import Wallet

CHAIN_ID = "pocnet-demo"
PARTICIPANTS = ("appdev", "provider", "manager", "alice", "bob")


def rlc(amount: float) -> int:
    return int(amount * NRLC_PER_RLC)


def show_rlc(nrlc: int) -> str:
    return f"{nrlc / NRLC_PER_RLC:,.3f} RLC"


class DemoLedger:
    """A ledger with named wallets; every transaction goes through `apply` and must succeed."""

    def __init__(self) -> None:
        self.wallets = {name: Wallet(Keypair.generate(), CHAIN_ID, os.urandom) for name in PARTICIPANTS}
        genesis = Genesis(
            chain_id=CHAIN_ID,
            genesis_time_ms=0,
            validators=(Validator(self.wallets["manager"].keypair.public_key, "manager"),),
            allocations=tuple(Allocation(w.address, rlc(100)) for w in self.wallets.values()),
            categories=(Category(0, "XS", 300_000),),
            attestation_authorities=(),
            params=ChainParams(empty_block_interval_ms=1_000),
        )
        self.ledger = Ledger.from_genesis(genesis)
        self.now = 1_000

    def submit(self, name: str, body: TxBody) -> bytes:
        outcome = self.ledger.apply(self.wallets[name].tx(body), self.now)
        if not outcome.ok:
            raise SystemExit(f"{type(body).__name__} by {name} was rejected: {outcome.code} {outcome.detail}")
        return outcome.created

    def market_view(self) -> LedgerMarketView:
        return LedgerMarketView(self.ledger.state.view(), self.ledger.rules.categories)

    def balance(self, name: str) -> tuple[int, int]:
        account = self.ledger.state.view().account(self.wallets[name].address)
        return account.balance, account.frozen


def print_deal(deal_id: bytes, deal: Deal, names: dict[bytes, str]) -> None:
    print(f"\nDeal 0x{deal_id.hex()}")
    rows = [
        ("app", f"0x{deal.app.pointer.hex()} by {names[deal.app.owner]} at {show_rlc(deal.app.price)}"),
        ("dataset", f"0x{deal.dataset.pointer.hex()} by {names[deal.dataset.owner]} at {show_rlc(deal.dataset.price)}"),
        ("workerpool", f"0x{deal.workerpool.pointer.hex()} by {names[deal.workerpool.owner]} at {show_rlc(deal.workerpool.price)}"),
        ("requester", f"{names[deal.requester]} ({hex_address(deal.requester)})"),
        ("tasks", f"{deal.bot_size} (indices {deal.bot_first}..{deal.bot_first + deal.bot_size - 1}), trust {deal.trust}"),
        ("escrow", f"{show_rlc(deal.task_price * deal.bot_size)} locked from the requester"),
        ("stakes", f"pool {show_rlc(deal.pool_stake_per_task * deal.bot_size)}, per worker {show_rlc(deal.worker_stake)}"),
        ("first task", f"0x{task_id_for(deal_id, deal.bot_first).hex()}"),
    ]
    for label, text in rows:
        print(f"  {label:<11} {text}")


def main() -> None:
    demo = DemoLedger()
    w = demo.wallets
    names = {wallet.address: name for name, wallet in w.items()}
    app = demo.submit("appdev", RegisterApp("word-count", bytes(32)))
    dataset = demo.submit("provider", RegisterDataset("novels", bytes(32)))
    pool = demo.submit("manager", RegisterWorkerpool("demo pool"))
    cheap_pool = demo.submit("manager", RegisterWorkerpool("budget pool"))
    print(f"Registered app 0x{app.hex()}, dataset 0x{dataset.hex()}, workerpools 0x{pool.hex()} and 0x{cheap_pool.hex()}")

    book = OrderBook(SignatureVerifier(CHAIN_ID))
    orders: list[Order] = [
        w["appdev"].app_order(app, rlc(1)),
        w["provider"].dataset_order(dataset, rlc(2), app_restrict=app),
        w["manager"].workerpool_order(pool, rlc(5), category=0, trust=3, volume=10),
        w["manager"].workerpool_order(cheap_pool, rlc(3), category=0, trust=1, volume=10),
        w["alice"].request_order(app, rlc(1), 0, dataset=dataset, dataset_max_price=rlc(2), workerpool_max_price=rlc(6), volume=2),
        w["bob"].request_order(app, rlc(1), 0, dataset=dataset, dataset_max_price=rlc(1), workerpool_max_price=rlc(6), trust=5),
    ]
    for order in orders:
        book.add(order)
    print(f"Order book: {len(book)} signed orders (app, dataset, 2 workerpools, 2 requests)")

    before = {name: demo.balance(name) for name in w}
    proposals = propose_matches(book, demo.market_view(), book.verifier, limit=10)
    print(f"Matching engine proposes {len(proposals)} match(es)")
    for match in proposals:
        deal_id = demo.submit("manager", match)
        deal = demo.ledger.state.view().deal(deal_id)
        assert deal is not None
        print_deal(deal_id, deal, names)

    bob_request = orders[-1]
    print("\nWhy bob's request does not match:")
    for report in explain(bob_request, book, demo.market_view(), book.verifier):  # type: ignore[arg-type]
        pool_name = "demo pool" if report.workerpool_order.workerpool == pool else "budget pool"
        reasons = ", ".join(v.code for v in report.violations) or "matches"
        print(f"  with {pool_name:<11}: {reasons}")

    print("\nBalances (free / frozen):")
    for name in w:
        (free, frozen), (free0, frozen0) = demo.balance(name), before[name]
        change = (free + frozen) - (free0 + frozen0)
        print(f"  {name:<9} {show_rlc(free):>16} / {show_rlc(frozen):>14}   (total change {show_rlc(change)})")


if __name__ == "__main__":
    main()

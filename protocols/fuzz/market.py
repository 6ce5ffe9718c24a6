"""A small market on a fresh ledger: funded actors, registered assets, and helpers to drive PoCo.

The tests build their scenarios on it, and the fuzzer (`pocnet fuzz ledger`, `node/fuzz/`) starts every
input from `scene()`, a market with deals and tasks in several states, so that fuzzed transactions reach
the ledger's rules instead of stopping at "unknown deal". Keys come from fixed names: everything here is
deterministic, and a crash found on one machine replays on any other.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from protocols.attestation import (
    PlatformCertificate,
    issue_certificate,
    make_attestation,
    make_quote,
)
from protocols.chain_params import ChainParams
from protocols.crypto import Keypair, sign
from protocols.genesis import Allocation, Category, Genesis, Validator
from protocols.ledger.escrow import KITTY_ADDRESS
from protocols.ledger.ledger import Ledger, TxOutcome
from protocols.ledger.poco import result_hash, result_seal
from protocols.ledger.records import Account, Deal, Task
from protocols.ledger.state import ACCOUNT, DEAL, TASK
from protocols.ledger.transactions import (
    CancelOrder,
    Claim,
    Contribute,
    Finalize,
    InitializeTask,
    MatchOrders,
    RegisterApp,
    RegisterDataset,
    RegisterWorkerpool,
    Reopen,
    Reveal,
    Transaction,
    Transfer,
    TxBody,
    WorkerAuthorization,
)
from protocols.matching import task_id_for
from protocols.orders import AppOrder, DatasetOrder, RequestOrder, WorkerpoolOrder
from protocols.wallet import Wallet

CHAIN_ID = "test-chain"
CATEGORY = 0
T_MS = 1_000  # the test category's time reference
RLC = 10**9
START_BALANCE = 1_000_000 * RLC
APP_PRICE, DATASET_PRICE, POOL_PRICE = 3 * RLC, 2 * RLC, 10 * RLC
ACTORS = ("requester", "appdev", "provider", "manager", "w1", "w2", "w3", "w4", "poor")
# The test network's attestation authority: it certifies every actor's platform key (see `certificate`).
AUTHORITY = Keypair.from_name("attestation-authority")


def platform_key(name: str) -> Keypair:
    """The test platform key of an actor's machine."""
    return Keypair.from_name(f"platform/{name}")


def certificate(name: str) -> PlatformCertificate:
    """AUTHORITY's certificate for the actor's platform key."""
    return issue_certificate(AUTHORITY, CHAIN_ID, platform_key(name).public_key, Keypair.from_name(name).address)


def make_genesis(names: tuple[str, ...] = ACTORS) -> Genesis:
    return Genesis(
        chain_id=CHAIN_ID,
        genesis_time_ms=0,
        validators=(Validator(Keypair.from_name("manager").public_key, "manager"),),
        allocations=tuple(
            Allocation(Keypair.from_name(n).address, START_BALANCE) for n in names if n != "poor"
        ),
        categories=(Category(CATEGORY, "XS", T_MS), Category(1, "S", 4 * T_MS)),
        attestation_authorities=(AUTHORITY.public_key,),
        params=ChainParams(empty_block_interval_ms=1000),
    )


@dataclass
class Market:
    """Actors with wallets, a ledger, and registered app, dataset and workerpool."""

    ledger: Ledger
    wallets: dict[str, Wallet]
    now: int = 1_000
    app: bytes = b""
    dataset: bytes = b""
    pool: bytes = b""
    enclave_keys: dict[str, Keypair] = field(default_factory=dict)

    @classmethod
    def create(cls, seed: int = 0) -> Market:
        rng = random.Random(seed)
        entropy = rng.randbytes
        wallets = {n: Wallet(Keypair.from_name(n), CHAIN_ID, entropy) for n in ACTORS}
        market = cls(Ledger.from_genesis(make_genesis()), wallets)
        market.app = market.ok("appdev", RegisterApp("hello", b"\x11" * 32)).created
        market.dataset = market.ok("provider", RegisterDataset("secret", b"\x22" * 32)).created
        market.pool = market.ok("manager", RegisterWorkerpool("pool")).created
        return market

    def addr(self, name: str) -> bytes:
        return self.wallets[name].address

    def submit(self, name: str, body: TxBody) -> TxOutcome:
        """Sign with the actor's next nonce and apply; the nonce only advances if the ledger took it."""
        wallet = self.wallets[name]
        outcome = self.ledger.apply(wallet.tx(body), self.now)
        if not outcome.ok:
            wallet.nonce -= 1
        return outcome

    def ok(self, name: str, body: TxBody) -> TxOutcome:
        outcome = self.submit(name, body)
        if not outcome.ok:  # the scene is wrong, not the ledger: say which step
            raise ValueError(f"{type(body).__name__} by {name} rejected: {outcome.code} {outcome.detail}")
        return outcome

    def signed(self, name: str, body: TxBody) -> Transaction:
        return self.wallets[name].tx(body)

    # Orders -------------------------------------------------------------------------------------

    def app_order(self, **fields: Any) -> AppOrder:
        return self.wallets["appdev"].app_order(fields.pop("app", self.app), fields.pop("app_price", APP_PRICE), **fields)

    def dataset_order(self, **fields: Any) -> DatasetOrder:
        dataset, price = fields.pop("dataset", self.dataset), fields.pop("dataset_price", DATASET_PRICE)
        return self.wallets["provider"].dataset_order(dataset, price, **fields)

    def pool_order(self, **fields: Any) -> WorkerpoolOrder:
        pool, price = fields.pop("workerpool", self.pool), fields.pop("workerpool_price", POOL_PRICE)
        category, trust = fields.pop("category", CATEGORY), fields.pop("trust", 3)
        return self.wallets["manager"].workerpool_order(pool, price, category, trust, **fields)

    def request_order(self, **fields: Any) -> RequestOrder:
        fields.setdefault("dataset", self.dataset)
        fields.setdefault("dataset_max_price", DATASET_PRICE)
        fields.setdefault("workerpool_max_price", POOL_PRICE)
        app, price = fields.pop("app", self.app), fields.pop("app_max_price", APP_PRICE)
        wallet = self.wallets[fields.pop("by", "requester")]
        return wallet.request_order(app, price, fields.pop("category", CATEGORY), **fields)

    def match(self, trust: int = 1, volume: int = 1) -> bytes:
        """Match a fresh set of orders; return the deal id."""
        body = MatchOrders(
            self.app_order(), self.dataset_order(), self.pool_order(volume=volume, trust=max(trust, 3)),
            self.request_order(trust=trust, volume=volume),
        )
        return self.ok("requester", body).created

    # PoCo ---------------------------------------------------------------------------------------

    def start_task(self, trust: int = 1) -> bytes:
        deal_id = self.match(trust=trust)
        return self.ok("manager", InitializeTask(deal_id, 0)).created

    def contribution(self, worker: str, task_id: bytes, digest: bytes) -> Contribute:
        """A contribution authorized by the pool manager and attested by an enclave of the deal's app: the
        worker's certified platform quotes an enclave key (one per worker and task), which signs the result."""
        enclave = Keypair.from_name(f"enclave/{worker}/{task_id.hex()}")
        self.enclave_keys[worker] = enclave
        address = self.addr(worker)
        rhash, rseal = result_hash(task_id, digest), result_seal(address, task_id, digest)
        auth = self.wallets["manager"].sign(WorkerAuthorization(address, task_id, enclave.public_key)).signature
        quote = make_quote(platform_key(worker), CHAIN_ID, self.measurement_for(task_id), enclave.public_key, address, task_id)
        attestation = make_attestation(certificate(worker), quote, enclave, CHAIN_ID, rhash, rseal)
        return Contribute(task_id, rhash, rseal, enclave.public_key, attestation, auth)

    def measurement_for(self, task_id: bytes) -> bytes:
        """The measurement of the task's app, or zeros for an unknown task (the ledger refuses it anyway)."""
        view = self.ledger.state.view()
        task = view.task(task_id)
        deal = view.deal(task.deal_id) if task is not None else None
        app = view.app(deal.app.pointer) if deal is not None else None
        return app.measurement if app is not None else bytes(32)

    def contribute(self, worker: str, task_id: bytes, digest: bytes) -> TxOutcome:
        return self.submit(worker, self.contribution(worker, task_id, digest))

    def reveal(self, worker: str, task_id: bytes, digest: bytes) -> TxOutcome:
        return self.submit(worker, Reveal(task_id, digest))

    # Reading state ------------------------------------------------------------------------------

    def account(self, name_or_address: str | bytes) -> Account:
        address = self.addr(name_or_address) if isinstance(name_or_address, str) else name_or_address
        return self.ledger.state.view().account(address)

    def task(self, task_id: bytes) -> Task:
        task: Task = self.ledger.state.get(TASK + task_id)
        return task

    def deal(self, deal_id: bytes) -> Deal:
        deal: Deal = self.ledger.state.get(DEAL + deal_id)
        return deal

    def task_id(self, deal_id: bytes, index: int = 0) -> bytes:
        return task_id_for(deal_id, index)

    def kitty(self) -> int:
        return self.account(KITTY_ADDRESS).frozen


def total_supply(ledger: Ledger) -> int:
    return sum(a.balance + a.frozen for _, a in ledger.state.items_with_prefix(ACCOUNT))


# --- a scene for fuzzing: records in every state ---------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """A market with deals and tasks in several states, so fuzzed ids can hit real records.

    - deal `revealing`: trust 1, its task 0 has one contribution (w1), which is consensus: REVEALING;
    - deal `active`: trust 3, its task 0 has one contribution (w2), not enough: ACTIVE;
    - deal `fresh`: volume 2, no task initialized.
    `block_times` are the deadlines' edges (7T contribution, 10T final) and two extremes.
    """

    market: Market
    deal_ids: tuple[bytes, ...]
    task_ids: tuple[bytes, ...]
    block_times: tuple[int, ...]

    def ledger(self) -> Ledger:
        """A fresh copy of the scene's ledger for one input (the chain rules are shared and stateless)."""
        return Ledger(self.market.ledger.rules, self.market.ledger.state.copy())


@functools.cache
def scene() -> Scene:
    """The one scene (built once per process: it signs a few dozen messages)."""
    market = Market.create()
    revealing = market.match(trust=1)
    revealing_task = market.ok("manager", InitializeTask(revealing, 0)).created
    market.ok("w1", market.contribution("w1", revealing_task, b"\x01" * 32))
    active = market.match(trust=3)
    active_task = market.ok("manager", InitializeTask(active, 0)).created
    market.ok("w2", market.contribution("w2", active_task, b"\x02" * 32))
    fresh = market.match(volume=2)
    now = market.now
    times = (now, now + 2 * T_MS, now + 7 * T_MS - 1, now + 7 * T_MS, now + 10 * T_MS - 1, now + 10 * T_MS, 0, 1 << 45)
    tasks = (revealing_task, active_task, task_id_for(fresh, 0), task_id_for(fresh, 1))
    return Scene(market, (revealing, active, fresh), tasks, times)


KEYS = {name: Keypair.from_name(name) for name in ACTORS}
FUNDED = tuple(name for name in ACTORS if name != "poor")


def sign_next(ledger: Ledger, name: str, body: Any) -> Transaction:
    """Sign `body` as actor `name` with the nonce the ledger expects next, so it reaches the body's rules."""
    nonce = ledger.state.view().account(KEYS[name].address).nonce
    return sign(KEYS[name], CHAIN_ID, Transaction(nonce, body))


# One meaningful transaction of every kind on the scene, as (sender, kind, body): each reaches its handler
# (no envelope rejection), so mutations of them start from transactions the ledger takes seriously.
SCENE_BODIES: list[tuple[str, str, Callable[[Scene], TxBody]]] = [
    ("w1", "transfer", lambda s: Transfer(KEYS["poor"].address, 5)),
    ("appdev", "register-app", lambda s: RegisterApp("app", b"\x33" * 32)),
    ("provider", "register-dataset", lambda s: RegisterDataset("data", b"\x44" * 32)),
    ("manager", "register-workerpool", lambda s: RegisterWorkerpool("pool", 20, 5)),
    ("requester", "match", lambda s: MatchOrders(s.market.app_order(salt=b"m"), None, s.market.pool_order(salt=b"m"),
                                                 s.market.request_order(dataset=bytes(20), dataset_max_price=0, salt=b"m"))),
    ("requester", "cancel", lambda s: CancelOrder(s.market.request_order(salt=b"c"))),
    ("manager", "initialize", lambda s: InitializeTask(s.deal_ids[2], 1)),
    ("w3", "contribute", lambda s: s.market.contribution("w3", s.task_ids[1], b"\x02" * 32)),
    ("w1", "reveal", lambda s: Reveal(s.task_ids[0], b"\x01" * 32)),
    ("manager", "finalize", lambda s: Finalize(s.task_ids[0], b"results")),
    ("manager", "reopen", lambda s: Reopen(s.task_ids[0])),
    ("requester", "claim", lambda s: Claim(s.deal_ids[2], 0)),
]

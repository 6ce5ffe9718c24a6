"""The workerpool manager: owns a workerpool, offers it with a workerpool order, and, when it is the next
block proposer, puts the matching engine's proposals into the mempool as MatchOrders transactions.

It sells only what it has: the offer's volume is the number of ready workers (certified, able to stake,
heard from recently); a pool without ready workers offers nothing and cancels what it offered, so no
request is matched to a pool that cannot run it.

Validation and proposing blocks are the consensus driver's job; this role only decides what to sell and
which matches to submit.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import trio

from node.net.identity import public_key_of
from node.net.streams import RequestHandler, RequestRejected
from node.roles.base import BaseRole, NodeAPI, market_view
from node.roles.scheduler import Scheduler
from node.work_messages import (
    POOL_PROTOCOL,
    Ack,
    Assignment,
    AuthorizationGrant,
    AuthorizeRequest,
    NoWork,
    PoolRequest,
    ReplicatesRequest,
    WorkRequest,
)
from protocols.attestation import verify_certificate
from protocols.chain import CommittedBlock
from protocols.crypto import address_of, hex_address
from protocols.encoding import DecodeError, decode, encode
from protocols.genesis import NRLC_PER_RLC, rlc_text
from protocols.ledger.state import WORKERPOOL
from protocols.ledger.transactions import CancelOrder, RegisterWorkerpool
from protocols.orderbook import propose_matches
from protocols.orders import NO_TAG, WorkerpoolOrder, workerpool_order

log = logging.getLogger(__name__)

# A worker told there is no work asks again after this long.
NO_WORK_RETRY_MS = 500
# MatchOrders transactions a manager submits per block it proposes: keeps a block's dry run short.
MAX_MATCHES_PER_BLOCK = 50
# The next proposer submits matches at once; a manager k places behind waits k times this long, so a
# crashed proposer delays matching by seconds, not for ever, while the usual case submits each match once.
BACKUP_DELAY_S = 2.0
# A match submitted but not committed by then (lost, or beaten by a conflicting one) may be submitted again.
RESUBMIT_AFTER_S = 10.0
# A worker counts as ready while it asked for work this recently (an idle worker asks every
# NO_WORK_RETRY_MS) or runs one of our replicates. Twenty missed polls: a busy machine is not "gone".
READY_WINDOW_S = 20 * NO_WORK_RETRY_MS / 1000


@dataclass(frozen=True)
class ManagerPolicy:
    """What the pool sells: price per task (nRLC), how many tasks per order, trust offered, category, tag."""

    price: int = NRLC_PER_RLC
    trust: int = 5
    category: int = 0
    tag: bytes = NO_TAG


class ManagerRole(BaseRole):
    name = "manager"

    def __init__(self, policy: ManagerPolicy | None = None) -> None:
        self.policy = policy or ManagerPolicy()
        self.workerpool: bytes | None = None
        self.offer: WorkerpoolOrder | None = None
        self._registering = False
        self.scheduler = Scheduler()
        self._first_seen: dict[bytes, float] = {}  # request hash -> when this manager first saw it
        self._submitted: dict[bytes, float] = {}  # request hash -> when this manager submitted a match
        self._polled: dict[bytes, float] = {}  # worker -> when it last asked for work (trio clock)
        self._cancelling: bytes | None = None  # the hash of an offer whose cancellation we submitted
        self._refused: dict[bytes, str] = {}  # worker -> why we last refused it (logged when it changes)

    async def start(self, api: NodeAPI) -> None:
        await self._ensure_workerpool(api)

    async def on_block(self, api: NodeAPI, height: int, committed: CommittedBlock) -> None:
        if self.workerpool is None:
            await self._ensure_workerpool(api)

    async def tick(self, api: NodeAPI, now: float) -> None:
        self.scheduler.pool_size = len(self.ready_workers(now))
        if self.workerpool is not None:
            await self._follow_capacity(api, now)
        rank = api.proposer_rank()
        if rank is not None:
            await self._submit_matches(api, rank, now)
        await self.scheduler.tick(api, now)

    def ready_workers(self, now: float) -> set[bytes]:
        self._polled = {w: t for w, t in self._polled.items() if now - t < READY_WINDOW_S}  # gone workers leave
        running = {w for work in self.scheduler.tasks.values() for w in work.assigned}
        return set(self._polled) | running

    def notes(self, api: NodeAPI) -> list[str]:
        if self.workerpool is None:
            return ["manager: registering its workerpool"]
        ready = len(self.ready_workers(trio.current_time()))
        left = self.offer.volume - api.ledger_view().consumed(self.offer.payload_digest) if self.offer else 0
        if left > 0:
            offer = f"offering {left} task(s) at {rlc_text(self.policy.price)}"
        else:
            offer = "offering nothing " + ("(no ready worker)" if ready == 0 else "(a new offer is on its way)")
        return [f"manager: workerpool {hex_address(self.workerpool)}: {ready} ready worker(s), {offer}"]

    async def _follow_capacity(self, api: NodeAPI, now: float) -> None:
        """Keep the offer's remaining volume equal to the ready workers: publish when workers come, cancel
        when the last one goes (a cancelled or spent offer is replaced at the new capacity)."""
        capacity = len(self.ready_workers(now))
        live = self.offer is not None and not self._spent(api, self.offer)
        if live and capacity == 0:
            assert self.offer is not None
            if self._cancelling != self.offer.payload_digest:
                self._cancelling = self.offer.payload_digest
                try:
                    await api.submit(CancelOrder(self.offer))
                    log.info("event=workerpool-order-withdrawn reason='no ready worker'")
                except ValueError as exc:
                    log.info("event=workerpool-order-not-withdrawn reason=%s", exc)
                    self._cancelling = None
        elif capacity > 0 and (not live or (self.offer is not None and capacity > self.offer.volume)):
            if live and self.offer is not None:
                try:
                    await api.submit(CancelOrder(self.offer))  # replaced by a larger one below
                except ValueError as exc:
                    log.info("event=workerpool-order-not-withdrawn reason=%s", exc)
            await self._publish_offer(api, capacity)

    def request_handlers(self, api: NodeAPI) -> dict[str, RequestHandler]:
        async def serve_pool(peer: str, data: bytes) -> bytes:
            return encode(self._pool_request(api, peer, data))

        return {POOL_PROTOCOL: serve_pool}

    def _pool_request(self, api: NodeAPI, peer: str, data: bytes) -> object:
        """`/pocnet/pool/1`: the stream's peer id authenticates the worker (Noise), so its account is known."""
        try:
            request = decode(PoolRequest, data)
        except DecodeError as exc:
            raise RequestRejected(f"malformed pool request: {exc.reason}") from None
        if isinstance(request, ReplicatesRequest):
            return self.scheduler.replicates(request.task_id)
        worker = address_of(public_key_of(peer))
        if isinstance(request, WorkRequest):
            reason = self._refusal(api, worker, request)
            if reason is not None:
                if self._refused.get(worker) != reason:  # a refused worker asks again every few seconds
                    log.warning("event=worker-refused worker=%s reason=%r", hex_address(worker), reason)
                self._refused[worker] = reason
                raise RequestRejected(reason)
            self._refused.pop(worker, None)
            now = trio.current_time()
            self._polled[worker] = now
            task_id = self.scheduler.next_task_for(api, worker, now)
            return Assignment(task_id) if task_id is not None else NoWork(NO_WORK_RETRY_MS)
        if isinstance(request, AuthorizeRequest):
            signature = self.scheduler.authorize(api, worker, request.task_id, request.enclave_public_key)
            if signature is None:
                raise RequestRejected("not-assigned: this worker has no replicate of that task")
            return AuthorizationGrant(signature)
        self.scheduler.record_report(api, worker, request, trio.current_time())
        return Ack()

    def _refusal(self, api: NodeAPI, worker: bytes, request: WorkRequest) -> str | None:
        """Why this worker may not join the pool now (None: it may), in words its operator can act on."""
        reason = verify_certificate(api.verifier, api.genesis.attestation_authorities, request.certificate, worker)
        if reason is not None:
            return f"{reason}: get a certificate with `pocnet worker certify`"
        if self.workerpool is None:
            return "no-workerpool-yet: this manager is still registering its pool, retry shortly"
        stake, free = self.worker_stake(api), api.ledger_view().account(worker).balance
        if free < stake:
            return (
                f"stake-too-low: a task of this pool locks {rlc_text(stake)} of the worker's stake and"
                f" {hex_address(worker)} has {rlc_text(free)} free: fund it with `pocnet account send`"
            )
        return None

    def _own_workerpool(self, api: NodeAPI) -> bytes | None:
        view = api.ledger_view()
        for key, pool in view.base.items_with_prefix(WORKERPOOL):
            if pool.owner == api.keypair.address:
                return key[len(WORKERPOOL):]
        return None

    async def _ensure_workerpool(self, api: NodeAPI) -> None:
        self.workerpool = self._own_workerpool(api)
        if self.workerpool is not None:
            log.info("event=workerpool-ready workerpool=%s", hex_address(self.workerpool))
            self._registering = False
        elif not self._registering:
            self._registering = True
            await api.submit(RegisterWorkerpool(f"pool of {hex_address(api.keypair.address)}"))
            log.info("event=workerpool-registering")

    async def _publish_offer(self, api: NodeAPI, volume: int) -> None:
        assert self.workerpool is not None
        p = self.policy
        unsigned = workerpool_order(self.workerpool, p.price, p.category, p.trust, os.urandom(16), volume=volume, tag=p.tag)
        try:
            self.offer = await api.publish_order(unsigned)
        except ValueError as exc:  # e.g. the pool's registration is not in our ledger yet: next tick retries
            log.info("event=workerpool-order-not-published reason=%s", exc)
            return
        log.info("event=workerpool-order-published price=%d volume=%d trust=%d", p.price, volume, p.trust)

    def worker_stake(self, api: NodeAPI) -> int:
        """What a worker must have free to contribute to a task at our price (PoCo's worker stake ratio)."""
        assert self.workerpool is not None
        pool = api.ledger_view().workerpool(self.workerpool)
        return self.policy.price * pool.worker_stake_ratio // 100 if pool is not None else 0

    def _spent(self, api: NodeAPI, order: WorkerpoolOrder) -> bool:
        return api.ledger_view().consumed(order.payload_digest) >= order.volume

    async def _submit_matches(self, api: NodeAPI, rank: int, now: float) -> None:
        """Submit the engine's matches for requests this manager's turn covers (see BACKUP_DELAY_S)."""
        book = api.order_book
        live = {r.payload_digest for r in book.requests()}
        self._first_seen = {h: t for h, t in self._first_seen.items() if h in live}
        self._submitted = {h: t for h, t in self._submitted.items() if h in live and now - t < RESUBMIT_AFTER_S}
        for request_hash in live:
            self._first_seen.setdefault(request_hash, now)
        view = market_view(api)
        for match in propose_matches(book, view, book.verifier, MAX_MATCHES_PER_BLOCK):
            request_hash = match.request_order.payload_digest
            if request_hash in self._submitted or now - self._first_seen[request_hash] < rank * BACKUP_DELAY_S:
                continue
            self._submitted[request_hash] = now
            try:
                await api.submit(match)
            except ValueError as exc:
                log.info("event=match-not-submitted request=%s reason=%s", request_hash.hex()[:16], exc)
                continue
            log.info(
                "event=match-submitted request=%s workerpool=%s rank=%d",
                request_hash.hex()[:16], hex_address(match.workerpool_order.workerpool), rank,
            )

"""The worker: joins one manager's pool, runs iApps in the emulated enclave, contributes, reveals, and
serves its sealed results (DESIGN.md sections 6-7).

For each replicate: fetch and verify the app bundle from its owner's node; make an ephemeral enclave key;
get the manager's authorization of that key; have the platform quote (measurement, enclave key, worker,
task); if the deal has a dataset, fetch the encrypted blob and obtain its key from the owner with the
quote; run the enclave; seal the result archive to the requester; contribute (result hash, seal, enclave
key, attestation) and tell the manager where the sealed result is. When the ledger reaches consensus on
our result hash, reveal. With `dishonest`, the worker lies about its result digest (for tests and demos).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import trio

from node.blobs import BLOB_PROTOCOL, BlobError, fetch_blob
from node.directory import reach
from node.keys import PLATFORM_CERT_FILE, PLATFORM_KEY_FILE
from node.enclave.runner import Limits, SealedDataset, TaskSpec, run_enclave
from node.enclave.sealing import seal_result
from node.net.streams import RequestError
from node.roles.base import NodeAPI
from node.work_messages import (
    KEYS_PROTOCOL,
    POOL_PROTOCOL,
    Assignment,
    AuthorizationGrant,
    AuthorizeRequest,
    KeyGrant,
    KeyRequest,
    NoWork,
    PoolResponse,
    ResultReport,
    WorkRequest,
)
from protocols.attestation import PlatformCertificate, make_attestation, make_quote
from protocols.chain import CommittedBlock
from protocols.crypto import Keypair, hex_address
from protocols.encoding import DecodeError, decode, encode
from protocols.ledger.poco import result_hash, result_seal
from protocols.ledger.records import ContributionStatus, Task, TaskStatus
from protocols.ledger.transactions import Contribute, Reveal

log = logging.getLogger(__name__)

# Bundles and datasets a worker accepts; an owner offering more is refused rather than filling the disk.
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
MAX_DATASET_BYTES = 256 * 1024 * 1024
POOL_TIMEOUT_S = 5.0
# Between two requests for work when the manager cannot be reached.
RETRY_S = 1.0
# How long a worker waits for its node to learn of an assigned task (the manager may be a block ahead).
TASK_LAG_S = 5.0


@dataclass
class Contributed:
    task_id: bytes
    digest: bytes


class WorkerRole:
    name = "worker"

    def __init__(self, data_dir: Path, manager: bytes | None, dishonest: bool = False) -> None:
        self.data_dir = data_dir
        self.manager = manager
        self.dishonest = dishonest
        self.platform: Keypair | None = None
        self.certificate: PlatformCertificate | None = None
        self._to_reveal: dict[bytes, bytes] = {}  # task id -> result digest
        self._load_platform()

    def _load_platform(self) -> None:
        key_path, cert_path = self.data_dir / PLATFORM_KEY_FILE, self.data_dir / PLATFORM_CERT_FILE
        if key_path.exists() and cert_path.exists():
            self.platform = Keypair(key_path.read_bytes())
            self.certificate = decode(PlatformCertificate, cert_path.read_bytes())

    async def start(self, api: NodeAPI) -> None:
        if self.certificate is None:
            log.error("event=worker-idle reason='no platform certificate' files=%s,%s", PLATFORM_KEY_FILE, PLATFORM_CERT_FILE)
        elif self.manager is None:
            log.error("event=worker-idle reason='no manager: start the node with --manager ADDRESS'")
        else:
            log.info("event=role-started role=worker manager=%s dishonest=%s", hex_address(self.manager), self.dishonest)

    def request_handlers(self, api: NodeAPI) -> dict[str, object]:
        return {}

    async def tick(self, api: NodeAPI, now: float) -> None:
        return None

    async def on_block(self, api: NodeAPI, height: int, committed: CommittedBlock) -> None:
        """Reveal where the ledger reached consensus on our contribution."""
        view = api.ledger_view()
        for task_id, digest in list(self._to_reveal.items()):
            task = view.task(task_id)
            contribution = view.contribution(task_id, api.keypair.address)
            if task is None or task.status >= TaskStatus.COMPLETED:
                self._to_reveal.pop(task_id)
                continue
            if contribution is None:
                continue  # our contribution is not in a block yet
            if (
                task.status == TaskStatus.REVEALING
                and contribution.status == ContributionStatus.CONTRIBUTED
                and contribution.result_hash == task.consensus_value
            ):
                self._to_reveal.pop(task_id)
                try:
                    await api.submit(Reveal(task_id, digest))
                    log.info("event=reveal-submitted task=%s", task_id.hex()[:16])
                except ValueError as exc:
                    log.warning("event=reveal-refused task=%s reason=%s", task_id.hex()[:16], exc)

    # --- the work loop -----------------------------------------------------------------------------------

    async def run(self, api: NodeAPI) -> None:
        if self.certificate is None or self.manager is None:
            return
        while True:
            peer = await self._manager_peer(api)
            if peer is None:
                await trio.sleep(RETRY_S)
                continue
            try:
                answer = await self._pool(api, peer, WorkRequest(self.certificate))
            except (RequestError, DecodeError) as exc:
                log.info("event=pool-unreachable manager=%s reason=%r", hex_address(self.manager), str(exc))
                await trio.sleep(RETRY_S)
                continue
            if isinstance(answer, NoWork):
                await trio.sleep(answer.retry_after_ms / 1000)
            elif isinstance(answer, Assignment):
                try:
                    await self.execute(api, peer, answer.task_id)
                except Exception:  # one failed replicate must not end the worker
                    log.exception("event=replicate-failed task=%s", answer.task_id.hex()[:16])

    async def _manager_peer(self, api: NodeAPI) -> str | None:
        assert self.manager is not None
        return await reach(api.host, api.directory, self.manager)

    async def _pool(self, api: NodeAPI, peer: str, request: object) -> PoolResponse:
        return decode(PoolResponse, await api.host.request(peer, POOL_PROTOCOL, encode(request), POOL_TIMEOUT_S))

    async def execute(self, api: NodeAPI, manager_peer: str, task_id: bytes) -> None:
        assert self.platform is not None and self.certificate is not None
        task = await _known_task(api, task_id)
        if task is None:
            log.warning("event=replicate-dropped task=%s reason='task unknown to this node'", task_id.hex()[:16])
            return
        view = api.ledger_view()
        deal = view.deal(task.deal_id)
        app = view.app(deal.app.pointer) if deal else None
        assert deal is not None and app is not None
        me = api.keypair.address
        log.info("event=replicate-started task=%s app=%s", task_id.hex()[:16], hex_address(deal.app.pointer))
        bundle = await self._fetch(api, app.owner, app.measurement, MAX_BUNDLE_BYTES)
        enclave_key = Keypair.generate()
        grant = await self._pool(api, manager_peer, AuthorizeRequest(task_id, enclave_key.public_key))
        if not isinstance(grant, AuthorizationGrant):
            raise RuntimeError(f"manager did not authorize the enclave: {grant}")
        quote = make_quote(self.platform, api.genesis.chain_id, app.measurement, enclave_key.public_key, me, task_id)
        sealed_dataset = None
        dataset_name = ""
        dataset = view.dataset(deal.dataset.pointer)
        if dataset is not None:
            blob = await self._fetch(api, dataset.owner, dataset.blob_hash, MAX_DATASET_BYTES)
            owner_peer = await reach(api.host, api.directory, dataset.owner)
            if owner_peer is None:
                raise RuntimeError(f"dataset owner {hex_address(dataset.owner)} unreachable")
            request = KeyRequest(task_id, self.certificate, quote, grant.authorization)
            answer = decode(KeyGrant, await api.host.request(owner_peer, KEYS_PROTOCOL, encode(request), POOL_TIMEOUT_S))
            sealed_dataset = SealedDataset(blob, answer.sealed_key)  # only the enclave opens the key
            dataset_name = "0x" + deal.dataset.pointer.hex()
        args = _iexec_args(deal.params)
        spec = TaskSpec(
            task_id=task_id, deal_id=task.deal_id, index=task.index, args=args,
            dataset_filename=dataset_name, sealed_dataset=sealed_dataset,
        )
        with tempfile.TemporaryDirectory(prefix="enclave-", dir=self.data_dir) as workdir:
            outcome = await run_enclave(bundle, app.measurement, spec, Limits(), Path(workdir), enclave_key=enclave_key)
        if not outcome.ok:
            log.warning("event=enclave-failed task=%s reason=%s detail=%r stderr=%r", task_id.hex()[:16],
                        outcome.reason, outcome.detail[:200], outcome.stderr[-500:])
            return
        digest = outcome.digest
        if self.dishonest:
            digest = hashlib.sha256(digest + b"dishonest").digest()
            log.warning("event=dishonest-result task=%s", task_id.hex()[:16])
        sealed_blob = api.blobs.put(seal_result(outcome.archive, deal.requester_key))
        rhash, rseal = result_hash(task_id, digest), result_seal(me, task_id, digest)
        attestation = make_attestation(self.certificate, quote, enclave_key, api.genesis.chain_id, rhash, rseal)
        await api.submit(Contribute(task_id, rhash, rseal, enclave_key.public_key, attestation, grant.authorization))
        self._to_reveal[task_id] = digest
        await self._pool(api, manager_peer, ResultReport(task_id, sealed_blob))
        log.info("event=contributed task=%s result_blob=%s", task_id.hex()[:16], sealed_blob.hex()[:16])

    async def _fetch(self, api: NodeAPI, owner: bytes, blob_hash: bytes, max_bytes: int) -> bytes:
        cached = api.blobs.get(blob_hash)
        if cached is not None:
            return cached
        peer = await reach(api.host, api.directory, owner)
        if peer is None:
            raise BlobError(f"the node of {hex_address(owner)} is not reachable")
        data = await fetch_blob(api.host, peer, blob_hash, max_bytes, BLOB_PROTOCOL)
        api.blobs.put(data)
        return data


def _iexec_args(params: str) -> tuple[str, ...]:
    """PoCo params: a JSON object with `iexec_args`, or (not JSON) the raw args (reference section 1)."""
    try:
        parsed = json.loads(params) if params else {}
    except json.JSONDecodeError:
        return tuple(params.split())
    args = parsed.get("iexec_args", "") if isinstance(parsed, dict) else ""
    return tuple(str(args).split())


async def _known_task(api: NodeAPI, task_id: bytes) -> Task | None:
    """The task as our ledger has it. The manager assigns from its own ledger, which may be a block ahead of
    ours (the block that initialized the task): wait for our node to catch up, for a bounded time."""
    with trio.move_on_after(TASK_LAG_S):
        while (task := api.ledger_view().task(task_id)) is None:
            await trio.sleep(0.05)
        return task
    return None

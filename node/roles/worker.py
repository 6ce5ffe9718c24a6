"""The worker: joins one manager's pool, runs iApps in the emulated enclave, contributes, reveals, and
serves its sealed results (DESIGN.md sections 6-7).

For each replicate: fetch and verify the app bundle from its owner's node; make an ephemeral enclave key;
get the manager's authorization of that key; have the platform quote (measurement, enclave key, worker,
task); if the deal has a dataset, fetch the encrypted blob and obtain its key from the owner with the
quote; run the enclave; seal the result archive to the requester; contribute (result hash, seal, enclave
key, attestation) and tell the manager where the sealed result is. Whatever the ending, the manager hears
it (`ReplicateReport`: a reason code, and the app's output sealed to the requester), so a failure reaches
the requester and the scheduler can tell an app that always fails from a worker that could not run it.
When the ledger reaches consensus on our result hash, reveal. With `dishonest`, the worker lies about its
result digest (for tests and demos).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import tempfile
from dataclasses import replace
from pathlib import Path

import trio

from node.blobs import BLOB_PROTOCOL, BlobError, fetch_blob
from node.consensus_driver import wall_ms
from node.directory import reach
from node.enclave.runner import EnclaveOutcome, SealedDataset, TaskSpec, run_enclave
from node.enclave.sandbox import Confinement, Limits, probe
from node.enclave.sealing import seal_result
from node.keys import PLATFORM_CERT_FILE, PLATFORM_KEY_FILE, write_key
from node.net.streams import RemoteError, RequestError
from node.roles.base import BaseRole, NodeAPI
from node.work_messages import (
    ATTEST_PROTOCOL,
    KEYS_PROTOCOL,
    MAX_DETAIL,
    OK,
    POOL_PROTOCOL,
    Assignment,
    AuthorizationGrant,
    AuthorizeRequest,
    CertificateGrant,
    CertifyRequest,
    KeyGrant,
    NoWork,
    PoolResponse,
    ReplicateReport,
    ResultLocation,
    WorkRequest,
)
from protocols.attestation import PlatformCertificate, make_attestation, make_quote, verify_certificate
from protocols.chain import CommittedBlock
from protocols.crypto import Keypair, address_of, hex_address
from protocols.encoding import DecodeError, decode, encode
from protocols.key_release import KeyRequest
from protocols.ledger.poco import result_hash, result_seal
from protocols.ledger.records import ContributionStatus, Task, TaskStatus
from protocols.ledger.transactions import Contribute, ContributeAndFinalize, Reveal

log = logging.getLogger(__name__)

# Bundles and datasets a worker accepts; an owner offering more is refused rather than filling the disk.
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
MAX_DATASET_BYTES = 256 * 1024 * 1024
POOL_TIMEOUT_S = 5.0
# Between two requests for work when the manager cannot be reached.
RETRY_S = 1.0
# How long a worker waits for its node to learn of an assigned task (the manager may be a block ahead).
TASK_LAG_S = 5.0
# A worker that cannot work (no certificate, no stake, refused by its manager) checks again this often.
NOT_READY_RETRY_S = 2.0
# The shortest wall clock an app is given, even when the contribution deadline is nearer.
MIN_RUN_S = 1.0
# How much of the app's stdout and stderr each goes into the sealed logs the requester can read.
LOG_TAIL_BYTES = 16 * 1024


class WorkerRole(BaseRole):
    """Ready to work once its platform is certified, its manager is set and it can stake; until then it
    says why (in `pocnet status` and in its log) and asks for no task. Certification is a command away
    (`pocnet worker certify`, see `certify`), so a worker joined by hand needs no restart."""

    name = "worker"

    def __init__(self, data_dir: Path, manager: bytes | None, dishonest: bool = False) -> None:
        self.data_dir = data_dir
        self.manager = manager
        self.dishonest = dishonest
        self.platform: Keypair | None = None
        self.certificate: PlatformCertificate | None = None
        self.manager_says = ""  # the manager's last refusal of our request for work
        self.unreachable = ""  # why the manager could not be asked, while it cannot
        self.confinement: Confinement | None = None  # what the sandbox can do here, probed at start
        self.contributions = 0
        self._certified = trio.Event()  # set by `certify`: a waiting worker need not wait for its next check
        self._to_reveal: dict[bytes, bytes] = {}  # task id -> result digest
        self._load_platform()

    def _load_platform(self) -> None:
        """The platform key and its certificate from the data directory. Damaged files are set aside (renamed
        `*.unusable`) with a log line: the worker then reports itself uncertified, and `pocnet worker certify`
        makes a new key and gets it certified."""
        key_path, cert_path = self.data_dir / PLATFORM_KEY_FILE, self.data_dir / PLATFORM_CERT_FILE
        try:
            if key_path.exists():
                self.platform = Keypair(key_path.read_bytes())
            if self.platform is not None and cert_path.exists():
                certificate = decode(PlatformCertificate, cert_path.read_bytes())
                if certificate.platform_public_key == self.platform.public_key:
                    self.certificate = certificate
        except (ValueError, DecodeError, OSError) as exc:
            log.error("event=platform-files-unusable reason=%r fix='pocnet worker certify'", str(exc))
            self.platform = self.certificate = None
            for path in (key_path, cert_path):
                if path.exists():
                    path.replace(path.with_name(path.name + ".unusable"))

    def problems(self, api: NodeAPI) -> list[str]:
        """Why this worker cannot take a task now, each with what to do; empty when it can."""
        found = self._own_problems(api)
        if self.manager_says:
            found.append(f"the manager refused: {self.manager_says}")
        if self.unreachable:
            found.append(f"the manager cannot be reached ({self.unreachable}): check --manager and --join")
        return found

    def _own_problems(self, api: NodeAPI) -> list[str]:
        """What this node can see for itself; the rest is learnt by asking the manager for work."""
        found = []
        if self.certificate is None:
            found.append("no platform certificate: run `pocnet worker certify` (asks the genesis's attestation authority)")
        elif reason := verify_certificate(api.verifier, api.genesis.attestation_authorities, self.certificate, api.keypair.address):
            found.append(f"platform certificate refused ({reason}): run `pocnet worker certify` again")
        if self.manager is None:
            found.append("no manager: restart the node with --manager ADDRESS (the pool to join)")
        if api.ledger_view().account(api.keypair.address).balance == 0:
            found.append(
                f"no RLC to stake: fund {hex_address(api.keypair.address)} (`pocnet account send --to ADDRESS"
                " --amount RLC` from a funded node)"
            )
        return found

    def notes(self, api: NodeAPI) -> list[str]:
        problems = self.problems(api)
        if problems:
            return [f"worker: NOT READY: {p}" for p in problems]
        manager = hex_address(self.manager) if self.manager else "?"
        sandbox = ""
        if self.confinement is not None and not self.confinement.full:
            sandbox = f"; sandbox degraded ({self.confinement.detail}): apps are not isolated from this machine"
        return [f"worker: ready, in the pool of manager {manager}; {self.contributions} contribution(s) since start{sandbox}"]

    async def start(self, api: NodeAPI) -> None:
        self.confinement = await trio.to_thread.run_sync(probe)  # blocking, once (~50 ms)
        log.info("event=role-started role=worker manager=%s dishonest=%s",
                 hex_address(self.manager) if self.manager else None, self.dishonest)

    async def certify(self, api: NodeAPI, authority: bytes | None) -> CertificateGrant:
        """Get this worker's platform key (made on first use, 0600) certified by an attestation authority of
        the genesis (`authority`, or each one in turn), store the certificate and start using it.
        Raises CertifyError with what went wrong."""
        key_path = self.data_dir / PLATFORM_KEY_FILE
        if self.platform is None:
            self.platform = Keypair.generate()
            write_key(key_path, self.platform)
        authorities = [authority] if authority else [address_of(k) for k in api.genesis.attestation_authorities]
        if not authorities:
            raise CertifyError("the genesis names no attestation authority")
        reasons = []
        for account in authorities:
            peer = await reach(api.host, api.directory, account)
            if peer is None:
                reasons.append(f"authority {hex_address(account)} is not reachable")
                continue
            try:
                answer = await api.host.request(
                    peer, ATTEST_PROTOCOL, encode(CertifyRequest(self.platform.public_key)), POOL_TIMEOUT_S
                )
                grant = decode(CertificateGrant, answer)
            except (RequestError, DecodeError) as exc:
                reasons.append(f"authority {hex_address(account)}: {exc}")
                continue
            reason = verify_certificate(api.verifier, api.genesis.attestation_authorities, grant.certificate, api.keypair.address)
            if reason is not None or grant.certificate.platform_public_key != self.platform.public_key:
                reasons.append(f"authority {hex_address(account)} sent an unusable certificate ({reason or 'another key'})")
                continue
            tmp = self.data_dir / (PLATFORM_CERT_FILE + ".tmp")
            tmp.write_bytes(encode(grant.certificate))
            tmp.replace(self.data_dir / PLATFORM_CERT_FILE)
            self.certificate = grant.certificate
            self._certified.set()
            self._certified = trio.Event()
            log.info("event=platform-certified authority=%s policy=%r", hex_address(account), grant.policy)
            return grant
        raise CertifyError("; ".join(reasons))

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
        said: list[str] = []
        while True:
            problems = self.problems(api)
            if problems != said:
                for problem in problems:
                    log.warning("event=worker-not-ready reason=%r", problem)
                if not problems:
                    log.info("event=worker-ready manager=%s", hex_address(self.manager or b""))
                said = problems
            if self._own_problems(api):
                with trio.move_on_after(NOT_READY_RETRY_S):
                    await self._certified.wait()
                continue
            await self._ask_for_work(api)

    async def _ask_for_work(self, api: NodeAPI) -> None:
        assert self.manager is not None and self.certificate is not None
        peer = await reach(api.host, api.directory, self.manager)
        if peer is None:
            self._cannot_reach("no node of that account is known to our peers")
            await trio.sleep(RETRY_S)
            return
        try:
            answer = await self._pool(api, peer, WorkRequest(self.certificate))
        except RemoteError as exc:
            self.manager_says = str(exc)  # shown in status; asked again after a pause
            await trio.sleep(NOT_READY_RETRY_S)
            return
        except (RequestError, DecodeError) as exc:
            self._cannot_reach(str(exc))
            await trio.sleep(RETRY_S)
            return
        self.manager_says = self.unreachable = ""
        if isinstance(answer, NoWork):
            await trio.sleep(answer.retry_after_ms / 1000)
        elif isinstance(answer, Assignment):
            report = await self._replicate(api, peer, answer.task_id)
            if report is not None:
                api.metrics.replicates.labels(report.outcome).inc()
                await self._report(api, peer, report)

    def _cannot_reach(self, reason: str) -> None:
        if reason != self.unreachable:
            log.warning("event=pool-unreachable manager=%s reason=%r", hex_address(self.manager or b""), reason)
        self.unreachable = reason

    async def _report(self, api: NodeAPI, manager_peer: str, report: ReplicateReport) -> None:
        try:
            await self._pool(api, manager_peer, report)
        except (RequestError, DecodeError) as exc:
            log.warning("event=report-lost task=%s reason=%r", report.task_id.hex()[:16], str(exc))

    async def _pool(self, api: NodeAPI, peer: str, request: object) -> PoolResponse:
        return decode(PoolResponse, await api.host.request(peer, POOL_PROTOCOL, encode(request), POOL_TIMEOUT_S))

    async def _replicate(self, api: NodeAPI, manager_peer: str, task_id: bytes) -> ReplicateReport | None:
        """Run one replicate; how it ended, for the manager (None: nothing to say, the task is unknown)."""
        try:
            return await self.execute(api, manager_peer, task_id)
        except ReplicateFailed as failure:
            log.warning("event=replicate-failed task=%s reason=%s detail=%r", task_id.hex()[:16], failure.reason, failure.detail)
            return ReplicateReport(task_id, failure.reason, failure.detail[:MAX_DETAIL], b"", b"")
        except Exception as exc:  # one failed replicate must not end the worker; the manager hears why
            log.exception("event=replicate-failed task=%s", task_id.hex()[:16])
            return ReplicateReport(task_id, "worker-error", f"{type(exc).__name__}: {exc}"[:MAX_DETAIL], b"", b"")

    async def execute(self, api: NodeAPI, manager_peer: str, task_id: bytes) -> ReplicateReport | None:
        assert self.platform is not None and self.certificate is not None
        task = await _known_task(api, task_id)
        if task is None:
            log.warning("event=replicate-dropped task=%s reason='task unknown to this node'", task_id.hex()[:16])
            return ReplicateReport(task_id, "task-unknown", "the worker's node does not know the task yet", b"", b"")
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
            raise ReplicateFailed("not-authorized", f"manager did not authorize the enclave: {grant}")
        quote = make_quote(self.platform, api.genesis.chain_id, app.measurement, enclave_key.public_key, me, task_id)
        sealed_dataset = None
        dataset_name = ""
        dataset = view.dataset(deal.dataset.pointer)
        if dataset is not None:
            blob = await self._fetch(api, dataset.owner, dataset.blob_hash, MAX_DATASET_BYTES)
            owner_peer = await reach(api.host, api.directory, dataset.owner)
            if owner_peer is None:
                raise ReplicateFailed("dataset-owner-unreachable", f"dataset owner {hex_address(dataset.owner)} unreachable")
            request = KeyRequest(task_id, self.certificate, quote, grant.authorization)
            try:
                answer = decode(KeyGrant, await api.host.request(owner_peer, KEYS_PROTOCOL, encode(request), POOL_TIMEOUT_S))
            except RemoteError as exc:
                raise ReplicateFailed("dataset-key-refused", str(exc)) from None
            sealed_dataset = SealedDataset(blob, answer.sealed_key)  # only the enclave opens the key
            dataset_name = "0x" + deal.dataset.pointer.hex()
        spec = TaskSpec(
            task_id=task_id, deal_id=task.deal_id, index=task.index, args=_iexec_args(deal.params),
            dataset_filename=dataset_name, sealed_dataset=sealed_dataset,
        )
        limits = limits_before(task.contribution_deadline, wall_ms())
        with tempfile.TemporaryDirectory(prefix="enclave-", dir=self.data_dir) as workdir:
            outcome = await run_enclave(bundle, app.measurement, spec, limits, Path(workdir), enclave_key=enclave_key)
        api.metrics.enclave_run.labels(outcome.reason or OK).observe(outcome.duration_s)
        logs_blob = api.blobs.put(seal_result(_logs(outcome), deal.requester_key))
        if not outcome.ok:
            log.warning("event=enclave-failed task=%s reason=%s detail=%r stderr=%r", task_id.hex()[:16],
                        outcome.reason, outcome.detail[:200], outcome.stderr[-500:])
            return ReplicateReport(task_id, outcome.reason, outcome.detail[:MAX_DETAIL], b"", logs_blob)
        digest = outcome.digest
        if self.dishonest:
            digest = hashlib.sha256(digest + b"dishonest").digest()
            log.warning("event=dishonest-result task=%s", task_id.hex()[:16])
        sealed_blob = api.blobs.put(seal_result(outcome.archive, deal.requester_key))
        rhash, rseal = result_hash(task_id, digest), result_seal(me, task_id, digest)
        attestation = make_attestation(self.certificate, quote, enclave_key, api.genesis.chain_id, rhash, rseal)
        body: Contribute | ContributeAndFinalize = Contribute(
            task_id, rhash, rseal, enclave_key.public_key, attestation, grant.authorization
        )
        if deal.trust == 1 and not api.ledger_view().task(task_id).contributors:  # type: ignore[union-attr]
            # PoCo's contributeAndFinalize: the first contribution of a trust-1 task is its consensus, so
            # one transaction completes it (no stake, no reveal, no finalize by the pool).
            location = encode(ResultLocation(me, sealed_blob))
            body = ContributeAndFinalize(task_id, digest, location, enclave_key.public_key, attestation, grant.authorization)
        try:
            await api.submit(body)
        except ValueError as exc:
            raise ReplicateFailed("contribution-refused", str(exc)) from None
        if isinstance(body, Contribute):
            self._to_reveal[task_id] = digest
        self.contributions += 1
        log.info("event=contributed task=%s result_blob=%s", task_id.hex()[:16], sealed_blob.hex()[:16])
        return ReplicateReport(task_id, OK, "", sealed_blob, logs_blob)

    async def _fetch(self, api: NodeAPI, owner: bytes, blob_hash: bytes, max_bytes: int) -> bytes:
        cached = api.blobs.get(blob_hash)
        if cached is not None:
            return cached
        peer = await reach(api.host, api.directory, owner)
        if peer is None:
            raise ReplicateFailed("owner-unreachable", f"the node of {hex_address(owner)} is not reachable")
        try:
            data = await fetch_blob(api.host, peer, blob_hash, max_bytes, BLOB_PROTOCOL)
        except BlobError as exc:
            raise ReplicateFailed("fetch-failed", str(exc)) from None
        api.blobs.put(data)
        return data


class ReplicateFailed(Exception):
    """A replicate that could not run or contribute, with a reason code for the manager and the requester."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class CertifyError(Exception):
    """No attestation authority certified the platform key; the message says why, per authority."""


def limits_before(contribution_deadline_ms: int, now_ms: int) -> Limits:
    """The sandbox limits for a replicate: its wall clock ends at the task's contribution deadline (a result
    after it cannot count), so a runaway app holds the worker no longer than its category allows."""
    default = Limits()
    left_s = max(MIN_RUN_S, (contribution_deadline_ms - now_ms) / 1000)
    wall = min(default.wall_clock_seconds, left_s)
    return replace(default, wall_clock_seconds=wall, cpu_seconds=min(default.cpu_seconds, max(1, math.ceil(wall))))


def _logs(outcome: EnclaveOutcome) -> bytes:
    """What the requester reads with `pocnet task debug --logs`: the ending and the app's output tails."""
    return json.dumps({
        "outcome": outcome.reason or OK,
        "detail": outcome.detail,
        "exit_code": outcome.exit_code,
        "seconds": round(outcome.duration_s, 3),
        "stdout": outcome.stdout[-LOG_TAIL_BYTES:].decode(errors="replace"),
        "stderr": outcome.stderr[-LOG_TAIL_BYTES:].decode(errors="replace"),
    }, sort_keys=True).encode()


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
        while api.ledger_view().task(task_id) is None:
            await trio.sleep(0.05)
    return api.ledger_view().task(task_id)

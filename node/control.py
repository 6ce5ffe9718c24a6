"""The local control API: typed requests over a Unix socket in the data directory (DESIGN.md section 9).

Filesystem permissions on the socket are the access control: whoever can open it acts as the node's
account. Frames are a 4-byte big-endian length and one canonical wire value; a request is one of the
`*Request` types, the answer one of the result types or `ControlError`. The node signs on the caller's
behalf, so nonces are managed in one place.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import trio

from node.trio_compat import TaskStatus
from node.work_messages import ReplicateInfo
from protocols.crypto import Address
from protocols.encoding import U64, UINT64_MAX, Bytes32, DecodeError, MaxLen, Range, decode, encode, wire
from protocols.ledger.records import App, Contribution, Dataset, Deal, Task, Workerpool
from protocols.ledger.transactions import Transaction, TxBody
from protocols.orders import Order

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
# Requests are small; answers carry at most an order book page or a few blocks.
MAX_FRAME = 8 * 1024 * 1024
# A client that connects and then says nothing is dropped after this long.
REQUEST_TIMEOUT_S = 30
Text = Annotated[str, MaxLen(1024)]
OptionalAddress = Annotated[bytes, MaxLen(20)]  # empty: none given
# A listing answers with at most this many entries, newest first: a page a terminal or a browser can show.
MAX_LIST = 500


@wire(tag=90)
@dataclass(frozen=True)
class StatusRequest:
    pass


@wire(tag=91)
@dataclass(frozen=True)
class NodeStatus:
    peer_id: Text
    address: Address
    roles: tuple[Text, ...]
    listen_addrs: tuple[Text, ...]
    height: U64
    tip_hash: Annotated[bytes, MaxLen(32)]
    tip_time: U64
    peers: U64
    mempool: U64
    orders: U64
    validator: bool
    # One line per role on what it does or why it cannot ("worker: NOT READY: no platform certificate: ...").
    notes: Annotated[tuple[Text, ...], MaxLen(32)] = ()
    # Proven equivocations of validators recorded on the ledger (RecordEquivocation transactions).
    equivocations: U64 = 0
    http: Text = ""  # the explorer's base URL ("" when the node serves none)
    link_addrs: tuple[Text, ...] = ()  # a validator's consensus link host (node/net/link_host.py)


@wire(tag=92)
@dataclass(frozen=True)
class AccountRequest:
    address: Annotated[bytes, MaxLen(20)]  # empty: the node's own account


@wire(tag=93)
@dataclass(frozen=True)
class AccountInfo:
    address: Address
    balance: U64
    frozen: U64
    nonce: U64
    score: U64


@wire(tag=94)
@dataclass(frozen=True)
class SubmitRequest:
    """Sign `body` with the node's key and the next nonce, admit it to the mempool and gossip it."""

    body: TxBody


@wire(tag=95)
@dataclass(frozen=True)
class TxSubmitted:
    tx_id: Bytes32
    nonce: U64


@wire(tag=96)
@dataclass(frozen=True)
class TxResultRequest:
    tx_id: Bytes32


@wire(tag=97)
@dataclass(frozen=True)
class TxResultInfo:
    """`height` 0 means not committed yet (`code` then says "pending" or why the mempool dropped it)."""

    height: U64
    code: Text
    created: Annotated[bytes, MaxLen(32)]


@wire(tag=98)
@dataclass(frozen=True)
class OrderbookRequest:
    """The book, filtered: every filter left at its default lets every order through."""

    kind: Text  # "app", "dataset", "workerpool", "request" or "" for all
    app: OptionalAddress = b""
    dataset: OptionalAddress = b""
    workerpool: OptionalAddress = b""
    requester: OptionalAddress = b""
    category: Annotated[int, Range(-1, UINT64_MAX)] = -1  # -1: any category
    min_trust: U64 = 0
    tag: Annotated[bytes, MaxLen(32)] = b""  # orders whose tag has all these bits


@wire(tag=200)
@dataclass(frozen=True)
class OrderRequest:
    """One order of the book by its id or an unambiguous prefix of it; answered with a one-order OrderList."""

    order_id: Annotated[bytes, MaxLen(32)]


@wire(tag=99)
@dataclass(frozen=True)
class OrderList:
    orders: tuple[Order, ...]
    remaining: tuple[U64, ...] = ()  # per order: its volume not yet consumed on the ledger


@wire(tag=100)
@dataclass(frozen=True)
class PublishOrderRequest:
    """Sign `order` (its signature field is ignored) with the node's key and publish it."""

    order: Order


@wire(tag=101)
@dataclass(frozen=True)
class OrderPublished:
    order_hash: Bytes32


@wire(tag=103)
@dataclass(frozen=True)
class DealRequest:
    deal_id: Bytes32


@wire(tag=104)
@dataclass(frozen=True)
class DealInfo:
    """The deal as the node's ledger has it (None: not known, or not committed yet)."""

    deal_id: Bytes32
    deal: Deal | None
    height: U64  # the node's height when it answered


@wire(tag=105)
@dataclass(frozen=True)
class DeployAppRequest:
    """Store a bundle as a blob served to workers and register the app by its measurement."""

    name: Annotated[str, MaxLen(128)]
    bundle: bytes


@wire(tag=106)
@dataclass(frozen=True)
class DeployDatasetRequest:
    """Encrypt a dataset (the node keeps the key), store the ciphertext as a blob, register the dataset."""

    name: Annotated[str, MaxLen(128)]
    plaintext: bytes


@wire(tag=107)
@dataclass(frozen=True)
class Deployed:
    tx_id: Bytes32
    content_hash: Bytes32  # the measurement (app) or the encrypted blob hash (dataset)


@wire(tag=108)
@dataclass(frozen=True)
class RunRequest:
    """Request an execution like `iexec app run`: find compatible orders in the book, sign a request order
    at their prices (within the given ceilings) and publish it."""

    app: Address
    dataset: Annotated[bytes, MaxLen(20)]  # empty: no dataset
    workerpool: Annotated[bytes, MaxLen(20)]  # empty: any
    args: Annotated[str, MaxLen(4096)]
    trust: U64
    category: U64
    max_price: U64  # ceiling on the total task price, nRLC


@wire(tag=109)
@dataclass(frozen=True)
class RunStarted:
    request_hash: Bytes32
    deal_id: Bytes32
    task_price: U64


@wire(tag=112)
@dataclass(frozen=True)
class TaskRequest:
    task_id: Bytes32


@wire(tag=113)
@dataclass(frozen=True)
class TaskInfo:
    task_id: Bytes32
    task: Task | None
    height: U64
    deal: Deal | None = None
    contributions: tuple[Contribution, ...] = ()  # in the order of `task.contributors`


@wire(tag=114)
@dataclass(frozen=True)
class FetchResultRequest:
    """Download a completed task's sealed result from the worker that serves it and open it with the
    node's key (the node's account must be the deal's requester)."""

    task_id: Bytes32


@wire(tag=115)
@dataclass(frozen=True)
class ResultArchive:
    archive: bytes


@wire(tag=116)
@dataclass(frozen=True)
class CertifyPlatformRequest:
    """Worker role: have an attestation authority certify this node's platform key."""

    authority: Annotated[bytes, MaxLen(20)]  # empty: each authority of the genesis in turn


@wire(tag=117)
@dataclass(frozen=True)
class PlatformCertified:
    platform_public_key: Bytes32
    authority: Address
    policy: Text


@wire(tag=118)
@dataclass(frozen=True)
class ReplicatesQuery:
    """How a task's replicates went, from the deal's pool manager; with `logs`, also the app's output, which
    only the requester's node can open."""

    task_id: Bytes32
    logs: bool


@wire(tag=119)
@dataclass(frozen=True)
class ReplicateLogs:
    worker: Address
    document: Annotated[bytes, MaxLen(256 * 1024)]  # the opened JSON log document (empty: see `error`)
    error: Text  # why the logs could not be had


@wire(tag=123)
@dataclass(frozen=True)
class TaskReport:
    verdict: Text
    replicates: Annotated[tuple[ReplicateInfo, ...], MaxLen(64)]
    logs: Annotated[tuple[ReplicateLogs, ...], MaxLen(64)]
    manager_reached: bool


@wire(tag=124)
@dataclass(frozen=True)
class ExplainRequest:
    """Why a request order (by id, or an unambiguous prefix of one) matches nothing in the book."""

    order_id: Annotated[bytes, MaxLen(32)]


@wire(tag=125)
@dataclass(frozen=True)
class CandidateExplained:
    app_order: Bytes32
    dataset_order: Annotated[bytes, MaxLen(32)]  # empty: no dataset order
    workerpool_order: Bytes32
    violations: Annotated[tuple[Text, ...], MaxLen(64)]  # "code: detail"; empty: this candidate matches


@wire(tag=126)
@dataclass(frozen=True)
class Explanation:
    request: Order
    candidates: Annotated[tuple[CandidateExplained, ...], MaxLen(2_000)]


@wire(tag=201)
@dataclass(frozen=True)
class DealListRequest:
    """Deals where `account` (empty: the node's own) is the requester or owns the app, dataset or pool."""

    account: OptionalAddress


@wire(tag=202)
@dataclass(frozen=True)
class DealEntry:
    deal_id: Bytes32
    deal: Deal


@wire(tag=203)
@dataclass(frozen=True)
class DealList:
    deals: Annotated[tuple[DealEntry, ...], MaxLen(MAX_LIST)]


@wire(tag=204)
@dataclass(frozen=True)
class TaskListRequest:
    """Tasks of `account` (empty: the node's own) as `role`: "requester" (its deals), "worker" (it
    contributed), "manager" (its pool's deals), or "" for all three."""

    account: OptionalAddress
    role: Text


@wire(tag=205)
@dataclass(frozen=True)
class TaskEntry:
    task_id: Bytes32
    task: Task
    roles: Annotated[tuple[Text, ...], MaxLen(3)]  # what the account is to this task


@wire(tag=206)
@dataclass(frozen=True)
class TaskList:
    tasks: Annotated[tuple[TaskEntry, ...], MaxLen(MAX_LIST)]


@wire(tag=207)
@dataclass(frozen=True)
class AssetListRequest:
    """Registered apps, datasets or workerpools ("app", "dataset", "workerpool") of `owner` (empty: the
    node's own account), or of everyone with `everyone`."""

    kind: Text
    owner: OptionalAddress
    everyone: bool = False
    address: OptionalAddress = b""  # only this asset (owner and everyone then do not matter)


@wire(tag=208)
@dataclass(frozen=True)
class AssetEntry:
    address: Address
    asset: App | Dataset | Workerpool


@wire(tag=209)
@dataclass(frozen=True)
class AssetList:
    assets: Annotated[tuple[AssetEntry, ...], MaxLen(MAX_LIST)]


@wire(tag=210)
@dataclass(frozen=True)
class BlocksRequest:
    """Blocks from `top` (0: the tip) downwards, at most `count`."""

    top: U64
    count: Annotated[int, Range(1, 100)]
    with_txs: bool = False


@wire(tag=211)
@dataclass(frozen=True)
class TxSummary:
    tx_id: Bytes32
    sender: Address
    nonce: U64
    kind: Text  # the body's type: Transfer, MatchOrders, Contribute...
    code: Text  # the ledger's outcome: "ok" or a reason code


@wire(tag=212)
@dataclass(frozen=True)
class BlockSummary:
    height: U64
    block_id: Bytes32
    time: U64
    round: U64  # the consensus round that decided it (0: at the first try)
    signers: U64  # precommits in its certificate
    tx_count: U64
    txs: Annotated[tuple[TxSummary, ...], MaxLen(1_000)]  # empty unless asked for


@wire(tag=213)
@dataclass(frozen=True)
class BlockList:
    blocks: Annotated[tuple[BlockSummary, ...], MaxLen(100)]
    height: U64  # the node's height when it answered


@wire(tag=214)
@dataclass(frozen=True)
class TxLookupRequest:
    tx_id: Bytes32


@wire(tag=215)
@dataclass(frozen=True)
class TxDetail:
    """A committed transaction with its block and outcome (`tx` None: this node has not committed it)."""

    tx_id: Bytes32
    tx: Transaction | None
    height: U64
    code: Text
    created: Annotated[bytes, MaxLen(32)]


@wire(tag=216)
@dataclass(frozen=True)
class ValidatorsRequest:
    pass


@wire(tag=217)
@dataclass(frozen=True)
class ValidatorInfo:
    name: Text
    address: Address
    public_key: Bytes32
    last_signed: U64  # the last height whose certificate carries its precommit (0: none of the recent ones)


@wire(tag=218)
@dataclass(frozen=True)
class ValidatorList:
    validators: Annotated[tuple[ValidatorInfo, ...], MaxLen(100)]
    # Recorded misbehaviour (conflicting votes); pocnet records none yet, so this says what is checked.
    evidence: Annotated[tuple[Text, ...], MaxLen(100)]


@wire(tag=102)
@dataclass(frozen=True)
class ControlError:
    message: Text


ControlRequest = (
    StatusRequest | AccountRequest | SubmitRequest | TxResultRequest | OrderbookRequest | PublishOrderRequest
    | DealRequest | DeployAppRequest | DeployDatasetRequest | RunRequest | TaskRequest | FetchResultRequest
    | CertifyPlatformRequest | ReplicatesQuery | ExplainRequest | OrderRequest | DealListRequest | TaskListRequest
    | AssetListRequest | BlocksRequest | TxLookupRequest | ValidatorsRequest
)
ControlResponse = (
    NodeStatus | AccountInfo | TxSubmitted | TxResultInfo | OrderList | OrderPublished | DealInfo | Deployed
    | RunStarted | TaskInfo | ResultArchive | ControlError | PlatformCertified | TaskReport | Explanation
    | DealList | TaskList | AssetList | BlockList | TxDetail | ValidatorList
)
# What the explorer may ask (node/http): reads only. Everything else acts, and only the control socket acts.
READ_ONLY_REQUESTS = (
    StatusRequest, AccountRequest, TxResultRequest, OrderbookRequest, DealRequest, TaskRequest, ReplicatesQuery,
    ExplainRequest, OrderRequest, DealListRequest, TaskListRequest, AssetListRequest, BlocksRequest,
    TxLookupRequest, ValidatorsRequest,
)
Handler = Callable[[object], Awaitable[object]]


class ControlRejected(Exception):
    """Raised by handlers to answer with a ControlError (bad input, not the node's fault)."""


def socket_path(data_dir: Path) -> Path:
    return data_dir / SOCKET_NAME


async def serve(path: Path, handle: Handler, task_status: TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve requests on a Unix socket until cancelled; one task per connection."""
    path.unlink(missing_ok=True)
    listener = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await listener.bind(str(path))
    path.chmod(0o600)
    listener.listen(16)
    listeners = [trio.SocketListener(listener)]
    log.info("event=control-listening path=%s", path)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started()
            await trio.serve_listeners(lambda stream: _serve_one(stream, handle), listeners, handler_nursery=nursery)
    finally:
        path.unlink(missing_ok=True)


async def _serve_one(stream: trio.abc.Stream, handle: Handler) -> None:
    """Answer one client's requests until it closes, goes silent or goes away. A client that resets the
    connection (it was killed mid-call) ends its own connection, never the node."""
    try:
        await _answer_requests(stream, handle)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        log.info("event=control-client-gone error=%r", str(exc))


async def _answer_requests(stream: trio.abc.Stream, handle: Handler) -> None:
    async with stream:
        while True:
            data = b""
            with trio.move_on_after(REQUEST_TIMEOUT_S):
                data = await _read_frame(stream)
            if not data:
                return
            try:
                request = decode(ControlRequest, data, max_size=MAX_FRAME)
                response = await handle(request)
            except DecodeError as exc:
                response = ControlError(f"malformed request: {exc.reason}")
            except ControlRejected as exc:
                response = ControlError(str(exc))
            except Exception as exc:  # a handler bug must not take the node down; the caller learns of it
                log.exception("event=control-handler-failed request=%s", type(request).__name__)
                response = ControlError(f"internal error: {type(exc).__name__}: {exc}")
            payload = encode(response)
            await stream.send_all(struct.pack(">I", len(payload)) + payload)


async def _read_frame(stream: trio.abc.ReceiveStream) -> bytes:
    header = await _read_exactly(stream, 4)
    if len(header) < 4:
        return b""
    (length,) = struct.unpack(">I", header)
    if length > MAX_FRAME:
        return b""
    return await _read_exactly(stream, length)


async def _read_exactly(stream: trio.abc.ReceiveStream, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = await stream.receive_some(n - len(chunks))
        if not chunk:
            return b""
        chunks += chunk
    return bytes(chunks)


class ControlClient:
    """A blocking client for the CLI: one request, one answer."""

    def __init__(self, data_dir: Path, timeout_s: float = REQUEST_TIMEOUT_S) -> None:
        self.path = socket_path(data_dir)
        self.timeout_s = timeout_s

    def call(self, request: object) -> object:
        """Send a request; return the answer, or raise ControlRejected with the node's error message."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout_s)
            try:
                sock.connect(str(self.path))
            except (FileNotFoundError, ConnectionRefusedError):
                raise ConnectionError(f"no node is running with its control socket at {self.path}") from None
            payload = encode(request)
            sock.sendall(struct.pack(">I", len(payload)) + payload)
            header = recv_exactly(sock, 4)
            (length,) = struct.unpack(">I", header)
            response = decode(ControlResponse, recv_exactly(sock, length), max_size=MAX_FRAME)
        if isinstance(response, ControlError):
            raise ControlRejected(response.message)
        return response


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the node closed the control connection")
        data += chunk
    return bytes(data)

"""The `pocnet` command line: run a node, and talk to a running one through its control socket.

Verbs follow iexec-sdk where they fit (`wallet`, `account`, `orderbook`, `order`, `app`, `dataset`).
Errors a user can fix are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import logging
import os
import signal
import sys
import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from node.byzantine import MODES as BYZANTINE_MODES
from node.config import ROLES, ConfigError, load_config
from node.control import (
    AccountInfo,
    AccountRequest,
    AssetList,
    AssetListRequest,
    CertifyPlatformRequest,
    ControlClient,
    ControlRejected,
    DealInfo,
    DealList,
    DealListRequest,
    DealRequest,
    DeployAppRequest,
    DeployDatasetRequest,
    Deployed,
    ExplainRequest,
    Explanation,
    FetchResultRequest,
    NodeStatus,
    OrderbookRequest,
    OrderList,
    OrderPublished,
    OrderRequest,
    PlatformCertified,
    PublishOrderRequest,
    ReplicateLogs,
    ReplicatesQuery,
    ResultArchive,
    RunRequest,
    RunStarted,
    StatusRequest,
    SubmitRequest,
    TaskInfo,
    TaskList,
    TaskListRequest,
    TaskReport,
    TaskRequest,
    TxResultInfo,
    TxResultRequest,
    TxSubmitted,
)
from node.documents import (
    asset_list_document,
    deal_document,
    deal_list_document,
    order_documents,
    task_document,
    task_list_document,
    task_summary,
)
from node.jsonout import iso_time, to_json
from node.work_messages import ReplicateInfo
from protocols import orders
from protocols.chain_params import CHAIN_PARAM_KEYS
from protocols.crypto import ZERO_ADDRESS, hex_address, parse_address
from protocols.genesis import NRLC_PER_RLC, GenesisError, parse_genesis, rlc_text
from protocols.ledger.records import Deal, TaskStatus
from protocols.ledger.transactions import CancelOrder, Claim, RegisterApp, RegisterDataset, Transfer, TxBody
from protocols.orders import NO_TAG, AppOrder, DatasetOrder, Order, WorkerpoolOrder, tag_bytes

EXIT_USAGE = 2
DATA_DIR_ENV = "POCNET_DATA_DIR"
# How long `--wait` follows a transaction before giving up (a devnet commits in well under a second).
WAIT_TIMEOUT_S = 30.0


class UsageError(Exception):
    """Bad input the user can fix: printed as one line, exit status 2."""


def emit(args: argparse.Namespace, document: Any) -> None:
    """Set the command's `--json` document (wire values go through `node.jsonout.to_json`). In human mode
    it is unused: the command has printed its lines already."""
    args.document = to_json(document)


# --- helpers ---------------------------------------------------------------------------------------


def parse_rlc(text: str) -> int:
    """An amount in RLC (decimals allowed) to nRLC."""
    try:
        value = Decimal(text) * NRLC_PER_RLC
    except InvalidOperation:
        raise UsageError(f"amount {text!r} is not a number of RLC") from None
    if value != value.to_integral_value() or value < 0:
        raise UsageError(f"amount {text!r} must be non-negative with at most 9 decimals")
    return int(value)


def address_arg(text: str) -> bytes:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def hex32(text: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise UsageError(f"{what} {text!r} is not hexadecimal") from None
    if len(raw) != 32:
        raise UsageError(f"{what} must be 32 bytes (64 hex digits), got {len(raw)}")
    return raw


def client(args: argparse.Namespace) -> ControlClient:
    return ControlClient(Path(args.data_dir))


def call(args: argparse.Namespace, request: object) -> Any:
    try:
        return client(args).call(request)
    except ControlRejected as exc:
        raise UsageError(str(exc)) from None
    except ConnectionError as exc:
        raise UsageError(f"{exc} (start it with `pocnet node`, or pass --data-dir)") from None


def submit(args: argparse.Namespace, body: TxBody, created_is: str = "created") -> None:
    """Submit a transaction through the node; with --wait, follow it until committed. `created_is` names
    what the transaction's result id is (a new asset's address, a claimed task...). The JSON document is
    the transaction (`tx_id`, `nonce`, `body`) and, once committed, its `height`, `code` and `created`."""
    submitted: TxSubmitted = call(args, SubmitRequest(body))
    print(f"transaction 0x{submitted.tx_id.hex()} submitted (nonce {submitted.nonce})")
    document = {**to_json(submitted), "body": to_json(body), "height": None, "code": "pending", "created": None}
    if getattr(args, "wait", False):
        result = wait_committed(args, submitted.tx_id, "transaction")
        created = f", {created_is} 0x{result.created.hex()}" if result.created else ""
        print(f"committed in block {result.height}: {result.code}{created}")
        document.update(height=result.height, code=result.code, created=to_json(result.created))
    args.document = document


def wait_committed(args: argparse.Namespace, tx_id: bytes, what: str) -> TxResultInfo:
    """Poll the node until the transaction is in a block; UsageError if it is dropped or takes too long."""
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while time.monotonic() < deadline:
        result: TxResultInfo = call(args, TxResultRequest(tx_id))
        if result.height:
            return result
        if result.code != "pending":
            raise UsageError(f"{what} not committed: {result.code}")
        time.sleep(0.2)
    raise UsageError(f"{what} still pending after {WAIT_TIMEOUT_S:.0f} s")


def _restrictions(order: Order) -> str:
    pairs = {
        "app": getattr(order, "app_restrict", ZERO_ADDRESS), "dataset": getattr(order, "dataset_restrict", ZERO_ADDRESS),
        "workerpool": getattr(order, "workerpool_restrict", ZERO_ADDRESS),
        "requester": getattr(order, "requester_restrict", ZERO_ADDRESS),
    }
    named = [f"{kind} {hex_address(who)}" for kind, who in pairs.items() if who != ZERO_ADDRESS]
    return f"  only for: {', '.join(named)}" if named else ""


def describe(order: Order, remaining: int | None = None) -> str:
    """Two lines for a person: the order's full id (what `order cancel` and `order explain` take) and terms."""
    left = f"{remaining}/{order.volume} left" if remaining is not None else f"volume {order.volume}"
    head = f"{type(order).__name__.removesuffix('Order').lower():<10} 0x{order.payload_digest.hex()}\n           "
    if isinstance(order, AppOrder):
        return head + f"app {hex_address(order.app)} price {rlc_text(order.app_price)} {left}{_restrictions(order)}"
    if isinstance(order, DatasetOrder):
        return head + f"dataset {hex_address(order.dataset)} price {rlc_text(order.dataset_price)} {left}{_restrictions(order)}"
    if isinstance(order, WorkerpoolOrder):
        return head + (f"pool {hex_address(order.workerpool)} price {rlc_text(order.workerpool_price)} {left} "
                       f"trust {order.trust} category {order.category}{_restrictions(order)}")
    pool = f" pool {hex_address(order.workerpool)}" if order.workerpool != ZERO_ADDRESS else ""
    dataset = f" dataset {hex_address(order.dataset)}" if order.dataset != ZERO_ADDRESS else ""
    total = order.app_max_price + order.dataset_max_price + order.workerpool_max_price
    return head + (f"app {hex_address(order.app)}{dataset}{pool} requester {hex_address(order.requester)} "
                   f"max {rlc_text(total)} per task {left} trust {order.trust} category {order.category}")


def when(ms: int) -> str:
    """A block time for a person: the UTC date and how far from now."""
    if not ms:
        return "-"
    delta = ms / 1000 - time.time()
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))
    return f"{stamp} UTC ({'in ' if delta >= 0 else ''}{_duration(abs(delta))}{'' if delta >= 0 else ' ago'})"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def order_prefix(text: str) -> bytes:
    """An order id as printed, or enough of its start to name one order (at least 8 hex digits)."""
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raise UsageError(f"order id {text!r} is not hexadecimal (an even number of hex digits)") from None
    if not 4 <= len(raw) <= 32:
        raise UsageError(f"order id {text!r}: give the id as `pocnet orderbook` prints it (at least 8 hex digits)")
    return raw


# --- commands --------------------------------------------------------------------------------------


def cmd_node(args: argparse.Namespace) -> int:
    try:
        config = load_config(
            args.role, args.data_dir, args.genesis, args.listen, args.join or [], args.manager, args.dishonest,
            args.http, args.byzantine, args.link_listen,
        )
    except ConfigError as exc:
        print(f"pocnet: {exc}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    import trio

    from node.node import run_node
    from node.operator_errors import explain

    async def main() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run_node, config)
                async for signum in signals:
                    logging.getLogger("node").info("event=stopping signal=%s", signal.Signals(signum).name)
                    nursery.cancel_scope.cancel()
                    break

    try:
        trio.run(main)
    except Exception as exc:  # trio wraps what a task raised in (nested) exception groups
        line = explain(exc, config.data_dir)
        if line is None:
            raise  # a bug: its traceback is what a developer needs
        print(f"pocnet: {line}", file=sys.stderr)
        return EXIT_USAGE
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    status: NodeStatus = call(args, StatusRequest())
    print(f"peer id    {status.peer_id}")
    print(f"account    {hex_address(status.address)}")
    print(f"roles      {', '.join(status.roles)}{' (validator)' if status.validator else ''}")
    print(f"height     {status.height} (block 0x{status.tip_hash.hex()[:16]}...)")
    print(f"peers      {status.peers}")
    print(f"mempool    {status.mempool} transactions, order book {status.orders} orders")
    for addr in status.listen_addrs:
        print(f"listening  {addr}")
    for addr in status.link_addrs:
        print(f"links      {addr} (consensus, to the other validators)")
    for note in status.notes:
        print(f"role       {note}")
    if status.equivocations:
        print(f"evidence   {status.equivocations} equivocation(s) of validators recorded on the ledger")
    if status.http:
        print(f"explorer   {status.http}")
    emit(args, status)
    return 0


def cmd_wallet_show(args: argparse.Namespace) -> int:
    info: AccountInfo = call(args, AccountRequest(address_arg(args.address) if args.address else b""))
    print(f"address  {hex_address(info.address)}")
    print(f"balance  {rlc_text(info.balance)}")
    print(f"frozen   {rlc_text(info.frozen)}")
    print(f"nonce    {info.nonce}")
    if info.score:
        print(f"score    {info.score}")
    emit(args, info)
    return 0


def cmd_wallet_address(args: argparse.Namespace) -> int:
    info: AccountInfo = call(args, AccountRequest(b""))
    print(hex_address(info.address))
    emit(args, {"address": info.address})
    return 0


def cmd_account_send(args: argparse.Namespace) -> int:
    amount = parse_rlc(args.amount)
    if amount == 0:
        raise UsageError("the amount must be positive")
    submit(args, Transfer(address_arg(args.to), amount))
    return 0


def cmd_orderbook(args: argparse.Namespace) -> int:
    answer: OrderList = call(args, OrderbookRequest(
        args.kind or "", app=_optional(args.app), dataset=_optional(args.dataset),
        workerpool=_optional(args.workerpool), requester=_optional(args.requester),
        category=-1 if args.category is None else args.category, min_trust=args.min_trust,
        tag=tag_bytes(args.tag) if args.tag else b"",
    ))
    print_orders(answer)
    if not answer.orders:
        print("(no orders)")
    emit(args, {"orders": order_documents(answer)})
    return 0


def cmd_order_show(args: argparse.Namespace) -> int:
    answer: OrderList = call(args, OrderRequest(order_prefix(args.order_id)))
    print_orders(answer)
    emit(args, order_documents(answer)[0])
    return 0


def print_orders(answer: OrderList) -> None:
    remaining: list[int | None] = list(answer.remaining) or [None] * len(answer.orders)
    for order, left in zip(answer.orders, remaining):
        print(describe(order, left))


def _optional(text: str | None) -> bytes:
    return address_arg(text) if text else b""


def _restrict(text: str | None) -> bytes:
    return address_arg(text) if text else ZERO_ADDRESS


# An app or dataset order sells its asset for this many tasks unless told otherwise (iexec-sdk's default
# volume for app and dataset orders is likewise "as many as you like"); a request asks for one task.
DEFAULT_OFFER_VOLUME = 1_000_000


def cmd_order_publish(args: argparse.Namespace) -> int:
    if args.volume is None:
        args.volume = 1 if args.kind == "request" else DEFAULT_OFFER_VOLUME
    if args.volume < 1:
        raise UsageError(f"--volume {args.volume}: an order sells or asks for at least one task")
    salt = os.urandom(16)
    tag = tag_bytes(1) if args.tee else NO_TAG
    price = parse_rlc(args.price)
    if args.kind == "app":
        order: Order = orders.app_order(
            address_arg(args.app), price, salt, volume=args.volume, tag=tag,
            dataset_restrict=_restrict(args.dataset_restrict), workerpool_restrict=_restrict(args.workerpool_restrict),
            requester_restrict=_restrict(args.requester_restrict))
    elif args.kind == "dataset":
        order = orders.dataset_order(
            address_arg(args.dataset), price, salt, volume=args.volume, tag=tag,
            app_restrict=_restrict(args.app_restrict), workerpool_restrict=_restrict(args.workerpool_restrict),
            requester_restrict=_restrict(args.requester_restrict))
    elif args.kind == "workerpool":
        order = orders.workerpool_order(
            address_arg(args.workerpool), price, args.category, args.trust, salt, volume=args.volume, tag=tag,
            app_restrict=_restrict(args.app_restrict), dataset_restrict=_restrict(args.dataset_restrict),
            requester_restrict=_restrict(args.requester_restrict))
    else:
        me: AccountInfo = call(args, AccountRequest(b""))
        order = orders.request_order(
            address_arg(args.app), parse_rlc(args.app_max_price), args.category, me.address, salt,
            dataset=_restrict(args.dataset), dataset_max_price=parse_rlc(args.dataset_max_price),
            workerpool=_restrict(args.workerpool), workerpool_max_price=price, volume=args.volume, tag=tag,
            trust=args.trust, params=args.params or "")
    published: OrderPublished = call(args, PublishOrderRequest(order))
    print(f"{args.kind} order 0x{published.order_hash.hex()} published")
    emit(args, {"id": published.order_hash, "kind": args.kind, "order": order})
    return 0


def cmd_order_cancel(args: argparse.Namespace) -> int:
    wanted = order_prefix(args.order_hash)
    answer: OrderList = call(args, OrderbookRequest(""))
    matches = [o for o in answer.orders if o.payload_digest.startswith(wanted)]
    if not matches:
        raise UsageError(f"order 0x{wanted.hex()}... is not in this node's order book (`pocnet orderbook` lists it)")
    if len(matches) > 1:
        raise UsageError(f"0x{wanted.hex()}... names {len(matches)} orders: give more of the id")
    submit(args, CancelOrder(matches[0]))
    return 0


def cmd_order_explain(args: argparse.Namespace) -> int:
    answer: Explanation = call(args, ExplainRequest(order_prefix(args.order_id)))
    print_explanation(answer)
    emit(args, answer)
    return 0


def print_explanation(answer: Explanation) -> None:
    print(f"  request 0x{answer.request.payload_digest.hex()}")
    if not answer.candidates:
        print("  no candidate: the book holds no app order and workerpool order to pair it with")
        print("  (is the app order published? does any pool have ready workers? see `pocnet orderbook`)")
    for candidate in answer.candidates:
        dataset = f" + dataset 0x{candidate.dataset_order.hex()[:16]}..." if candidate.dataset_order else ""
        print(f"  app 0x{candidate.app_order.hex()[:16]}...{dataset} + pool 0x{candidate.workerpool_order.hex()[:16]}...: "
              + ("MATCHES" if not candidate.violations else f"{len(candidate.violations)} rule(s) broken"))
        for violation in candidate.violations:
            print(f"      {violation}")


def cmd_app_register(args: argparse.Namespace) -> int:
    submit(args, RegisterApp(args.name, hex32(args.measurement, "measurement")))
    return 0


def cmd_dataset_register(args: argparse.Namespace) -> int:
    submit(args, RegisterDataset(args.name, hex32(args.blob_hash, "blob hash")))
    return 0


def cmd_deal_show(args: argparse.Namespace) -> int:
    info: DealInfo = call(args, DealRequest(hex32(args.deal_id, "deal id")))
    if info.deal is None:
        raise UsageError(f"no deal 0x{info.deal_id.hex()} at height {info.height}")
    deal = info.deal
    print(f"deal        0x{info.deal_id.hex()}")
    print(f"app         {hex_address(deal.app.pointer)} at {rlc_text(deal.app.price)}")
    if deal.dataset.pointer != ZERO_ADDRESS:
        print(f"dataset     {hex_address(deal.dataset.pointer)} at {rlc_text(deal.dataset.price)}")
    print(f"workerpool  {hex_address(deal.workerpool.pointer)} at {rlc_text(deal.workerpool.price)}")
    print(f"requester   {hex_address(deal.requester)}")
    print(f"tasks       {deal.bot_size} from index {deal.bot_first}, trust {deal.trust}, category {deal.category}")
    print(f"settled     {deal.settled}/{deal.bot_size}")
    print(f"started     {when(deal.start_time)}")
    print(f"final       {when(deal.final_deadline)} (a task not completed by then can be claimed)")
    tasks = [call(args, TaskRequest(task_id)) for task_id in deal_task_ids(info.deal_id, deal)]
    for index, task in enumerate(tasks, start=deal.bot_first):
        state = TaskStatus(task.task.status).name if task.task else "not initialized yet"
        print(f"  task {index}  0x{task.task_id.hex()}  {state}")
    emit(args, deal_document(info, tasks))
    if not args.watch:
        return 0
    outcomes = watch_tasks(args, [task.task_id for task in tasks], time.monotonic() + args.timeout)
    return _watch_result(args, outcomes)


def deal_task_ids(deal_id: bytes, deal: Deal) -> list[bytes]:
    from protocols.matching import task_id_for

    return [task_id_for(deal_id, index) for index in range(deal.bot_first, deal.bot_first + deal.bot_size)]


APP_TEMPLATE_TOML = """name = "{name}"
version = "1.0.0"
entrypoint = ["python3", "app.py"]
"""
APP_TEMPLATE_PY = """# An iApp: it reads its arguments and the requester's protected dataset (if the deal has one) and writes
# its result into IEXEC_OUT, with computed.json naming the file whose hash the workers agree on.
import json, os, sys

out = os.environ["IEXEC_OUT"]
dataset = os.environ.get("IEXEC_DATASET_FILENAME")
if dataset:  # the decrypted dataset, inside the enclave only
    with open(os.path.join(os.environ["IEXEC_IN"], dataset), "rb") as f:
        data = f.read()
    message = f"the dataset has {{len(data)}} bytes"
else:
    message = "Hello, " + (" ".join(sys.argv[1:]) or "world")
print(message)  # stdout and stderr reach the requester with `pocnet task debug --logs`
with open(os.path.join(out, "result.txt"), "w") as f:
    f.write(message + "\\n")
with open(os.path.join(out, "computed.json"), "w") as f:
    json.dump({{"deterministic-output-path": os.path.join(out, "result.txt")}}, f)
"""


def cmd_app_init(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    if (directory / "iapp.toml").exists():
        raise UsageError(f"{directory} already holds an iApp (iapp.toml exists)")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "iapp.toml").write_text(APP_TEMPLATE_TOML.format(name=directory.resolve().name))
    (directory / "app.py").write_text(APP_TEMPLATE_PY.format())
    print(f"iApp template written to {directory}: edit app.py, then `pocnet app deploy {directory}`")
    emit(args, {"directory": str(directory), "files": ["iapp.toml", "app.py"]})
    return 0


def cmd_app_deploy(args: argparse.Namespace) -> int:
    from node.enclave.bundle import BundleError, build_bundle

    try:
        bundle, manifest = build_bundle(Path(args.directory))
    except (BundleError, OSError) as exc:
        raise UsageError(f"cannot bundle {args.directory}: {exc}") from None
    deployed: Deployed = call(args, DeployAppRequest(args.name or manifest.name, bundle))
    print(f"bundle of {len(bundle)} bytes, measurement 0x{deployed.content_hash.hex()}")
    _follow(args, deployed, "app")
    return 0


def cmd_dataset_encrypt(args: argparse.Namespace) -> int:
    from node.enclave.sealing import encrypt_dataset

    source = Path(args.file)
    try:
        key, blob = encrypt_dataset(source.read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read {source}: {exc.strerror}") from None
    Path(str(source) + ".enc").write_bytes(blob)
    fd = os.open(str(source) + ".key", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(key)
    print(f"encrypted to {source}.enc (blob hash 0x{hashlib.sha256(blob).hexdigest()}), key in {source}.key (0600)")
    emit(args, {"encrypted": f"{source}.enc", "key_file": f"{source}.key", "blob_hash": hashlib.sha256(blob).digest()})
    return 0


def cmd_dataset_deploy(args: argparse.Namespace) -> int:
    try:
        plaintext = Path(args.file).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    deployed: Deployed = call(args, DeployDatasetRequest(args.name or Path(args.file).name, plaintext))
    print(f"encrypted in the node (it keeps the key), blob 0x{deployed.content_hash.hex()}")
    _follow(args, deployed, "dataset")
    return 0


def _follow(args: argparse.Namespace, deployed: Deployed, what: str) -> None:
    """Wait for a deployment's registration; the JSON document is the new asset's address and its block."""
    result = wait_committed(args, deployed.tx_id, f"{what} registration")
    print(f"{what} {hex_address(result.created)} registered in block {result.height}")
    emit(args, {"address": result.created, "tx_id": deployed.tx_id, "height": result.height,
                "measurement" if what == "app" else "blob_hash": deployed.content_hash})


# `app run --watch` explains why a request has not matched after this long: a match takes a block or two.
EXPLAIN_AFTER_S = 10.0
# A claim right after the final deadline can meet a chain whose last block is a little older: retry this long.
CLAIM_RETRY_S = 10.0
# How often a watch asks the pool manager how the replicates go (a stream round trip, cheaper than a block).
REPLICATES_POLL_S = 2.0


def cmd_app_run(args: argparse.Namespace) -> int:
    from protocols.matching import task_id_for

    started: RunStarted = call(args, RunRequest(
        app=address_arg(args.app), dataset=address_arg(args.dataset) if args.dataset else b"",
        workerpool=address_arg(args.workerpool) if args.workerpool else b"", args=args.args or "",
        trust=args.trust, category=args.category, max_price=parse_rlc(args.max_price),
    ))
    task_id = task_id_for(started.deal_id, 0)
    print(f"request 0x{started.request_hash.hex()} published at {rlc_text(started.task_price)} per task")
    print(f"deal    0x{started.deal_id.hex()} (once matched)")
    print(f"task    0x{task_id.hex()} (`pocnet task show 0x{task_id.hex()}`)")
    run_document = {**to_json(started), "task_id": to_json(task_id)}
    args.document = run_document
    if not args.watch:
        return 0
    try:
        return watch_task(args, started, task_id)
    finally:
        args.document = {**run_document, **args.document}


def watch_task(args: argparse.Namespace, started: RunStarted, task_id: bytes) -> int:
    """Follow a request to its result: the match (explained if it does not come), then the task as
    `watch_tasks` follows it; download the result when completed, say why and what to do when it cannot be."""
    began = time.monotonic()
    deadline = began + args.timeout
    explained = False
    _progress("", "waiting for a match")
    while call(args, DealRequest(started.deal_id)).deal is None:
        if time.monotonic() >= deadline:
            raise UsageError(f"gave up watching after {args.timeout:.0f} s: the request stays in the book until matched; "
                             f"withdraw it with `pocnet order cancel 0x{started.request_hash.hex()}`")
        if not explained and time.monotonic() - began > EXPLAIN_AFTER_S:
            explained = True
            print(f"  no match after {EXPLAIN_AFTER_S:.0f} s; what the order book says:")
            print_explanation(call(args, ExplainRequest(started.request_hash)))
        time.sleep(0.2)
    outcomes = watch_tasks(args, [task_id], deadline)
    code = _watch_result(args, outcomes)
    if code == 0:
        args.document["result"] = _download(args, task_id)
    return code


# How a watched task ended: completed, failed (the requester was refunded), given-up (the pool's scheduler
# has a verdict: it will not complete; claimable at the final deadline), claimable (past the final
# deadline without completing), or "" while it goes on.
FINAL_OUTCOMES = ("completed", "failed", "given-up", "claimable")


class TaskWatch:
    """One task followed by a watch: what was shown of it, and how it ended."""

    def __init__(self, task_id: bytes) -> None:
        self.task_id = task_id
        self.shown = ""
        self.replicates_seen: set[tuple[bytes, str]] = set()
        self.next_poll = 0.0
        self.outcome = ""
        self.info: TaskInfo | None = None
        self.verdict = ""

    def step(self, args: argparse.Namespace, label: str) -> None:
        """Ask the node once; print what changed (state, replicate endings, claimability); set `outcome`."""
        info: TaskInfo = call(args, TaskRequest(self.task_id))
        self.info = info
        task = info.task
        state = "matched, waiting for the task's initialization" if task is None else TaskStatus(task.status).name
        if task is not None:
            state += f": {len(task.contributors)} contribution(s), {task.reveal_counter} reveal(s)"
        self.shown = _progress(self.shown, label + state)
        if task is None:
            return
        if task.status == 3:
            self.outcome = "completed"
            return
        if task.status == 4:
            self.outcome = "failed"
            print(f"  {label}the task failed and the requester was refunded; "
                  f"`pocnet task debug --logs 0x{self.task_id.hex()}` says why")
            return
        if time.time() * 1000 >= task.final_deadline:
            self.outcome = "claimable"
            print(f"  {label}past its final deadline: claimable now: `pocnet task claim 0x{task.deal_id.hex()} {task.index}`")
            return
        if time.monotonic() >= self.next_poll:
            self.next_poll = time.monotonic() + REPLICATES_POLL_S
            report: TaskReport = call(args, ReplicatesQuery(self.task_id, False))
            for replicate in report.replicates:
                if replicate.status != "running" and (replicate.worker, replicate.status) not in self.replicates_seen:
                    self.replicates_seen.add((replicate.worker, replicate.status))
                    print(f"  {time.strftime('%H:%M:%S')} {label}worker {hex_address(replicate.worker)}: {_replicate(replicate)}")
            if report.verdict:
                self.outcome, self.verdict = "given-up", report.verdict
                print(f"  {label}{report.verdict}")
                print(f"  the app's output: `pocnet task debug --logs 0x{self.task_id.hex()}`")
                print(f"  claimable from {when(task.final_deadline)}: `pocnet task claim 0x{task.deal_id.hex()} {task.index}`"
                      " (the pool claims it then too)")

    def document(self) -> dict[str, Any]:
        summary = task_summary(self.info) if self.info else {"task_id": to_json(self.task_id), "status": "UNSET"}
        claimable = self.info.task.final_deadline if self.info and self.info.task and self.outcome != "completed" else 0
        return {**summary, "outcome": self.outcome or "watching", "verdict": self.verdict or None,
                "claimable_from": iso_time(claimable)}


def watch_tasks(args: argparse.Namespace, task_ids: list[bytes], deadline: float) -> dict[bytes, TaskWatch]:
    """Follow tasks until each reaches a final outcome (FINAL_OUTCOMES) or the deadline passes."""
    watches = {task_id: TaskWatch(task_id) for task_id in task_ids}
    while True:
        for task_id, watch in watches.items():
            if not watch.outcome:
                watch.step(args, f"task 0x{task_id.hex()[:8]}: " if len(watches) > 1 else "")
        if all(watch.outcome for watch in watches.values()) or time.monotonic() >= deadline:
            return watches
        time.sleep(0.3)


def _watch_result(args: argparse.Namespace, watches: dict[bytes, TaskWatch]) -> int:
    """The end of a watch: the tasks' documents; status 0 when every task completed, 1 when one will not,
    and a UsageError when the watch gave up first."""
    args.document = {"tasks": [watch.document() for watch in watches.values()]}
    if any(not watch.outcome for watch in watches.values()):
        waiting = next(task_id for task_id, watch in watches.items() if not watch.outcome)
        raise UsageError(f"gave up watching after {args.timeout:.0f} s; the task goes on: `pocnet task show 0x{waiting.hex()}`")
    if all(watch.outcome == "completed" for watch in watches.values()):
        return 0
    if len(watches) == 1 and next(iter(watches.values())).outcome == "failed":  # as `app run --watch` always said
        raise UsageError(f"the task failed and the requester was refunded; `pocnet task debug --logs 0x{next(iter(watches)).hex()}` says why")
    return 1


def _replicate(info: ReplicateInfo) -> str:
    if info.status == "ok":
        return "contributed"
    return f"{info.status}" + (f" ({info.detail})" if info.detail else "")


def _progress(shown: str, state: str) -> str:
    if state != shown:
        print(f"  {time.strftime('%H:%M:%S')} {state}")
    return state


def _download(args: argparse.Namespace, task_id: bytes) -> dict[str, Any]:
    """Fetch, decrypt and unpack a completed task's result; print and return where its files are."""
    import io
    import tarfile

    archive: ResultArchive = call(args, FetchResultRequest(task_id))
    output = Path(args.output or f"result-{task_id.hex()[:12]}")
    output.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.archive)) as tar:
        tar.extractall(output, filter="data")
    print(f"result decrypted into {output}/:")
    files = []
    for path in sorted(output.rglob("*")):
        if path.is_file():
            files.append({"path": str(path.relative_to(output)), "bytes": path.stat().st_size})
            print(f"  {path.relative_to(output)} ({path.stat().st_size} bytes)")
            if path.suffix in (".txt", ".json") and path.stat().st_size < 2048 and path.name != "computed.json":
                print("    " + path.read_text(errors="replace").strip().replace("\n", "\n    "))
    return {"directory": str(output), "files": files}


def cmd_task_show(args: argparse.Namespace) -> int:
    info: TaskInfo = call(args, TaskRequest(hex32(args.task_id, "task id")))
    task = info.task
    if task is None:
        raise UsageError(f"no initialized task 0x{info.task_id.hex()} at height {info.height} (not matched or not initialized yet)")
    print(f"task          0x{info.task_id.hex()}")
    print(f"deal          0x{task.deal_id.hex()} index {task.index}")
    print(f"status        {TaskStatus(task.status).name}")
    print(f"contributions {len(task.contributors)}" + (": " + ", ".join(hex_address(w) for w in task.contributors) if task.contributors else ""))
    print(f"reveals       {task.reveal_counter}/{task.winner_counter}")
    print(f"contribution  due {when(task.contribution_deadline)}")
    if task.reveal_deadline:
        print(f"reveal        due {when(task.reveal_deadline)}")
    print(f"final         {when(task.final_deadline)}")
    if task.result_digest:
        print(f"result digest 0x{task.result_digest.hex()}")
    report: TaskReport = call(args, ReplicatesQuery(info.task_id, False))
    if not report.manager_reached:
        print("replicates    (the pool manager could not be asked)")
    for replicate in report.replicates:
        print(f"replicate     {hex_address(replicate.worker)}: {_replicate(replicate)}")
    if report.verdict:
        print(f"verdict       {report.verdict}")
    if task.status in (1, 2) and time.time() * 1000 >= task.final_deadline:
        print(f"claimable     now: `pocnet task claim 0x{task.deal_id.hex()} {task.index}` refunds the requester")
    elif task.status in (1, 2) and report.verdict:
        print(f"claimable     from {when(task.final_deadline)}: `pocnet task claim 0x{task.deal_id.hex()} {task.index}`")
    document = task_document(info, report)
    args.document = document
    code = 0
    if getattr(args, "watch", False) and task.status in (1, 2):
        try:
            code = _watch_result(args, watch_tasks(args, [info.task_id], time.monotonic() + args.timeout))
        finally:
            document["watch"] = args.document["tasks"][0] if "tasks" in args.document else None
            args.document = document
        task = call(args, TaskRequest(info.task_id)).task
    if args.download and task is not None and task.status == 3:
        document["result"] = _download(args, info.task_id)
    return code


CONTRIBUTION_STATES = {1: "CONTRIBUTED", 2: "PROVED", 3: "REJECTED"}


def cmd_task_debug(args: argparse.Namespace) -> int:
    """Everything known of a task: the ledger's deal terms and contributions, the pool's replicates, and with
    --logs the app's output of each replicate (opened with the requester's key)."""
    shown = argparse.Namespace(**{**vars(args), "download": False, "watch": False})
    cmd_task_show(shown)
    document = shown.document
    args.document = document
    info: TaskInfo = call(args, TaskRequest(hex32(args.task_id, "task id")))
    task, deal = info.task, info.deal
    if task is None or deal is None:
        return 0
    print(f"deal terms    trust {deal.trust}, category {deal.category}, worker stake {rlc_text(deal.worker_stake)}")
    print(f"params        {deal.params or '(none)'}")
    for worker, contribution in zip(task.contributors, info.contributions):
        if not task.consensus_value:
            agrees = f"no consensus yet: trust {deal.trust} needs more workers agreeing on one result"
        elif contribution.result_hash == task.consensus_value:
            agrees = "agrees with the consensus"
        else:
            agrees = "differs from the consensus"
        print(f"  {hex_address(worker)}  {CONTRIBUTION_STATES.get(contribution.status, '?'):<11} "
              f"weight {contribution.weight}  hash 0x{contribution.result_hash.hex()[:16]}... ({agrees})")
    if args.logs:
        report: TaskReport = call(args, ReplicatesQuery(info.task_id, True))
        if not report.logs:
            print("logs          none yet (no replicate has ended, or the pool manager could not be asked)")
        for logs in report.logs:
            print(f"--- logs of worker {hex_address(logs.worker)}")
            print(_format_logs(logs))
        document["logs"] = [{"worker": to_json(logs.worker), "log": _log_document(logs), "error": logs.error or None}
                            for logs in report.logs]
    else:
        print(f"the app's stdout/stderr of each replicate: `pocnet task debug --logs 0x{info.task_id.hex()}` (requester only)")
    return 0


def _log_document(logs: ReplicateLogs) -> Any:
    """The worker's log document as JSON (outcome, exit_code, seconds, stdout, stderr), None if unreadable."""
    try:
        return json.loads(logs.document) if logs.document else None
    except ValueError:
        return None


def _format_logs(logs: ReplicateLogs) -> str:
    if logs.error:
        return f"  ({logs.error})"
    try:
        document = json.loads(logs.document)
        lines = [f"  outcome {document['outcome']}" + (f": {document['detail']}" if document.get("detail") else ""),
                 f"  exit code {document.get('exit_code')}, {document.get('seconds')} s"]
        for stream in ("stdout", "stderr"):
            text = str(document.get(stream, "")).rstrip()
            lines.append(f"  {stream}:" + ("".join(f"\n    {line}" for line in text.splitlines()) if text else " (empty)"))
        return "\n".join(lines)
    except (ValueError, KeyError, TypeError):
        return "  (the worker sent logs that are not a log document)"


def cmd_task_claim(args: argparse.Namespace) -> int:
    from protocols.matching import task_id_for

    deal_id = hex32(args.deal_id, "deal id")
    info: TaskInfo = call(args, TaskRequest(task_id_for(deal_id, args.index)))
    if info.task is not None and info.task.status in (3, 4):
        ended = "completed: nothing to refund" if info.task.status == 3 else "failed and was already claimed: the requester is refunded"
        print(f"task 0x{info.task_id.hex()} {ended}")
        emit(args, {"task_id": info.task_id, "status": TaskStatus(info.task.status).name, "tx_id": None})
        return 0
    final = info.task.final_deadline if info.task else 0
    if final and time.time() * 1000 < final:
        raise UsageError(f"the task's final deadline has not passed: claim from {when(final)}")
    retry_until = time.monotonic() + CLAIM_RETRY_S
    while True:
        try:
            submit(args, Claim(deal_id, args.index), created_is="refunded the requester for task")
            return 0
        except UsageError as exc:
            if "final-deadline-not-reached" not in str(exc) or time.monotonic() > retry_until:
                raise
        time.sleep(0.5)  # the chain's block time lags the clock by up to an empty-block interval


def cmd_deal_list(args: argparse.Namespace) -> int:
    answer: DealList = call(args, DealListRequest(_optional(args.account)))
    for entry in answer.deals:
        deal = entry.deal
        print(f"0x{entry.deal_id.hex()}  app {hex_address(deal.app.pointer)}  {deal.settled}/{deal.bot_size} settled  "
              f"{rlc_text(deal.task_price)} per task  started {when(deal.start_time)}")
    if not answer.deals:
        print("(no deals)")
    emit(args, deal_list_document(answer))
    return 0


def cmd_task_list(args: argparse.Namespace) -> int:
    answer: TaskList = call(args, TaskListRequest(_optional(args.account), args.role or ""))
    for entry in answer.tasks:
        task = entry.task
        print(f"0x{entry.task_id.hex()}  {TaskStatus(task.status).name:<10} as {','.join(entry.roles):<18} "
              f"final {when(task.final_deadline)}")
    if not answer.tasks:
        print("(no tasks)")
    emit(args, task_list_document(answer))
    return 0


def cmd_asset_list(args: argparse.Namespace) -> int:
    answer: AssetList = call(args, AssetListRequest(args.kind, _optional(args.owner), args.all))
    for entry in answer.assets:
        name = getattr(entry.asset, "name", None) or getattr(entry.asset, "description", "")
        print(f"{hex_address(entry.address)}  {name:<24} owner {hex_address(entry.asset.owner)}")
    if not answer.assets:
        print(f"(no {args.kind}s" + (")" if args.all else "; --all lists everyone's)"))
    emit(args, asset_list_document(args.kind, answer))
    return 0


def cmd_worker_certify(args: argparse.Namespace) -> int:
    answer: PlatformCertified = call(args, CertifyPlatformRequest(address_arg(args.authority) if args.authority else b""))
    print(f"platform key 0x{answer.platform_public_key.hex()} certified by authority {hex_address(answer.authority)}")
    print(f"its policy: {answer.policy}")
    print("`pocnet status` shows whether the worker is ready (it also needs RLC to stake)")
    emit(args, answer)
    return 0


def cmd_genesis_check(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        genesis = parse_genesis(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read genesis {path}: {exc.strerror}") from None
    except GenesisError as exc:
        raise UsageError(f"invalid genesis {path}: {exc}") from None
    print(f"chain id        {genesis.chain_id}")
    print(f"genesis hash    0x{genesis.genesis_hash.hex()}")
    print(f"validators      {len(genesis.validators)}: " + ", ".join(
        f"{v.name} ({hex_address(v.address)})" for v in genesis.validators))
    print(f"total supply    {rlc_text(genesis.total_supply)} in {len(genesis.allocations)} accounts")
    print("categories      " + ", ".join(f"{c.id}:{c.name} T={c.work_clock_time_ref_ms} ms" for c in genesis.categories))
    params = {name: getattr(genesis.params, name) for name in CHAIN_PARAM_KEYS}
    print("chain params    " + ", ".join(f"{name}={value}" for name, value in params.items()))
    emit(args, {
        "chain_id": genesis.chain_id, "genesis_hash": genesis.genesis_hash,
        "validators": [{"name": v.name, "address": v.address} for v in genesis.validators],
        "total_supply": genesis.total_supply, "total_supply_rlc": rlc_text(genesis.total_supply),
        "accounts": len(genesis.allocations),
        "categories": [{"id": c.id, "name": c.name, "time_ref_ms": c.work_clock_time_ref_ms} for c in genesis.categories],
        "chain_params": params,
    })
    return 0


# --- parser ----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pocnet", description="pocnet: a peer-to-peer marketplace for confidential computing.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_json(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--json", action="store_true",
                       help="print one JSON document on stdout (errors: a JSON object on stderr); see README")
        return p

    def with_data_dir(p: argparse.ArgumentParser, json_output: bool = True) -> argparse.ArgumentParser:
        p.add_argument("--data-dir", default=os.environ.get(DATA_DIR_ENV, "."),
                       help=f"the node's data directory (default: ${DATA_DIR_ENV} or the current directory)")
        return with_json(p) if json_output else p

    node = with_data_dir(commands.add_parser("node", help="run a node"), json_output=False)
    node.add_argument("--role", required=True, help=f"one or more of {', '.join(ROLES)}, comma-separated")
    node.add_argument("--genesis", required=True, help="the network's genesis JSON file")
    node.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0", help="multiaddr to listen on (default: an ephemeral loopback port)")
    node.add_argument("--link-listen", metavar="MULTIADDR",
                      help="manager: multiaddr for the consensus links to the other validators, a connection apart "
                           "from gossip (default: the --listen interface, a port the system picks)")
    node.add_argument("--join", action="append", metavar="MULTIADDR", help="a peer to join, ending with /p2p/<peer id> (repeatable)")
    node.add_argument("--manager", help="worker: the account (0x...) of the manager whose pool to join")
    node.add_argument("--dishonest", action="store_true", help="worker: return wrong results (for PoCo demos and tests)")
    node.add_argument("--byzantine", choices=BYZANTINE_MODES, metavar="MODE",
                      help=f"manager: misbehave in consensus, for tests ({', '.join(BYZANTINE_MODES)})")
    node.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    node.add_argument("--http", metavar="[HOST:]PORT",
                      help="serve the explorer, its JSON API and /metrics on this address (HOST defaults to 127.0.0.1)")
    node.set_defaults(run=cmd_node)

    with_data_dir(commands.add_parser("status", help="show the node's chain height, peers and roles")).set_defaults(run=cmd_status)

    wallet = commands.add_parser("wallet", help="the node's account").add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    show = with_data_dir(wallet.add_parser("show", help="balance, frozen funds and nonce"))
    show.add_argument("--address", help="another account (default: the node's own)")
    show.set_defaults(run=cmd_wallet_show)
    with_data_dir(wallet.add_parser("address", help="only the node's account address (for scripts)")).set_defaults(run=cmd_wallet_address)

    account = commands.add_parser("account", help="move RLC").add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    send = with_data_dir(account.add_parser("send", help="transfer RLC to another account"))
    send.add_argument("--to", required=True, help="recipient address (0x + 40 hex digits)")
    send.add_argument("--amount", required=True, help="amount in RLC, e.g. 1.5")
    send.add_argument("--wait", action="store_true", help="wait until the transfer is committed")
    send.set_defaults(run=cmd_account_send)

    book = with_data_dir(commands.add_parser("orderbook", help="list the orders this node knows"))
    book.add_argument("kind", nargs="?", choices=["app", "dataset", "workerpool", "request"])
    book.add_argument("--app", help="only orders for this app")
    book.add_argument("--dataset", help="only orders for this dataset")
    book.add_argument("--workerpool", help="only orders for (or of) this workerpool")
    book.add_argument("--requester", help="only request orders of this requester")
    book.add_argument("--category", type=int, help="only orders of this category")
    book.add_argument("--min-trust", type=int, default=0, help="only orders offering or asking at least this trust")
    book.add_argument("--tag", type=int, help="only orders whose tag has these bits (1: TEE)")
    book.set_defaults(run=cmd_orderbook)

    order = commands.add_parser("order", help="publish or cancel orders").add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    publish = with_data_dir(order.add_parser("publish", help="sign an order with the node's key and gossip it"))
    publish.add_argument("kind", choices=["app", "dataset", "workerpool", "request"])
    publish.add_argument("--app", help="app address (app and request orders)")
    publish.add_argument("--dataset", help="dataset address (dataset orders; optional for requests)")
    publish.add_argument("--workerpool", help="workerpool address (workerpool orders; a restriction for requests)")
    publish.add_argument("--price", default="0", help="price per task in RLC (for a request: the workerpool max price)")
    publish.add_argument("--app-max-price", default="0", help="request: max app price in RLC")
    publish.add_argument("--dataset-max-price", default="0", help="request: max dataset price in RLC")
    publish.add_argument("--volume", type=int, help="number of tasks (default: 1 for a request, 1,000,000 otherwise)")
    publish.add_argument("--category", type=int, default=0)
    publish.add_argument("--trust", type=int, default=0)
    publish.add_argument("--tee", action="store_true", help="require or offer TEE (tag bit 0)")
    publish.add_argument("--params", help="request: iexec params (JSON string)")
    publish.add_argument("--app-restrict")
    publish.add_argument("--dataset-restrict")
    publish.add_argument("--workerpool-restrict")
    publish.add_argument("--requester-restrict")
    publish.set_defaults(run=cmd_order_publish)
    cancel = with_data_dir(order.add_parser("cancel", help="cancel one of your orders on the ledger"))
    cancel.add_argument("order_hash", help="the order's id as `pocnet orderbook` prints it (or its first 8+ hex digits)")
    cancel.add_argument("--wait", action="store_true")
    cancel.set_defaults(run=cmd_order_cancel)
    explain_order = with_data_dir(order.add_parser("explain", help="why a request order matches nothing: every rule each candidate breaks"))
    explain_order.add_argument("order_id", help="the request order's id (or its first 8+ hex digits)")
    explain_order.set_defaults(run=cmd_order_explain)
    order_show = with_data_dir(order.add_parser("show", help="one order of the book, with what is left of its volume"))
    order_show.add_argument("order_id", help="the order's id (or its first 8+ hex digits)")
    order_show.set_defaults(run=cmd_order_show)

    app = commands.add_parser("app", help="apps").add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    register = with_data_dir(app.add_parser("register", help="register an app by its measurement"))
    register.add_argument("name")
    register.add_argument("--measurement", required=True, help="SHA-256 of the app bundle (64 hex digits)")
    register.add_argument("--wait", action="store_true")
    register.set_defaults(run=cmd_app_register)

    dataset = commands.add_parser("dataset", help="datasets").add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    register = with_data_dir(dataset.add_parser("register", help="register a dataset by its encrypted blob hash"))
    register.add_argument("name")
    register.add_argument("--blob-hash", required=True, help="SHA-256 of the encrypted dataset (64 hex digits)")
    register.add_argument("--wait", action="store_true")
    register.set_defaults(run=cmd_dataset_register)

    app_init = with_json(app.add_parser("init", help="write an iApp template (iapp.toml + app.py)"))
    app_init.add_argument("directory")
    app_init.set_defaults(run=cmd_app_init)
    app_deploy = with_data_dir(app.add_parser("deploy", help="bundle an iApp directory, serve it, register its measurement"))
    app_deploy.add_argument("directory")
    app_deploy.add_argument("--name", help="default: the name in iapp.toml")
    app_deploy.set_defaults(run=cmd_app_deploy)
    for kind, parent in (("app", app), ("dataset", dataset)):
        publish_alias = with_data_dir(parent.add_parser("publish", help=f"sign and publish a {kind} order"))
        publish_alias.add_argument(kind, help=f"the {kind} address")
        publish_alias.add_argument("--price", default="0", help="price per task in RLC")
        publish_alias.add_argument("--volume", type=int, default=DEFAULT_OFFER_VOLUME, help="number of tasks (default 1,000,000)")
        publish_alias.add_argument("--tee", action="store_true")
        for restriction in ("app", "dataset", "workerpool", "requester"):
            if restriction != kind:
                publish_alias.add_argument(f"--{restriction}-restrict")
        publish_alias.set_defaults(run=cmd_order_publish, kind=kind, app_restrict=None, dataset_restrict=None)
    app_run = with_data_dir(app.add_parser("run", help="request an execution of an app (like iexec app run)"))
    app_run.add_argument("app")
    app_run.add_argument("--dataset")
    app_run.add_argument("--workerpool")
    app_run.add_argument("--args", help="arguments for the iApp")
    app_run.add_argument("--trust", type=int, default=1)
    app_run.add_argument("--category", type=int, default=0)
    app_run.add_argument("--max-price", default="100", help="ceiling on the task price in RLC (default 100)")
    app_run.add_argument("--watch", action="store_true", help="follow the task and download the result")
    app_run.add_argument("--output", help="where to decrypt the result (default ./result-<task>)")
    app_run.add_argument("--timeout", type=float, default=300.0)
    app_run.set_defaults(run=cmd_app_run)
    dataset_encrypt = with_json(dataset.add_parser("encrypt", help="encrypt a file locally (SecretBox): FILE.enc and FILE.key"))
    dataset_encrypt.add_argument("file")
    dataset_encrypt.set_defaults(run=cmd_dataset_encrypt)
    dataset_deploy = with_data_dir(dataset.add_parser("deploy", help="encrypt a file in the node, serve it, register it"))
    dataset_deploy.add_argument("file")
    dataset_deploy.add_argument("--name")
    dataset_deploy.set_defaults(run=cmd_dataset_deploy)

    task = commands.add_parser("task", help="tasks").add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    task_show = with_data_dir(task.add_parser("show", help="a task's status, contributions and deadlines"))
    task_show.add_argument("task_id")
    task_show.add_argument("--download", action="store_true", help="download and decrypt a completed task's result")
    task_show.add_argument("--output")
    task_show.add_argument("--watch", action="store_true", help="follow the task until it completes, fails or can be claimed")
    task_show.add_argument("--timeout", type=float, default=300.0, help="stop watching after this many seconds")
    task_show.set_defaults(run=cmd_task_show)
    task_list = with_data_dir(task.add_parser("list", help="the tasks of the node's account as requester, worker or manager"))
    task_list.add_argument("--role", choices=["requester", "worker", "manager"], help="only tasks in this role")
    task_list.add_argument("--account", help="another account (default: the node's own)")
    task_list.set_defaults(run=cmd_task_list)
    task_debug = with_data_dir(task.add_parser("debug", help="a task with its deal terms, contributions, replicates and logs"))
    task_debug.add_argument("task_id")
    task_debug.add_argument("--logs", action="store_true", help="the app's stdout/stderr of each replicate (requester only)")
    task_debug.set_defaults(run=cmd_task_debug, output=None)
    task_claim = with_data_dir(task.add_parser("claim", help="refund a task past its final deadline"))
    task_claim.add_argument("deal_id")
    task_claim.add_argument("index", type=int)
    task_claim.add_argument("--wait", action="store_true")
    task_claim.set_defaults(run=cmd_task_claim)

    deal = commands.add_parser("deal", help="deals").add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    show_deal = with_data_dir(deal.add_parser("show", help="a deal as the node's ledger has it"))
    show_deal.add_argument("deal_id")
    show_deal.add_argument("--watch", action="store_true", help="follow its tasks until each completes, fails or can be claimed")
    show_deal.add_argument("--timeout", type=float, default=300.0, help="stop watching after this many seconds")
    show_deal.set_defaults(run=cmd_deal_show)
    deal_list = with_data_dir(deal.add_parser("list", help="deals of the node's account (as requester or asset owner)"))
    deal_list.add_argument("--account", help="another account (default: the node's own)")
    deal_list.set_defaults(run=cmd_deal_list)

    pool = commands.add_parser("workerpool", help="workerpools").add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    for kind, parent in (("app", app), ("dataset", dataset), ("workerpool", pool)):
        listing = with_data_dir(parent.add_parser("list", help=f"registered {kind}s of the node's account"))
        listing.add_argument("--owner", help="another owner (default: the node's own account)")
        listing.add_argument("--all", action="store_true", help=f"every registered {kind}")
        listing.set_defaults(run=cmd_asset_list, kind=kind)

    worker = commands.add_parser("worker", help="the worker role").add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    certify = with_data_dir(worker.add_parser("certify", help="have an attestation authority certify this worker's platform key"))
    certify.add_argument("--authority", help="the authority's account (default: each authority of the genesis in turn)")
    certify.set_defaults(run=cmd_worker_certify)

    genesis = commands.add_parser("genesis", help="genesis files").add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    check = with_json(genesis.add_parser("check", help="validate a genesis file and print its summary"))
    check.add_argument("file")
    check.set_defaults(run=cmd_genesis_check)
    from node.fuzz.cli import add_parser as add_fuzz_parser  # `pocnet fuzz` lives in its own package

    add_fuzz_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    as_json = getattr(args, "json", False)
    try:
        if as_json:
            code = run_for_json(args)
        else:
            code = args.run(args)
    except UsageError as exc:
        code = EXIT_USAGE
        if as_json:
            print(json.dumps({"error": str(exc), "exit_code": code}), file=sys.stderr)
        else:
            print(f"pocnet: {exc}", file=sys.stderr)
    except BrokenPipeError:  # `pocnet ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    sys.exit(code)


def run_for_json(args: argparse.Namespace) -> int:
    """Run a command with its human lines (progress included) set aside, then print its one document.
    A command that ends with a non-zero status still prints what it found (a failed task's report)."""
    with contextlib.redirect_stdout(io.StringIO()):
        code: int = args.run(args)
    document = getattr(args, "document", None)
    if document is None:
        raise UsageError(f"`{args.command}` has no JSON output")
    print(json.dumps(document, indent=2))
    return code


if __name__ == "__main__":
    main()

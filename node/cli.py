"""The `pocnet` command line: run a node, and talk to a running one through its control socket.

Verbs follow iexec-sdk where they fit (`wallet`, `account`, `orderbook`, `order`, `app`, `dataset`).
Errors a user can fix are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import hashlib
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
    ControlClient,
    ControlRejected,
    DealInfo,
    DealRequest,
    DeployAppRequest,
    DeployDatasetRequest,
    Deployed,
    FetchResultRequest,
    ResultArchive,
    RunRequest,
    RunStarted,
    TaskInfo,
    TaskRequest,
    NodeStatus,
    OrderbookRequest,
    OrderList,
    OrderPublished,
    PublishOrderRequest,
    StatusRequest,
    SubmitRequest,
    TxResultInfo,
    TxResultRequest,
    TxSubmitted,
)
from protocols.crypto import ZERO_ADDRESS, hex_address, parse_address
from protocols.genesis import NRLC_PER_RLC, GenesisError, parse_genesis
from protocols.ledger.transactions import CancelOrder, Claim, RegisterApp, RegisterDataset, Transfer, TxBody
from protocols.orders import NO_TAG, AppOrder, DatasetOrder, Order, RequestOrder, WorkerpoolOrder, tag_bytes

EXIT_USAGE = 2
DATA_DIR_ENV = "POCNET_DATA_DIR"
# How long `--wait` follows a transaction before giving up (a devnet commits in well under a second).
WAIT_TIMEOUT_S = 30.0


class UsageError(Exception):
    """Bad input the user can fix: printed as one line, exit status 2."""


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


def show_rlc(nrlc: int) -> str:
    return f"{Decimal(nrlc) / NRLC_PER_RLC:f} RLC"


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


def submit(args: argparse.Namespace, body: TxBody) -> TxResultInfo | TxSubmitted:
    """Submit a transaction through the node; with --wait, follow it until committed."""
    submitted: TxSubmitted = call(args, SubmitRequest(body))
    print(f"transaction 0x{submitted.tx_id.hex()} submitted (nonce {submitted.nonce})")
    if not getattr(args, "wait", False):
        return submitted
    result = wait_committed(args, submitted.tx_id, "transaction")
    created = f", created 0x{result.created.hex()}" if result.created else ""
    print(f"committed in block {result.height}: {result.code}{created}")
    return result


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


def describe(order: Order) -> str:
    h = order.payload_digest.hex()[:16]
    if isinstance(order, AppOrder):
        return f"app        {h}  app {hex_address(order.app)} price {show_rlc(order.app_price)} volume {order.volume}"
    if isinstance(order, DatasetOrder):
        return f"dataset    {h}  dataset {hex_address(order.dataset)} price {show_rlc(order.dataset_price)} volume {order.volume}"
    if isinstance(order, WorkerpoolOrder):
        return (f"workerpool {h}  pool {hex_address(order.workerpool)} price {show_rlc(order.workerpool_price)} "
                f"volume {order.volume} trust {order.trust} category {order.category}")
    return (f"request    {h}  app {hex_address(order.app)} requester {hex_address(order.requester)} "
            f"volume {order.volume} trust {order.trust} category {order.category}")


# --- commands --------------------------------------------------------------------------------------


def cmd_node(args: argparse.Namespace) -> int:
    try:
        config = load_config(
            args.role, args.data_dir, args.genesis, args.listen, args.join or [], args.manager, args.dishonest,
            args.byzantine,
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
    return 0


def cmd_wallet_show(args: argparse.Namespace) -> int:
    info: AccountInfo = call(args, AccountRequest(address_arg(args.address) if args.address else b""))
    print(f"address  {hex_address(info.address)}")
    print(f"balance  {show_rlc(info.balance)}")
    print(f"frozen   {show_rlc(info.frozen)}")
    print(f"nonce    {info.nonce}")
    if info.score:
        print(f"score    {info.score}")
    return 0


def cmd_account_send(args: argparse.Namespace) -> int:
    amount = parse_rlc(args.amount)
    if amount == 0:
        raise UsageError("the amount must be positive")
    submit(args, Transfer(address_arg(args.to), amount))
    return 0


def cmd_orderbook(args: argparse.Namespace) -> int:
    answer: OrderList = call(args, OrderbookRequest(args.kind or ""))
    for order in answer.orders:
        print(describe(order))
    if not answer.orders:
        print("(no orders)")
    return 0


def _restrict(text: str | None) -> bytes:
    return address_arg(text) if text else ZERO_ADDRESS


def cmd_order_publish(args: argparse.Namespace) -> int:
    salt = os.urandom(16)
    tag = tag_bytes(1) if args.tee else NO_TAG
    price = parse_rlc(args.price)
    if args.kind == "app":
        order: Order = AppOrder(address_arg(args.app), price, args.volume, tag, _restrict(args.dataset_restrict),
                                _restrict(args.workerpool_restrict), _restrict(args.requester_restrict), salt)
    elif args.kind == "dataset":
        order = DatasetOrder(address_arg(args.dataset), price, args.volume, tag, _restrict(args.app_restrict),
                             _restrict(args.workerpool_restrict), _restrict(args.requester_restrict), salt)
    elif args.kind == "workerpool":
        order = WorkerpoolOrder(address_arg(args.workerpool), price, args.volume, tag, args.category, args.trust,
                                _restrict(args.app_restrict), _restrict(args.dataset_restrict),
                                _restrict(args.requester_restrict), salt)
    else:
        me: AccountInfo = call(args, AccountRequest(b""))
        order = RequestOrder(
            app=address_arg(args.app), app_max_price=parse_rlc(args.app_max_price),
            dataset=_restrict(args.dataset), dataset_max_price=parse_rlc(args.dataset_max_price),
            workerpool=_restrict(args.workerpool), workerpool_max_price=price,
            requester=me.address, volume=args.volume, tag=tag, category=args.category, trust=args.trust,
            beneficiary=me.address, callback=ZERO_ADDRESS, params=args.params or "", salt=salt,
        )
    published: OrderPublished = call(args, PublishOrderRequest(order))
    print(f"{args.kind} order 0x{published.order_hash.hex()} published")
    return 0


def cmd_order_cancel(args: argparse.Namespace) -> int:
    wanted = hex32(args.order_hash, "order hash")
    answer: OrderList = call(args, OrderbookRequest(""))
    matches = [o for o in answer.orders if o.payload_digest == wanted]
    if not matches:
        raise UsageError(f"order 0x{wanted.hex()} is not in this node's order book")
    submit(args, CancelOrder(matches[0]))
    return 0


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
    print(f"app         {hex_address(deal.app.pointer)} at {show_rlc(deal.app.price)}")
    if deal.dataset.pointer != ZERO_ADDRESS:
        print(f"dataset     {hex_address(deal.dataset.pointer)} at {show_rlc(deal.dataset.price)}")
    print(f"workerpool  {hex_address(deal.workerpool.pointer)} at {show_rlc(deal.workerpool.price)}")
    print(f"requester   {hex_address(deal.requester)}")
    print(f"tasks       {deal.bot_size} from index {deal.bot_first}, trust {deal.trust}, category {deal.category}")
    print(f"settled     {deal.settled}/{deal.bot_size}")
    return 0


APP_TEMPLATE_TOML = """name = "hello"
version = "1.0.0"
entrypoint = ["python3", "app.py"]
"""
APP_TEMPLATE_PY = """import json, os, sys

out = os.environ["IEXEC_OUT"]
with open(os.path.join(out, "result.txt"), "w") as f:
    f.write("Hello, " + (" ".join(sys.argv[1:]) or "world") + "\\n")
with open(os.path.join(out, "computed.json"), "w") as f:
    json.dump({"deterministic-output-path": os.path.join(out, "result.txt")}, f)
"""


def cmd_app_init(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    if (directory / "iapp.toml").exists():
        raise UsageError(f"{directory} already holds an iApp (iapp.toml exists)")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "iapp.toml").write_text(APP_TEMPLATE_TOML)
    (directory / "app.py").write_text(APP_TEMPLATE_PY)
    print(f"iApp template written to {directory}: edit app.py, then `pocnet app deploy {directory}`")
    return 0


def cmd_app_deploy(args: argparse.Namespace) -> int:
    from node.enclave.bundle import BundleError, build_bundle

    try:
        bundle, manifest = build_bundle(Path(args.directory))
    except (BundleError, OSError) as exc:
        raise UsageError(f"cannot bundle {args.directory}: {exc}") from None
    deployed: Deployed = call(args, DeployAppRequest(args.name or manifest.name, bundle))
    print(f"bundle of {len(bundle)} bytes, measurement 0x{deployed.content_hash.hex()}")
    _follow(args, deployed.tx_id, "app")
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
    return 0


def cmd_dataset_deploy(args: argparse.Namespace) -> int:
    try:
        plaintext = Path(args.file).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    deployed: Deployed = call(args, DeployDatasetRequest(args.name or Path(args.file).name, plaintext))
    print(f"encrypted in the node (it keeps the key), blob 0x{deployed.content_hash.hex()}")
    _follow(args, deployed.tx_id, "dataset")
    return 0


def _follow(args: argparse.Namespace, tx_id: bytes, what: str) -> None:
    result = wait_committed(args, tx_id, f"{what} registration")
    print(f"{what} {hex_address(result.created)} registered in block {result.height}")


TASK_STATES = {0: "UNSET", 1: "ACTIVE", 2: "REVEALING", 3: "COMPLETED", 4: "FAILED"}


def cmd_app_run(args: argparse.Namespace) -> int:
    started: RunStarted = call(args, RunRequest(
        app=address_arg(args.app), dataset=address_arg(args.dataset) if args.dataset else b"",
        workerpool=address_arg(args.workerpool) if args.workerpool else b"", args=args.args or "",
        trust=args.trust, category=args.category, max_price=parse_rlc(args.max_price),
    ))
    print(f"request 0x{started.request_hash.hex()} published at {show_rlc(started.task_price)} per task")
    print(f"deal id (once matched) 0x{started.deal_id.hex()}")
    if not args.watch:
        return 0
    return watch_task(args, started.deal_id)


def watch_task(args: argparse.Namespace, deal_id: bytes) -> int:
    from protocols.matching import task_id_for

    deadline = time.monotonic() + args.timeout
    shown = ""
    task_id = b""
    while time.monotonic() < deadline:
        if not task_id:
            info: DealInfo = call(args, DealRequest(deal_id))
            if info.deal is None:
                shown = _progress(shown, "waiting for a match")
                time.sleep(0.2)
                continue
            task_id = task_id_for(deal_id, info.deal.bot_first)
            print(f"matched: task 0x{task_id.hex()}")
        task_info: TaskInfo = call(args, TaskRequest(task_id))
        task = task_info.task
        state = "waiting for initialization" if task is None else TASK_STATES[task.status]
        if task is not None:
            state += f", {len(task.contributors)} contribution(s), {task.reveal_counter} reveal(s)"
        shown = _progress(shown, state)
        if task is not None and task.status == 3:
            return _download(args, task_id)
        if task is not None and task.status == 4:
            raise UsageError("the task failed; the requester was refunded by claim")
        time.sleep(0.3)
    raise UsageError(f"gave up watching after {args.timeout:.0f} s (the task goes on: `pocnet task show`)")


def _progress(shown: str, state: str) -> str:
    if state != shown:
        print(f"  {time.strftime('%H:%M:%S')} {state}")
    return state


def _download(args: argparse.Namespace, task_id: bytes) -> int:
    import io
    import tarfile

    archive: ResultArchive = call(args, FetchResultRequest(task_id))
    output = Path(args.output or f"result-{task_id.hex()[:12]}")
    output.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive.archive)) as tar:
        tar.extractall(output, filter="data")
    print(f"result decrypted into {output}/:")
    for path in sorted(output.rglob("*")):
        if path.is_file():
            print(f"  {path.relative_to(output)} ({path.stat().st_size} bytes)")
            if path.suffix in (".txt", ".json") and path.stat().st_size < 2048 and path.name != "computed.json":
                print("    " + path.read_text(errors="replace").strip().replace("\n", "\n    "))
    return 0


def cmd_task_show(args: argparse.Namespace) -> int:
    info: TaskInfo = call(args, TaskRequest(hex32(args.task_id, "task id")))
    task = info.task
    if task is None:
        raise UsageError(f"no initialized task 0x{info.task_id.hex()} at height {info.height}")
    print(f"task          0x{info.task_id.hex()}")
    print(f"deal          0x{task.deal_id.hex()} index {task.index}")
    print(f"status        {TASK_STATES[task.status]}")
    print(f"contributions {len(task.contributors)}: " + ", ".join(hex_address(w) for w in task.contributors))
    print(f"reveals       {task.reveal_counter}/{task.winner_counter}")
    print(f"deadlines     contribution {task.contribution_deadline}, reveal {task.reveal_deadline}, final {task.final_deadline} (ms)")
    if task.result_digest:
        print(f"result digest 0x{task.result_digest.hex()}")
    if args.download and task.status == 3:
        return _download(args, info.task_id)
    return 0


CONTRIBUTION_STATES = {1: "CONTRIBUTED", 2: "PROVED", 3: "REJECTED"}


def cmd_task_debug(args: argparse.Namespace) -> int:
    """Everything the ledger knows of a task: the deal's terms, each contribution, deadlines from now."""
    cmd_task_show(argparse.Namespace(**{**vars(args), "download": False}))
    info: TaskInfo = call(args, TaskRequest(hex32(args.task_id, "task id")))
    task, deal = info.task, info.deal
    if task is None or deal is None:
        return 0
    now_ms = time.time() * 1000
    print(f"deal terms    trust {deal.trust}, category {deal.category}, worker stake {show_rlc(deal.worker_stake)}")
    print(f"params        {deal.params or '(none)'}")
    for name, at in (("contribution", task.contribution_deadline), ("reveal", task.reveal_deadline),
                     ("final", task.final_deadline)):
        if at:
            print(f"{name + ' due':<13} {(at - now_ms) / 1000:+.1f} s from now")
    for worker, contribution in zip(task.contributors, info.contributions):
        agrees = "consensus" if contribution.result_hash == task.consensus_value else "other result"
        print(f"  {hex_address(worker)}  {CONTRIBUTION_STATES.get(contribution.status, '?'):<11} "
              f"weight {contribution.weight}  hash 0x{contribution.result_hash.hex()[:16]}... ({agrees})")
    print("worker logs: `python -m devnet logs WORKER` on a devnet (enclave stdout/stderr tails are logged on failure)")
    return 0


def cmd_task_claim(args: argparse.Namespace) -> int:
    submit(args, Claim(hex32(args.deal_id, "deal id"), args.index))
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
    print(f"total supply    {show_rlc(genesis.total_supply)} in {len(genesis.allocations)} accounts")
    print("categories      " + ", ".join(f"{c.id}:{c.name} T={c.work_clock_time_ref_ms} ms" for c in genesis.categories))
    return 0


# --- parser ----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pocnet", description="pocnet: a peer-to-peer marketplace for confidential computing.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_data_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--data-dir", default=os.environ.get(DATA_DIR_ENV, "."),
                       help=f"the node's data directory (default: ${DATA_DIR_ENV} or the current directory)")
        return p

    node = with_data_dir(commands.add_parser("node", help="run a node"))
    node.add_argument("--role", required=True, help=f"one or more of {', '.join(ROLES)}, comma-separated")
    node.add_argument("--genesis", required=True, help="the network's genesis JSON file")
    node.add_argument("--listen", default="/ip4/127.0.0.1/tcp/0", help="multiaddr to listen on (default: an ephemeral loopback port)")
    node.add_argument("--join", action="append", metavar="MULTIADDR", help="a peer to join, ending with /p2p/<peer id> (repeatable)")
    node.add_argument("--manager", help="worker: the account (0x...) of the manager whose pool to join")
    node.add_argument("--dishonest", action="store_true", help="worker: return wrong results (for PoCo demos and tests)")
    node.add_argument("--byzantine", choices=BYZANTINE_MODES, metavar="MODE",
                      help=f"manager: misbehave in consensus, for tests ({', '.join(BYZANTINE_MODES)})")
    node.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    node.set_defaults(run=cmd_node)

    with_data_dir(commands.add_parser("status", help="show the node's chain height, peers and roles")).set_defaults(run=cmd_status)

    wallet = commands.add_parser("wallet", help="the node's account").add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    show = with_data_dir(wallet.add_parser("show", help="balance, frozen funds and nonce"))
    show.add_argument("--address", help="another account (default: the node's own)")
    show.set_defaults(run=cmd_wallet_show)

    account = commands.add_parser("account", help="move RLC").add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    send = with_data_dir(account.add_parser("send", help="transfer RLC to another account"))
    send.add_argument("--to", required=True, help="recipient address (0x + 40 hex digits)")
    send.add_argument("--amount", required=True, help="amount in RLC, e.g. 1.5")
    send.add_argument("--wait", action="store_true", help="wait until the transfer is committed")
    send.set_defaults(run=cmd_account_send)

    book = with_data_dir(commands.add_parser("orderbook", help="list the orders this node knows"))
    book.add_argument("kind", nargs="?", choices=["app", "dataset", "workerpool", "request"])
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
    publish.add_argument("--volume", type=int, default=1, help="number of tasks")
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
    cancel.add_argument("order_hash", help="the order's hash (as `pocnet orderbook` prints, in full)")
    cancel.add_argument("--wait", action="store_true")
    cancel.set_defaults(run=cmd_order_cancel)

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

    app_init = app.add_parser("init", help="write an iApp template (iapp.toml + app.py)")
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
        publish_alias.add_argument("--volume", type=int, default=1_000_000, help="number of tasks (default 1,000,000)")
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
    dataset_encrypt = dataset.add_parser("encrypt", help="encrypt a file locally (SecretBox): FILE.enc and FILE.key")
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
    task_show.set_defaults(run=cmd_task_show)
    task_debug = with_data_dir(task.add_parser("debug", help="a task with its deal terms, contributions and deadlines"))
    task_debug.add_argument("task_id")
    task_debug.set_defaults(run=cmd_task_debug, output=None)
    task_claim = with_data_dir(task.add_parser("claim", help="refund a task past its final deadline"))
    task_claim.add_argument("deal_id")
    task_claim.add_argument("index", type=int)
    task_claim.add_argument("--wait", action="store_true")
    task_claim.set_defaults(run=cmd_task_claim)

    deal = commands.add_parser("deal", help="deals").add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    show_deal = with_data_dir(deal.add_parser("show", help="a deal as the node's ledger has it"))
    show_deal.add_argument("deal_id")
    show_deal.set_defaults(run=cmd_deal_show)

    genesis = commands.add_parser("genesis", help="genesis files").add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    check = genesis.add_parser("check", help="validate a genesis file and print its summary")
    check.add_argument("file")
    check.set_defaults(run=cmd_genesis_check)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        code = args.run(args)
    except UsageError as exc:
        print(f"pocnet: {exc}", file=sys.stderr)
        code = EXIT_USAGE
    sys.exit(code)


if __name__ == "__main__":
    main()

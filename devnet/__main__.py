"""`python -m devnet COMMAND`: launch and drive a local pocnet network (DESIGN.md section 10)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from devnet.netns import NetnsDevnet, devnet_at
from devnet.network import Devnet, DevnetError, NodeSpec

DEFAULT_DIR = ".devnet"
EXIT_USAGE = 2


def print_table(devnet: Devnet, nodes: list[NodeSpec]) -> None:
    print(f"{'node':<13}{'roles':<20}{'pid':>8}  {'height':>6}  {'peers':>5}  {'address':<42}  explorer")
    for node in nodes:
        status = devnet.status(node.name)
        if status is None:
            print(f"{node.name:<13}{node.roles:<20}{node.pid:>8}  {'down':>6}")
            continue
        print(f"{node.name:<13}{node.roles:<20}{node.pid:>8}  {status.height:>6}  {status.peers:>5}  0x{status.address.hex()}"
              f"  {status.http}")
        for note in status.notes:
            if "NOT READY" in note or "NOT AN AUTHORITY" in note:
                print(f"{'':<13}{note}")


def dir_option(args: argparse.Namespace) -> str:
    """How the user named the devnet's directory, for the hints we print (empty for the default)."""
    return "" if args.dir == DEFAULT_DIR else f" --dir {args.dir}"


def cmd_up(args: argparse.Namespace) -> None:
    devnet = devnet_at(Path(args.dir), args.netns)
    extra = [NodeSpec(f"provider-{i}", "provider") for i in range(args.providers)]
    extra += [NodeSpec(f"worker-{i}", "worker") for i in range(args.workers)]
    nodes = devnet.create(args.managers, args.followers, extra=extra)
    print(f"devnet in {devnet.root}: {args.managers} managers, an attestation authority, {args.followers} followers, "
          f"{args.providers} provider(s), {args.workers} worker(s) in manager-0's pool; starting...")
    try:
        devnet.start(nodes)
        devnet.wait_for_height(nodes, 1, args.timeout)
    except DevnetError:
        devnet.stop(nodes)
        raise
    print_table(devnet, nodes)
    where = dir_option(args)
    print(f"\nlogs: python -m devnet{where} logs NODE   stop: python -m devnet{where} down")
    print(f"CLI:  pocnet status --data-dir {devnet.node_dir(nodes[0].name)}")
    print(f"join: pocnet node --role worker --data-dir DIR --genesis {devnet.genesis_path} "
          f"--join {devnet.addresses(nodes[0].name)[0]} --manager 0x{devnet.address_of(nodes[0].name).hex()}")
    print("      (then `pocnet worker certify --data-dir DIR` and fund it: see README, 'Every role by hand')")


def cmd_status(args: argparse.Namespace) -> None:
    devnet = Devnet(Path(args.dir))
    print_table(devnet, devnet.load())


def cmd_logs(args: argparse.Namespace) -> None:
    devnet = Devnet(Path(args.dir))
    names = [n.name for n in devnet.load()]
    if args.node not in names:
        raise DevnetError(f"no node {args.node!r}; nodes: {', '.join(names)}")
    print(devnet.tail(args.node, args.lines))


def cmd_address(args: argparse.Namespace) -> None:
    """For scripts and the README's hand-run steps: a node's account, or the multiaddr to --join it."""
    devnet = Devnet(Path(args.dir))
    names = [n.name for n in devnet.load()]
    if args.node not in names:
        raise DevnetError(f"no node {args.node!r}; nodes: {', '.join(names)}")
    if args.multiaddr:
        addresses = devnet.addresses(args.node)
        if not addresses:
            raise DevnetError(f"{args.node} is not listening (is the devnet up? `python -m devnet status`)")
        print(addresses[0])
    else:
        print(f"0x{devnet.address_of(args.node).hex()}")


def cmd_down(args: argparse.Namespace) -> None:
    devnet = devnet_at(Path(args.dir))
    nodes = devnet.load()
    killed = devnet.stop(nodes)
    print(f"stopped {len(nodes)} nodes" + (f" ({', '.join(killed)} had to be killed)" if killed else ""))
    if isinstance(devnet, NetnsDevnet):
        removed = devnet.remove_network()
        print(f"removed {len(removed)} network namespaces and bridges: {', '.join(removed) or 'none left'}")


def cmd_match_demo(args: argparse.Namespace) -> None:
    from devnet.match_demo import main as demo

    demo()


def cmd_demo(args: argparse.Namespace) -> None:
    from devnet.network_demo import run_demo

    run_demo(Path(args.dir), args.managers, args.followers, args.trust, args.honest_workers, not args.all_honest)


def cmd_chaos(args: argparse.Namespace) -> None:
    from devnet.chaos import run_chaos

    kinds = tuple(k.strip() for k in args.faults.split(",") if k.strip())
    if not run_chaos(Path(args.dir), args.seed, args.duration, kinds, args.managers, args.followers, args.max_gap,
                     args.netns):
        sys.exit(1)


def main() -> None:
    # --dir is accepted before or after the command (`python -m devnet --dir X up` and `... up --dir X`).
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--dir", default=argparse.SUPPRESS, help=f"the devnet's directory (default: {DEFAULT_DIR})")
    parser = argparse.ArgumentParser(prog="python -m devnet", description="Launch and drive a local pocnet network.")
    parser.add_argument("--dir", default=DEFAULT_DIR, help=f"the devnet's directory (default: {DEFAULT_DIR})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser("up", parents=[where], help="generate keys and a genesis, start the nodes, wait for the first block")
    up.add_argument("--managers", type=int, default=4, help="validators (default 4: tolerates one fault)")
    up.add_argument("--followers", type=int, default=2, help="non-validating nodes with the requester role (default 2)")
    up.add_argument("--workers", type=int, default=0, help="honest workers in manager-0's pool, certified and funded (default 0)")
    up.add_argument("--providers", type=int, default=0, help="nodes with the provider role (default 0)")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the first block")
    up.add_argument("--netns", action="store_true", help="each node in its own network namespace on a bridge (root)")
    up.set_defaults(run=cmd_up)
    commands.add_parser("status", parents=[where], help="height, peers and address of every node").set_defaults(run=cmd_status)
    logs = commands.add_parser("logs", parents=[where], help="the end of one node's log")
    logs.add_argument("node")
    logs.add_argument("-n", "--lines", type=int, default=40)
    logs.set_defaults(run=cmd_logs)
    address = commands.add_parser("address", parents=[where], help="a node's account address (or --multiaddr to join it)")
    address.add_argument("node")
    address.add_argument("--multiaddr", action="store_true", help="the multiaddr to pass to `pocnet node --join`")
    address.set_defaults(run=cmd_address)
    commands.add_parser("down", parents=[where], help="stop every node (SIGTERM, then SIGKILL after 5 s)").set_defaults(run=cmd_down)
    demo = commands.add_parser(
        "demo", parents=[where],
        help="the whole story on a fresh devnet: deploy an iApp and a protected dataset, run it with trust 3, "
        "PoCo catches a lying worker, the requester decrypts the result",
        description="Start a devnet (managers, an attestation authority, a requester, a provider, workers of which "
        "one lies), deploy the word-count iApp and an encrypted dataset, request it with trust 3, watch the "
        "managers match it, the workers compute in emulated enclaves and PoCo pay the honest ones and seize the "
        "liar's stake, decrypt the result, print every balance change, and stop the network.",
    )
    demo.add_argument("--managers", type=int, default=4)
    demo.add_argument("--followers", type=int, default=2)
    demo.add_argument("--trust", type=int, default=3, help="PoCo trust of the request (default 3)")
    demo.add_argument("--honest-workers", type=int, default=3)
    demo.add_argument("--all-honest", action="store_true", help="no dishonest worker")
    demo.set_defaults(run=cmd_demo)
    chaos = commands.add_parser("chaos", parents=[where], help="a devnet under a seeded fault schedule; checks the invariants")
    chaos.add_argument("--seed", type=int, required=True, help="the same seed gives the same schedule")
    chaos.add_argument("--duration", type=float, default=60.0, help="seconds of workload and faults (default 60)")
    chaos.add_argument("--faults", default="kill,restart,pause",
                       help="kinds among kill,restart,pause,partition,loss,twins,byzantine (default kill,restart,pause)")
    chaos.add_argument("--managers", type=int, default=4)
    chaos.add_argument("--followers", type=int, default=2)
    chaos.add_argument("--max-gap", type=float, default=60.0,
                       help="the longest gap between blocks, in seconds, that still counts as live (default 60)")
    chaos.add_argument("--netns", action="store_true",
                       help="each node in its own network namespace (root); needed for partition and loss")
    chaos.set_defaults(run=cmd_chaos)
    commands.add_parser("match-demo", parents=[where], help="the in-process matching demo (no network)").set_defaults(run=cmd_match_demo)
    args = parser.parse_args()
    try:
        args.run(args)
    except DevnetError as exc:
        print(f"devnet: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()

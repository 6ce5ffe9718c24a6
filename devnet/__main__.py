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
    print(f"{'node':<13}{'roles':<20}{'pid':>8}  {'height':>6}  {'peers':>5}  address")
    for node in nodes:
        status = devnet.status(node.name)
        if status is None:
            print(f"{node.name:<13}{node.roles:<20}{node.pid:>8}  {'down':>6}")
            continue
        print(f"{node.name:<13}{node.roles:<20}{node.pid:>8}  {status.height:>6}  {status.peers:>5}  0x{status.address.hex()}")


def cmd_up(args: argparse.Namespace) -> None:
    devnet = devnet_at(Path(args.dir), args.netns)
    nodes = devnet.create(args.managers, args.followers)
    print(f"devnet in {devnet.root}: {args.managers} managers, {args.followers} followers; starting...")
    try:
        devnet.start(nodes)
        devnet.wait_for_height(nodes, 1, args.timeout)
    except DevnetError:
        devnet.stop(nodes)
        raise
    print_table(devnet, nodes)
    print(f"\nlogs: python -m devnet logs NODE   stop: python -m devnet down   CLI: pocnet status --data-dir {devnet.node_dir(nodes[0].name)}")


def cmd_status(args: argparse.Namespace) -> None:
    devnet = Devnet(Path(args.dir))
    print_table(devnet, devnet.load())


def cmd_logs(args: argparse.Namespace) -> None:
    devnet = Devnet(Path(args.dir))
    names = [n.name for n in devnet.load()]
    if args.node not in names:
        raise DevnetError(f"no node {args.node!r}; nodes: {', '.join(names)}")
    print(devnet.tail(args.node, args.lines))


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
    parser = argparse.ArgumentParser(prog="python -m devnet", description="Launch and drive a local pocnet network.")
    parser.add_argument("--dir", default=DEFAULT_DIR, help=f"the devnet's directory (default: {DEFAULT_DIR})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser("up", help="generate keys and a genesis, start the nodes, wait for the first block")
    up.add_argument("--managers", type=int, default=4, help="validators (default 4: tolerates one fault)")
    up.add_argument("--followers", type=int, default=2, help="non-validating nodes (requester role)")
    up.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the first block")
    up.add_argument("--netns", action="store_true", help="each node in its own network namespace on a bridge (root)")
    up.set_defaults(run=cmd_up)
    commands.add_parser("status", help="height, peers and address of every node").set_defaults(run=cmd_status)
    logs = commands.add_parser("logs", help="the end of one node's log")
    logs.add_argument("node")
    logs.add_argument("-n", "--lines", type=int, default=40)
    logs.set_defaults(run=cmd_logs)
    commands.add_parser("down", help="stop every node (SIGTERM, then SIGKILL after 5 s)").set_defaults(run=cmd_down)
    demo = commands.add_parser("demo", help="start a devnet, publish orders, watch the managers match them into deals")
    demo.add_argument("--managers", type=int, default=4)
    demo.add_argument("--followers", type=int, default=2)
    demo.add_argument("--trust", type=int, default=3, help="PoCo trust of the request (default 3)")
    demo.add_argument("--honest-workers", type=int, default=3)
    demo.add_argument("--all-honest", action="store_true", help="no dishonest worker")
    demo.set_defaults(run=cmd_demo)
    chaos = commands.add_parser("chaos", help="a devnet under a seeded fault schedule; checks the invariants")
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
    commands.add_parser("match-demo", help="the in-process matching demo (no network)").set_defaults(run=cmd_match_demo)
    args = parser.parse_args()
    try:
        args.run(args)
    except DevnetError as exc:
        print(f"devnet: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


if __name__ == "__main__":
    main()

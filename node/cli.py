"""The `pocnet` command line. For now it checks genesis files; the node and its client commands come with
the networking work (see the README's roadmap)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from protocols.crypto import hex_address
from protocols.genesis import NRLC_PER_RLC, GenesisError, parse_genesis

EXIT_USAGE = 2


def check_genesis(path: Path) -> int:
    try:
        genesis = parse_genesis(path.read_text())
    except OSError as exc:
        print(f"pocnet: cannot read genesis {path}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except GenesisError as exc:
        print(f"pocnet: invalid genesis {path}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"chain id        {genesis.chain_id}")
    print(f"genesis hash    0x{genesis.genesis_hash.hex()}")
    print(f"validators      {len(genesis.validators)}: " + ", ".join(
        f"{v.name} ({hex_address(v.address)})" for v in genesis.validators))
    print(f"total supply    {genesis.total_supply / NRLC_PER_RLC:,.9f} RLC in {len(genesis.allocations)} accounts")
    print(f"categories      " + ", ".join(f"{c.id}:{c.name} T={c.work_clock_time_ref_ms} ms" for c in genesis.categories))
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="pocnet", description="pocnet: a peer-to-peer marketplace for confidential computing.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    genesis = commands.add_parser("genesis", help="inspect genesis files")
    genesis_commands = genesis.add_subparsers(dest="genesis_command", required=True, metavar="SUBCOMMAND")
    check = genesis_commands.add_parser("check", help="validate a genesis file and print its summary")
    check.add_argument("file", type=Path, help="path to the genesis JSON file")
    args = parser.parse_args(argv)
    if args.command == "genesis" and args.genesis_command == "check":
        sys.exit(check_genesis(args.file))


if __name__ == "__main__":
    main()

"""`python -m devnet COMMAND`: launch and drive a local pocnet network."""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devnet", description="Launch and drive a local pocnet network.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("demo", help="match signed orders into a deal on a fresh in-process ledger and print it")
    args = parser.parse_args()
    if args.command == "demo":
        from devnet.match_demo import main as demo

        demo()


if __name__ == "__main__":
    main()

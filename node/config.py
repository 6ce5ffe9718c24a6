"""A node's configuration from the command line, checked before anything starts.

Every problem a user can fix (an unknown role, an unreadable or invalid genesis, a malformed multiaddr, a
bootstrap address without a peer id) is a `ConfigError` whose message is the one line the CLI prints
before exiting with status 2.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from multiaddr import Multiaddr

from protocols.crypto import parse_address
from protocols.genesis import Genesis, GenesisError, parse_genesis

ROLES = ("manager", "worker", "requester", "provider", "authority")


class ConfigError(Exception):
    """A configuration error the user can fix; the message is complete and fits on one line."""


@dataclass(frozen=True)
class NodeConfig:
    roles: tuple[str, ...]
    data_dir: Path
    genesis: Genesis
    listen: str
    join: tuple[str, ...]
    manager: bytes | None = None  # workers: the account of the manager whose pool they join
    dishonest: bool = False  # workers: lie about results (tests and demos of PoCo)
    http: tuple[str, int] | None = None  # serve the explorer, API and metrics on (host, port); None: not at all
    byzantine: str | None = None  # managers: misbehave in consensus (node/byzantine.py; tests and chaos runs)
    # Validators: where the consensus link host listens (node/net/link_host.py); None: --listen's interface,
    # a port the system picks.
    link_listen: str | None = None


def parse_roles(text: str) -> tuple[str, ...]:
    roles = tuple(dict.fromkeys(r.strip() for r in text.split(",") if r.strip()))
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise ConfigError(f"--role {text!r}: choose one or more of {', '.join(ROLES)}, separated by commas")
    return roles


def parse_multiaddr(text: str, option: str, need_peer_id: bool) -> str:
    try:
        address = Multiaddr(text)
    except Exception as exc:  # the multiaddr package raises several unrelated types
        raise ConfigError(f"{option} {text!r} is not a valid multiaddr: {exc}") from None
    protocols = [p.name for p in address.protocols()]
    if "tcp" not in protocols:
        raise ConfigError(f"{option} {text!r} must name a TCP port, e.g. /ip4/127.0.0.1/tcp/4001")
    if need_peer_id and "p2p" not in protocols:
        raise ConfigError(f"{option} {text!r} must end with /p2p/<peer id> (see the peer's node.addr file)")
    return text


def parse_http(text: str) -> tuple[str, int]:
    """`--http [HOST:]PORT`: the host defaults to 127.0.0.1 (the explorer is for this machine unless told
    otherwise); port 0 picks a free one (`pocnet status` shows it)."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--http {text!r}: give [HOST:]PORT, e.g. 127.0.0.1:8080 or 8080")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ConfigError(f"--http {text!r}: {host!r} is not an IP address (or localhost)") from None
    return host, int(port)


def load_config(
    roles: str, data_dir: str, genesis: str, listen: str, join: list[str], manager: str | None = None,
    dishonest: bool = False, http: str | None = None, byzantine: str | None = None, link_listen: str | None = None,
) -> NodeConfig:
    # Absolute: the enclave runner changes directories and mount namespaces, where a relative path breaks.
    directory = Path(data_dir).resolve()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--data-dir {data_dir}: cannot create it: {exc.strerror}") from None
    try:
        text = Path(genesis).read_text()
    except OSError as exc:
        raise ConfigError(f"--genesis {genesis}: cannot read it: {exc.strerror}") from None
    try:
        parsed = parse_genesis(text)
    except GenesisError as exc:
        raise ConfigError(f"--genesis {genesis}: {exc}") from None
    parsed_roles = parse_roles(roles)
    manager_address = None
    if manager is not None:
        try:
            manager_address = parse_address(manager)
        except ValueError as exc:
            raise ConfigError(f"--manager: {exc}") from None
    elif "worker" in parsed_roles:
        raise ConfigError("--role worker needs --manager ADDRESS: the account of the manager whose pool to join")
    if byzantine is not None and "manager" not in parsed_roles:
        raise ConfigError("--byzantine is for managers: add --role manager (a validator of the genesis)")
    if link_listen is not None and "manager" not in parsed_roles:
        raise ConfigError("--link-listen is for managers (validators link to each other): add --role manager or drop it")
    return NodeConfig(
        manager=manager_address,
        dishonest=dishonest,
        byzantine=byzantine,
        roles=parsed_roles,
        data_dir=directory,
        genesis=parsed,
        listen=parse_multiaddr(listen, "--listen", need_peer_id=False),
        join=tuple(parse_multiaddr(j, "--join", need_peer_id=True) for j in join),
        http=parse_http(http) if http is not None else None,
        link_listen=parse_multiaddr(link_listen, "--link-listen", need_peer_id=False) if link_listen is not None else None,
    )

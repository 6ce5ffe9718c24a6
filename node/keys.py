"""The node's Ed25519 key: created on first start, kept in the data directory, readable by its owner only.

The same key is the libp2p identity, the ledger account and the signer of orders, votes and transactions.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from node.operator_errors import OperatorError
from protocols.crypto import Keypair, hex_address

log = logging.getLogger(__name__)

KEY_FILE = "node.key"
# A worker's platform key and the attestation authority's certificate of it (DESIGN.md section 7).
PLATFORM_KEY_FILE = "platform.key"
PLATFORM_CERT_FILE = "platform.cert"
SEED_LEN = 32


class KeyFileError(OperatorError):
    """The key file exists but cannot be used. Never replaced by a new key: the file is the node's identity
    and account, so the operator decides (restore it, or move it away for a new identity)."""


def load_or_create_key(data_dir: Path) -> Keypair:
    path = data_dir / KEY_FILE
    if path.exists():
        try:
            seed = path.read_bytes()
        except OSError as exc:
            raise KeyFileError(f"cannot read the node key {path} ({exc.strerror}): fix its permissions, or restore it from a backup") from None
        if len(seed) != SEED_LEN:
            raise KeyFileError(
                f"the node key {path} is damaged: {len(seed)} bytes instead of a {SEED_LEN}-byte Ed25519 seed: "
                "restore it from a backup, or move it away to start with a new identity and account"
            )
        if path.stat().st_mode & 0o077:
            log.warning("event=key-permissions path=%s mode=%o fix='chmod 600'", path, path.stat().st_mode & 0o777)
        return Keypair(seed)
    keypair = Keypair.generate()
    write_key(path, keypair)
    log.info("event=key-created path=%s address=%s", path, hex_address(keypair.address))
    return keypair


def write_key(path: Path, keypair: Keypair) -> None:
    """Write the seed with mode 0600 from the start (never world-readable, not even for an instant)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(keypair.seed)

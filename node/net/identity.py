"""The node key as a libp2p identity: one Ed25519 key is the peer id, the account and the signer.

Peer ids cross our API as base58 strings (`12D3KooW...`) so that the rest of the node never handles
libp2p types; `public_key_of` recovers the Ed25519 public key (and so the account address) from one.
"""

from __future__ import annotations

from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair, KeyType
from libp2p.peer.id import ID

PeerId = str


def libp2p_key_pair(seed: bytes) -> KeyPair:
    """libp2p's key pair for our 32-byte seed: the same PyNaCl SigningKey as `protocols.crypto.Keypair`."""
    if type(seed) is not bytes or len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes")
    return create_new_key_pair(seed)


def peer_id_of_seed(seed: bytes) -> PeerId:
    return ID.from_pubkey(libp2p_key_pair(seed).public_key).to_base58()


def parse_peer_id(text: PeerId) -> ID:
    """libp2p's ID for a base58 peer id; ValueError if it is not one."""
    try:
        return ID.from_base58(text)
    except Exception as exc:  # base58 and multihash raise unrelated types
        raise ValueError(f"not a peer id: {text!r} ({exc})") from None


def public_key_of(peer_id: PeerId) -> bytes:
    """The raw 32-byte Ed25519 public key inlined in an Ed25519 peer id; ValueError for other peer ids."""
    key = parse_peer_id(peer_id).extract_public_key()
    if key is None or key.get_type() != KeyType.Ed25519:
        raise ValueError(f"peer id {peer_id} does not inline an Ed25519 public key")
    return key.to_bytes()

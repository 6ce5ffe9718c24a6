"""Encryption around the enclave: datasets, dataset keys released to an enclave, and sealed results.

Everyone's key is an Ed25519 key (accounts and enclaves alike), so sealing converts it to the Curve25519 key
of the same secret (libsodium's `crypto_sign_ed25519_*_to_curve25519`) and uses a SealedBox: anonymous
sender, authenticated ciphertext, only the holder of the matching secret can open it. Datasets use a
SecretBox (XSalsa20-Poly1305) under a random key the provider keeps, as DESIGN.md section 7 says.
"""

from __future__ import annotations

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.secret
import nacl.utils

from protocols.crypto import Keypair

DATASET_KEY_LEN = nacl.secret.SecretBox.KEY_SIZE


class SealError(ValueError):
    """A ciphertext that this key cannot open: wrong key, or tampered or truncated bytes."""


def seal_to(ed25519_public_key: bytes, plaintext: bytes) -> bytes:
    """Encrypt so that only the holder of the Ed25519 secret matching `ed25519_public_key` can read it."""
    try:
        curve_public = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(ed25519_public_key)
    except (nacl.exceptions.RuntimeError, nacl.exceptions.ValueError, nacl.exceptions.TypeError) as exc:
        raise SealError(f"{ed25519_public_key.hex()} is not an Ed25519 public key: {exc}") from None
    return nacl.public.SealedBox(nacl.public.PublicKey(curve_public)).encrypt(plaintext)


def open_sealed(sealed: bytes, ed25519_seed: bytes) -> bytes:
    """Open what `seal_to` sealed to the public key of this 32-byte Ed25519 seed."""
    _, secret = nacl.bindings.crypto_sign_seed_keypair(ed25519_seed)
    curve_secret = nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(secret)
    try:
        return nacl.public.SealedBox(nacl.public.PrivateKey(curve_secret)).decrypt(sealed)
    except nacl.exceptions.CryptoError:
        raise SealError("sealed data does not open with this key (wrong key or corrupted data)") from None


def seal_result(archive: bytes, beneficiary_public_key: bytes) -> bytes:
    """The result archive as the beneficiary downloads it: only their account key opens it."""
    return seal_to(beneficiary_public_key, archive)


def open_result(sealed: bytes, ed25519_seed: bytes) -> bytes:
    """The beneficiary's side of `seal_result`."""
    return open_sealed(sealed, ed25519_seed)


def encrypt_dataset(plaintext: bytes) -> tuple[bytes, bytes]:
    """Return (key, blob): the provider publishes the blob (its hash is registered) and keeps the key."""
    key = nacl.utils.random(DATASET_KEY_LEN)
    return key, bytes(nacl.secret.SecretBox(key).encrypt(plaintext))


def decrypt_dataset(key: bytes, blob: bytes) -> bytes:
    if len(key) != DATASET_KEY_LEN:
        raise SealError(f"a dataset key has {DATASET_KEY_LEN} bytes, got {len(key)}")
    try:
        return nacl.secret.SecretBox(key).decrypt(blob)
    except nacl.exceptions.CryptoError:
        raise SealError("dataset blob does not decrypt with this key (wrong key or corrupted blob)") from None


def seal_key_to_enclave(key: bytes, enclave_public_key: bytes) -> bytes:
    """What the provider returns on key release: the dataset key, readable only by the quoted enclave."""
    return seal_to(enclave_public_key, key)


def open_key_in_enclave(sealed_key: bytes, enclave_key: Keypair) -> bytes:
    """The enclave's side of `seal_key_to_enclave`."""
    key = open_sealed(sealed_key, enclave_key.seed)
    if len(key) != DATASET_KEY_LEN:
        raise SealError(f"released key has {len(key)} bytes, expected {DATASET_KEY_LEN}")
    return key

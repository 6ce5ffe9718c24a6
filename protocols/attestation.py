"""Checking what an enclave says about a result (DESIGN.md section 7).

`EnclaveSignatureCheck` is the ledger's contribution verifier until platform quotes arrive: the enclave
challenge is the enclave's ephemeral Ed25519 public key and the attestation is its signature over
(resultHash, resultSeal), as PoCo's `enclaveSign` over `keccak(resultHash || resultSeal)`. It proves that
the holder of the challenge key produced this result; who holds that key (a measured enclave on a
certified platform) is what the quote check adds later.
"""

from __future__ import annotations

import hashlib

from protocols.crypto import Keypair, Signature, signing_message, verify_raw
from protocols.ledger.records import Deal
from protocols.ledger.transactions import Contribute

ENCLAVE_RESULT_KIND = "enclave-result"


def enclave_result_message(chain_id: str, result_hash: bytes, result_seal: bytes) -> bytes:
    return signing_message(chain_id, ENCLAVE_RESULT_KIND, hashlib.sha256(result_hash + result_seal).digest())


def sign_enclave_result(enclave_key: Keypair, chain_id: str, result_hash: bytes, result_seal: bytes) -> bytes:
    """The attestation bytes an enclave attaches to its contribution."""
    return enclave_key.sign_raw(enclave_result_message(chain_id, result_hash, result_seal)).signature


class EnclaveSignatureCheck:
    """ContributionVerifier: a contribution with an enclave challenge must carry the enclave's signature."""

    def __init__(self, chain_id: str) -> None:
        self.chain_id = chain_id

    def check(self, contribution: Contribute, worker: bytes, deal: Deal) -> str | None:
        if not contribution.enclave_challenge:
            return None if not contribution.attestation else "unexpected-attestation"
        if len(contribution.enclave_challenge) != 32:
            return "bad-enclave-challenge"
        if len(contribution.attestation) != 64:
            return "bad-enclave-signature"
        message = enclave_result_message(self.chain_id, contribution.result_hash, contribution.result_seal)
        if not verify_raw(Signature(contribution.enclave_challenge, contribution.attestation), message):
            return "bad-enclave-signature"
        return None

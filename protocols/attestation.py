"""Checking what an enclave says about a result (DESIGN.md section 7, reference/poco.md section 5).

Three signatures chain a result back to a key the genesis trusts:

1. An attestation authority named in the genesis signs a `PlatformCertificate`: "this platform key belongs
   to this worker" (kind "platform-certificate"). It plays the part of Intel's attestation service.
2. The certified platform key signs a `Quote`: "an enclave with this measurement and this ephemeral public
   key runs task T for worker W" (kind "enclave-quote"). It plays the part of an SGX quote / MRENCLAVE.
3. The enclave key signs (resultHash, resultSeal), as PoCo's `enclaveSign` over keccak(resultHash || resultSeal).

A contribution carries the enclave public key as its `enclave_challenge` (which the pool owner's
authorization also covers) and `encode(Attestation)` as its `attestation`. `QuoteVerifier` is the ledger's
`ContributionVerifier`; `verify_certificate` and `verify_quote` are the same checks for the dataset
provider, which must decide whether to release a key to an enclave before any contribution exists.

This is pure: no clocks, no I/O, the same answer on every validator. It is an emulation: trust rests on the
platform key staying on the worker's machine, not on hardware (see node/enclave).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass

from protocols.crypto import (
    EMPTY_SIGNATURE,
    Address,
    Keypair,
    PublicKey,
    Signature,
    SignatureBytes,
    SignatureVerifier,
    SignedMixin,
    sign,
    signing_message,
    verify_raw,
)
from protocols.encoding import Bytes32, DecodeError, decode, encode, wire
from protocols.ledger.records import App, Deal
from protocols.ledger.transactions import MAX_ATTESTATION_LEN, Contribute
from protocols.orders import TEE_BIT, tag_int

ENCLAVE_RESULT_KIND = "enclave-result"
ENCLAVE_KEY_LEN = 32
ENCLAVE_SIGNATURE_LEN = 64

# Reason codes, one per way an attestation can fail; the ledger returns them as rejection codes.
UNEXPECTED_ATTESTATION = "unexpected-attestation"
BAD_ENCLAVE_CHALLENGE = "bad-enclave-challenge"
MISSING_ATTESTATION = "missing-attestation"
UNDECODABLE_ATTESTATION = "undecodable-attestation"
UNCERTIFIED_PLATFORM = "uncertified-platform"
CERTIFICATE_FOR_ANOTHER_WORKER = "certificate-for-another-worker"
BAD_QUOTE_SIGNATURE = "bad-quote-signature"
QUOTE_FOR_ANOTHER_WORKER = "quote-for-another-worker"
MEASUREMENT_MISMATCH = "measurement-mismatch"
QUOTE_FOR_ANOTHER_TASK = "quote-for-another-task"
ENCLAVE_KEY_MISMATCH = "enclave-key-mismatch"
BAD_ENCLAVE_SIGNATURE = "bad-enclave-signature"


@wire(tag=120)
@dataclass(frozen=True)
class PlatformCertificate(SignedMixin):
    """An attestation authority's statement that `platform_public_key` is the platform key of `worker`.

    Binding the worker address stops a certified worker from lending its platform key's quotes to another
    account: a quote only counts for the worker its certificate names."""

    SIGNATURE_KIND = "platform-certificate"

    platform_public_key: PublicKey
    worker: Address
    signature: Signature = EMPTY_SIGNATURE


@wire(tag=121)
@dataclass(frozen=True)
class Quote(SignedMixin):
    """The platform's statement that an enclave running the bundle `measurement` holds `enclave_public_key`
    and works on `task_id` for `worker`. The task id makes a quote single-use: an enclave key released a
    dataset key for one task cannot be replayed for another."""

    SIGNATURE_KIND = "enclave-quote"

    measurement: Bytes32
    enclave_public_key: PublicKey
    worker: Address
    task_id: Bytes32
    signature: Signature = EMPTY_SIGNATURE


@wire(tag=122)
@dataclass(frozen=True)
class Attestation:
    """What a TEE contribution carries: who certified the platform, what the platform quoted, and the
    enclave's signature over (resultHash, resultSeal)."""

    certificate: PlatformCertificate
    quote: Quote
    enclave_signature: SignatureBytes


# --- making the pieces (worker and authority side) ----------------------------------------------


def enclave_result_message(chain_id: str, result_hash: bytes, result_seal: bytes) -> bytes:
    return signing_message(chain_id, ENCLAVE_RESULT_KIND, hashlib.sha256(result_hash + result_seal).digest())


def sign_enclave_result(enclave_key: Keypair, chain_id: str, result_hash: bytes, result_seal: bytes) -> bytes:
    """The enclave's 64-byte signature over (resultHash, resultSeal)."""
    return enclave_key.sign_raw(enclave_result_message(chain_id, result_hash, result_seal)).signature


def issue_certificate(
    authority: Keypair, chain_id: str, platform_public_key: bytes, worker_address: bytes
) -> PlatformCertificate:
    """What an attestation authority hands a worker after checking its platform (out of band)."""
    return sign(authority, chain_id, PlatformCertificate(platform_public_key, worker_address))


@dataclass(frozen=True)
class CertificationPolicy:
    """What an attestation authority checks before it certifies a worker's platform key.

    There is no hardware to attest in this emulation, so the authority can vouch only for who asks: the
    request arrives over a Noise-authenticated stream, so the worker account is the peer's own key. An
    authority may restrict certificates to an allow-list of worker accounts (`allowed`); an empty list
    certifies any account. A real TEE backend would check a hardware quote here instead.
    """

    allowed: frozenset[bytes] = frozenset()

    def describe(self) -> str:
        if not self.allowed:
            return "emulated platforms: any worker account, authenticated by its own node key, gets one certificate"
        return f"emulated platforms: only the {len(self.allowed)} worker account(s) on this authority's allow-list"


NOT_ALLOWED = "worker-not-allowed"
BAD_PLATFORM_KEY = "bad-platform-key"


def decide_certification(policy: CertificationPolicy, worker: bytes, platform_public_key: bytes) -> str | None:
    """None if the authority certifies `platform_public_key` for `worker` under `policy`, else the reason."""
    if len(platform_public_key) != ENCLAVE_KEY_LEN:
        return BAD_PLATFORM_KEY
    if policy.allowed and worker not in policy.allowed:
        return NOT_ALLOWED
    return None


def make_quote(
    platform: Keypair, chain_id: str, measurement: bytes, enclave_public_key: bytes, worker: bytes, task_id: bytes
) -> Quote:
    """What the worker's platform signs when it opens an enclave for a task."""
    return sign(platform, chain_id, Quote(measurement, enclave_public_key, worker, task_id))


def make_attestation(
    certificate: PlatformCertificate,
    quote: Quote,
    enclave_key: Keypair,
    chain_id: str,
    result_hash: bytes,
    result_seal: bytes,
) -> bytes:
    """The `Contribute.attestation` bytes: `encode(Attestation)` with the enclave's result signature."""
    signature = sign_enclave_result(enclave_key, chain_id, result_hash, result_seal)
    return encode(Attestation(certificate, quote, signature))


# --- checking them (ledger and provider side) -----------------------------------------------------


def verify_certificate(
    signatures: SignatureVerifier, authorities: Collection[bytes], certificate: PlatformCertificate, worker: bytes
) -> str | None:
    """None if a genesis authority certified this platform key for `worker`, else the reason code.

    A certificate signed for another chain fails here too: the chain id is part of the signed message."""
    if certificate.signature.public_key not in authorities or not signatures.verify(certificate):
        return UNCERTIFIED_PLATFORM
    if certificate.worker != worker:
        return CERTIFICATE_FOR_ANOTHER_WORKER
    return None


def verify_quote(
    signatures: SignatureVerifier,
    certificate: PlatformCertificate,
    quote: Quote,
    *,
    measurement: bytes,
    task_id: bytes,
    worker: bytes,
) -> str | None:
    """None if the certified platform quoted an enclave of `measurement` for `task_id` and `worker`.

    The certificate itself must be checked first with `verify_certificate`."""
    if quote.signature.public_key != certificate.platform_public_key or not signatures.verify(quote):
        return BAD_QUOTE_SIGNATURE
    if quote.worker != worker:
        return QUOTE_FOR_ANOTHER_WORKER
    if quote.measurement != measurement:
        return MEASUREMENT_MISMATCH
    if quote.task_id != task_id:
        return QUOTE_FOR_ANOTHER_TASK
    return None


def decode_attestation(data: bytes) -> Attestation | None:
    try:
        return decode(Attestation, data, max_size=MAX_ATTESTATION_LEN)
    except DecodeError:
        return None


class QuoteVerifier:
    """ContributionVerifier: a TEE deal needs a full, valid attestation; a non-TEE deal needs none.

    For a deal without the TEE tag bit:
    - an empty challenge must come with an empty attestation (a plain worker, as iExec's 0x0 challenge);
    - a 64-byte attestation is a bare enclave signature by the challenge key, the pre-quote format: it proves
      who signed the result but not what ran, which is all a non-TEE deal asks for;
    - anything else must be a valid `Attestation`: a worker may attest more than the deal asks, never falsely.
    For a TEE deal the attestation must decode and pass every check, in the order of `ATTESTATION_CHECKS`.
    """

    def __init__(self, chain_id: str, authorities: Collection[bytes]) -> None:
        self.chain_id = chain_id
        self.authorities = frozenset(authorities)
        # Certificates repeat in every contribution of a worker: the verifier's cache checks each once.
        self.signatures = SignatureVerifier(chain_id)

    def check(self, contribution: Contribute, worker: bytes, deal: Deal, app: App) -> str | None:
        tee = bool(tag_int(deal.tag) & TEE_BIT)
        challenge, attestation = contribution.enclave_challenge, contribution.attestation
        if not challenge:
            if attestation:
                return UNEXPECTED_ATTESTATION
            return MISSING_ATTESTATION if tee else None
        if len(challenge) != ENCLAVE_KEY_LEN:
            return BAD_ENCLAVE_CHALLENGE
        if not attestation:
            return MISSING_ATTESTATION if tee else BAD_ENCLAVE_SIGNATURE
        if not tee and len(attestation) == ENCLAVE_SIGNATURE_LEN:
            return self._check_enclave_signature(contribution, attestation)
        decoded = decode_attestation(attestation)
        if decoded is None:
            return UNDECODABLE_ATTESTATION
        reason = verify_certificate(self.signatures, self.authorities, decoded.certificate, worker) or verify_quote(
            self.signatures,
            decoded.certificate,
            decoded.quote,
            measurement=app.measurement,
            task_id=contribution.task_id,
            worker=worker,
        )
        if reason is not None:
            return reason
        if decoded.quote.enclave_public_key != challenge:
            return ENCLAVE_KEY_MISMATCH
        return self._check_enclave_signature(contribution, decoded.enclave_signature)

    def _check_enclave_signature(self, contribution: Contribute, signature: bytes) -> str | None:
        message = enclave_result_message(self.chain_id, contribution.result_hash, contribution.result_seal)
        if not verify_raw(Signature(contribution.enclave_challenge, signature), message):
            return BAD_ENCLAVE_SIGNATURE
        return None


# The order in which QuoteVerifier reports failures (each code names the first check that failed).
ATTESTATION_CHECKS = (
    UNDECODABLE_ATTESTATION,
    UNCERTIFIED_PLATFORM,
    CERTIFICATE_FOR_ANOTHER_WORKER,
    BAD_QUOTE_SIGNATURE,
    QUOTE_FOR_ANOTHER_WORKER,
    MEASUREMENT_MISMATCH,
    QUOTE_FOR_ANOTHER_TASK,
    ENCLAVE_KEY_MISMATCH,
    BAD_ENCLAVE_SIGNATURE,
)

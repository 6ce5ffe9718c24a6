"""Platform certificates, quotes and the ledger's QuoteVerifier: the happy path and every rejection code."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from protocols import attestation as att
from protocols.attestation import (
    Attestation,
    QuoteVerifier,
    issue_certificate,
    make_attestation,
    make_quote,
    sign_enclave_result,
    verify_certificate,
    verify_quote,
)
from protocols.crypto import Keypair, SignatureVerifier
from protocols.encoding import decode, encode
from protocols.ledger.records import App, Deal
from protocols.ledger.transactions import (
    Contribute,
    InitializeTask,
    MatchOrders,
    WorkerAuthorization,
)
from protocols.orders import TEE_BIT, tag_bytes
from tests.support import AUTHORITY, CHAIN_ID, Market, certificate, platform_key

DIGEST = b"\x01" * 32


@dataclass
class Scene:
    """A TEE task on a fresh market, w1's honest contribution to it, and what the verifier needs."""

    market: Market
    task_id: bytes
    deal: Deal
    app: App
    good: Contribute

    @property
    def worker(self) -> bytes:
        return self.market.addr("w1")

    @property
    def enclave(self) -> Keypair:
        return self.market.enclave_keys["w1"]

    def attested(self, **changes: object) -> Contribute:
        """w1's contribution with its attestation rebuilt from the honest parts, some replaced."""
        parts = {
            "certificate": certificate("w1"),
            "platform": platform_key("w1"),
            "measurement": self.app.measurement,
            "enclave": self.enclave,
            "quote_enclave_key": self.enclave.public_key,
            "worker": self.worker,
            "task_id": self.task_id,
        }
        parts.update(changes)
        quote = make_quote(parts["platform"], CHAIN_ID, parts["measurement"], parts["quote_enclave_key"],  # type: ignore[arg-type]
                           parts["worker"], parts["task_id"])  # type: ignore[arg-type]
        data = make_attestation(parts["certificate"], quote, parts["enclave"], CHAIN_ID,  # type: ignore[arg-type]
                                self.good.result_hash, self.good.result_seal)
        return replace(self.good, attestation=data)


def tee_scene() -> Scene:
    market = Market.create()
    tee = tag_bytes(TEE_BIT)
    body = MatchOrders(market.app_order(tag=tee), market.dataset_order(), market.pool_order(tag=tee),
                       market.request_order(tag=tee))
    deal_id = market.ok("requester", body).created
    task_id = market.ok("manager", InitializeTask(deal_id, 0)).created
    deal = market.deal(deal_id)
    app = market.ledger.state.view().app(deal.app.pointer)
    assert app is not None
    return Scene(market, task_id, deal, app, market.contribution("w1", task_id, DIGEST))


@pytest.fixture
def scene() -> Scene:
    return tee_scene()


def verifier() -> QuoteVerifier:
    return QuoteVerifier(CHAIN_ID, (AUTHORITY.public_key,))


def check(scene: Scene, contribution: Contribute, deal: Deal | None = None) -> str | None:
    return verifier().check(contribution, scene.worker, deal or scene.deal, scene.app)


def test_happy_path(scene: Scene) -> None:
    assert check(scene, scene.good) is None
    assert check(scene, scene.attested()) is None
    assert scene.market.submit("w1", scene.good).ok


def test_attestation_round_trips_on_the_wire(scene: Scene) -> None:
    decoded = decode(Attestation, scene.good.attestation)
    assert encode(decoded) == scene.good.attestation
    assert decoded.quote.enclave_public_key == scene.good.enclave_challenge
    assert decoded.certificate.worker == scene.worker


def test_undecodable_attestation(scene: Scene) -> None:
    for garbage in (b"\x00", b"\x93" + bytes(70), scene.good.attestation[:-1], scene.good.attestation + b"\x00"):
        assert check(scene, replace(scene.good, attestation=garbage)) == att.UNDECODABLE_ATTESTATION


def test_certificate_not_from_a_genesis_authority(scene: Scene) -> None:
    rogue = Keypair.from_name("rogue-authority")
    self_signed = issue_certificate(rogue, CHAIN_ID, platform_key("w1").public_key, scene.worker)
    assert check(scene, scene.attested(certificate=self_signed)) == att.UNCERTIFIED_PLATFORM
    # the genesis authority's key with a forged signature
    forged = replace(self_signed, signature=replace(self_signed.signature, public_key=AUTHORITY.public_key))
    assert check(scene, scene.attested(certificate=forged)) == att.UNCERTIFIED_PLATFORM
    # a real certificate from the same authority for another chain
    other_chain = issue_certificate(AUTHORITY, "other-chain", platform_key("w1").public_key, scene.worker)
    assert check(scene, scene.attested(certificate=other_chain)) == att.UNCERTIFIED_PLATFORM


def test_certificate_for_another_worker(scene: Scene) -> None:
    """w2's platform cannot vouch for w1's contribution, even with a valid certificate and quote."""
    attested = scene.attested(certificate=certificate("w2"), platform=platform_key("w2"))
    assert check(scene, attested) == att.CERTIFICATE_FOR_ANOTHER_WORKER


def test_quote_not_signed_by_the_certified_platform_key(scene: Scene) -> None:
    assert check(scene, scene.attested(platform=Keypair.from_name("another-platform"))) == att.BAD_QUOTE_SIGNATURE
    decoded = decode(Attestation, scene.good.attestation)
    tampered = replace(decoded, quote=replace(decoded.quote, measurement=b"\x99" * 32))
    assert check(scene, replace(scene.good, attestation=encode(tampered))) == att.BAD_QUOTE_SIGNATURE


def test_quote_for_another_worker(scene: Scene) -> None:
    assert check(scene, scene.attested(worker=scene.market.addr("w2"))) == att.QUOTE_FOR_ANOTHER_WORKER


def test_measurement_mismatch(scene: Scene) -> None:
    assert check(scene, scene.attested(measurement=b"\x99" * 32)) == att.MEASUREMENT_MISMATCH


def test_quote_for_another_task(scene: Scene) -> None:
    assert check(scene, scene.attested(task_id=b"\x42" * 32)) == att.QUOTE_FOR_ANOTHER_TASK


def test_enclave_key_is_not_the_challenge(scene: Scene) -> None:
    other = Keypair.from_name("other-enclave")
    assert check(scene, scene.attested(quote_enclave_key=other.public_key, enclave=other)) == att.ENCLAVE_KEY_MISMATCH


def test_bad_enclave_result_signature(scene: Scene) -> None:
    assert check(scene, scene.attested(enclave=Keypair.from_name("other-enclave"))) == att.BAD_ENCLAVE_SIGNATURE
    # the right key, over another result
    decoded = decode(Attestation, scene.good.attestation)
    wrong = sign_enclave_result(scene.enclave, CHAIN_ID, scene.good.result_hash, b"\x00" * 32)
    tampered = replace(scene.good, attestation=encode(replace(decoded, enclave_signature=wrong)))
    assert check(scene, tampered) == att.BAD_ENCLAVE_SIGNATURE


def test_challenge_and_attestation_shape(scene: Scene) -> None:
    assert check(scene, replace(scene.good, enclave_challenge=b"", attestation=b"")) == att.MISSING_ATTESTATION
    assert check(scene, replace(scene.good, attestation=b"")) == att.MISSING_ATTESTATION
    assert check(scene, replace(scene.good, enclave_challenge=b"")) == att.UNEXPECTED_ATTESTATION
    assert check(scene, replace(scene.good, enclave_challenge=b"\x01" * 31)) == att.BAD_ENCLAVE_CHALLENGE


def test_a_tee_deal_refuses_a_bare_enclave_signature(scene: Scene) -> None:
    bare = sign_enclave_result(scene.enclave, CHAIN_ID, scene.good.result_hash, scene.good.result_seal)
    assert check(scene, replace(scene.good, attestation=bare)) == att.UNDECODABLE_ATTESTATION


def test_non_tee_deals(scene: Scene) -> None:
    """No TEE bit: nothing, a bare enclave signature, or a valid attestation; never an invalid one."""
    plain = replace(scene.deal, tag=bytes(32))
    bare = sign_enclave_result(scene.enclave, CHAIN_ID, scene.good.result_hash, scene.good.result_seal)
    assert check(scene, replace(scene.good, enclave_challenge=b"", attestation=b""), plain) is None
    assert check(scene, replace(scene.good, attestation=bare), plain) is None
    assert check(scene, scene.good, plain) is None
    assert check(scene, replace(scene.good, attestation=bytes(64)), plain) == att.BAD_ENCLAVE_SIGNATURE
    assert check(scene, replace(scene.good, attestation=b""), plain) == att.BAD_ENCLAVE_SIGNATURE
    assert check(scene, scene.attested(measurement=b"\x99" * 32), plain) == att.MEASUREMENT_MISMATCH


def test_verifier_with_no_authorities_certifies_nobody(scene: Scene) -> None:
    assert QuoteVerifier(CHAIN_ID, ()).check(scene.good, scene.worker, scene.deal, scene.app) == att.UNCERTIFIED_PLATFORM


def test_provider_side_helpers(scene: Scene) -> None:
    """The key-release check: verify_certificate then verify_quote, on their own."""
    signatures = SignatureVerifier(CHAIN_ID)
    decoded = decode(Attestation, scene.good.attestation)
    cert, quote = decoded.certificate, decoded.quote
    authorities = {AUTHORITY.public_key}
    assert verify_certificate(signatures, authorities, cert, scene.worker) is None
    assert verify_certificate(signatures, set(), cert, scene.worker) == att.UNCERTIFIED_PLATFORM
    assert verify_certificate(signatures, authorities, cert, scene.market.addr("w2")) == att.CERTIFICATE_FOR_ANOTHER_WORKER
    kwargs = {"measurement": scene.app.measurement, "task_id": scene.task_id, "worker": scene.worker}
    assert verify_quote(signatures, cert, quote, **kwargs) is None
    assert verify_quote(signatures, certificate("w2"), quote, **kwargs) == att.BAD_QUOTE_SIGNATURE
    assert verify_quote(signatures, cert, quote, **(kwargs | {"measurement": bytes(32)})) == att.MEASUREMENT_MISMATCH
    assert verify_quote(signatures, cert, quote, **(kwargs | {"task_id": bytes(32)})) == att.QUOTE_FOR_ANOTHER_TASK


# The ledger end to end ---------------------------------------------------------------------------


def test_ledger_refuses_a_forged_quote(scene: Scene) -> None:
    """A quote signed by a key the worker made up (not its certified platform key) does not pass."""
    forged = scene.attested(platform=Keypair.from_name("made-up-platform"))
    outcome = scene.market.submit("w1", forged)
    assert outcome.code == att.BAD_QUOTE_SIGNATURE
    assert scene.market.account("w1").frozen == 0  # nothing staked
    assert scene.market.submit("w1", scene.good).ok


def test_ledger_refuses_an_uncertified_quote(scene: Scene) -> None:
    """A platform certified by a self-appointed authority, with a consistent quote, does not pass."""
    rogue_platform = Keypair.from_name("rogue-platform")
    rogue_cert = issue_certificate(Keypair.from_name("rogue-authority"), CHAIN_ID, rogue_platform.public_key, scene.worker)
    outcome = scene.market.submit("w1", scene.attested(certificate=rogue_cert, platform=rogue_platform))
    assert outcome.code == att.UNCERTIFIED_PLATFORM


def test_ledger_refuses_a_quote_for_another_app(scene: Scene) -> None:
    """The right platform running the wrong bundle: the measurement must be the deal's app."""
    assert scene.market.submit("w1", scene.attested(measurement=b"\x77" * 32)).code == att.MEASUREMENT_MISMATCH


def test_ledger_refuses_a_replayed_attestation_for_another_task(scene: Scene) -> None:
    market = scene.market
    tee = tag_bytes(TEE_BIT)
    body = MatchOrders(market.app_order(tag=tee, salt=b"2"), market.dataset_order(salt=b"2"),
                       market.pool_order(tag=tee, salt=b"2"), market.request_order(tag=tee, salt=b"2"))
    deal_id = market.ok("requester", body).created
    task2 = market.ok("manager", InitializeTask(deal_id, 0)).created
    auth = market.wallets["manager"].sign(WorkerAuthorization(scene.worker, task2, scene.enclave.public_key)).signature
    replay = replace(scene.good, task_id=task2, authorization=auth)
    assert market.submit("w1", replay).code == att.QUOTE_FOR_ANOTHER_TASK

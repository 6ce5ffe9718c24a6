"""The provider's dataset key release (DESIGN.md section 7): only to an attested enclave running the deal's
app, for an active task, on a certified platform, authorized by the workerpool owner."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from node.enclave.sealing import SealError, open_key_in_enclave
from node.net.streams import RequestRejected
from node.roles.provider import DatasetKeys, release_key
from protocols.attestation import issue_certificate, make_quote
from protocols.crypto import Keypair, SignatureVerifier
from protocols.genesis import Genesis
from protocols.key_release import KeyRequest
from protocols.ledger.state import StateView
from protocols.ledger.transactions import Finalize, WorkerAuthorization
from tests.support import AUTHORITY, CHAIN_ID, Market, certificate, make_genesis, platform_key

DATASET_KEY = b"k" * 32


@dataclass
class ProviderApi:
    """The slice of NodeAPI the key release reads: the provider's key, the genesis, the ledger."""

    market: Market
    keypair: Keypair
    genesis: Genesis
    verifier: SignatureVerifier

    def ledger_view(self) -> StateView:
        return self.market.ledger.state.view()


@pytest.fixture
def market() -> Market:
    return Market.create()


@pytest.fixture
def api(market: Market) -> ProviderApi:
    return ProviderApi(market, market.wallets["provider"].keypair, make_genesis(), SignatureVerifier(CHAIN_ID))


@pytest.fixture
def keys(tmp_path: Path, market: Market) -> DatasetKeys:
    store = DatasetKeys(tmp_path)
    store.put(market.ledger.state.view().dataset(market.dataset).blob_hash, DATASET_KEY)
    return store


def key_request(market: Market, task_id: bytes, worker: str = "w1", *, measurement: bytes | None = None,
                authorizer: str = "manager", cert_worker: str | None = None) -> tuple[KeyRequest, Keypair]:
    enclave = Keypair.from_name(f"enclave/{worker}")
    address = market.addr(worker)
    app = market.ledger.state.view().app(market.app)
    quote = make_quote(platform_key(worker), CHAIN_ID, measurement or app.measurement, enclave.public_key, address, task_id)
    authorization = market.wallets[authorizer].sign(WorkerAuthorization(address, task_id, enclave.public_key)).signature
    return KeyRequest(task_id, certificate(cert_worker or worker), quote, authorization), enclave


def test_attested_authorized_enclave_gets_the_key_sealed_to_it(market: Market, api: ProviderApi, keys: DatasetKeys) -> None:
    task_id = market.start_task(trust=1)
    request, enclave = key_request(market, task_id)
    sealed = release_key(api, keys, market.addr("w1"), request)
    assert open_key_in_enclave(sealed, enclave) == DATASET_KEY
    with pytest.raises(SealError):
        open_key_in_enclave(sealed, market.wallets["w1"].keypair)  # not even the worker's own key opens it


@pytest.mark.parametrize(
    "case, reason",
    [
        ("wrong-measurement", "measurement-mismatch"),
        ("unassigned-worker", "worker-not-authorized"),
        ("uncertified-platform", "uncertified-platform"),
        ("certificate-of-another-worker", "certificate-for-another-worker"),
        ("forged-quote", "bad-quote-signature"),
        ("quote-for-another-task", "quote-for-another-task"),
    ],
)
def test_key_refused(market: Market, api: ProviderApi, keys: DatasetKeys, case: str, reason: str) -> None:
    task_id = market.start_task(trust=1)
    worker = market.addr("w1")
    request, _ = key_request(market, task_id)
    if case == "wrong-measurement":
        request, _ = key_request(market, task_id, measurement=b"\x99" * 32)
    elif case == "unassigned-worker":
        request, _ = key_request(market, task_id, authorizer="w2")
    elif case == "uncertified-platform":
        rogue = issue_certificate(Keypair.from_name("rogue-authority"), CHAIN_ID, platform_key("w1").public_key, worker)
        request = replace(request, certificate=rogue)
    elif case == "certificate-of-another-worker":
        request, _ = key_request(market, task_id, cert_worker="w2")
    elif case == "forged-quote":
        forged = make_quote(Keypair.from_name("not-the-platform"), CHAIN_ID, request.quote.measurement,
                            request.quote.enclave_public_key, worker, task_id)
        request = replace(request, quote=forged)
    elif case == "quote-for-another-task":
        other = market.start_task(trust=1)
        quote = make_quote(platform_key("w1"), CHAIN_ID, request.quote.measurement, request.quote.enclave_public_key,
                           worker, other)
        request = replace(request, quote=quote)
    with pytest.raises(RequestRejected, match=reason):
        release_key(api, keys, worker, request)


def test_key_refused_for_an_inactive_task(market: Market, api: ProviderApi, keys: DatasetKeys) -> None:
    task_id = market.start_task(trust=1)
    market.contribute("w1", task_id, b"\x01" * 32)
    market.reveal("w1", task_id, b"\x01" * 32)
    market.ok("manager", Finalize(task_id, b""))
    request, _ = key_request(market, task_id)
    with pytest.raises(RequestRejected, match="task-not-active"):
        release_key(api, keys, market.addr("w1"), request)


def test_key_refused_by_a_node_that_does_not_own_the_dataset(market: Market, api: ProviderApi, keys: DatasetKeys) -> None:
    task_id = market.start_task(trust=1)
    request, _ = key_request(market, task_id)
    stranger = replace(api, keypair=market.wallets["appdev"].keypair)
    with pytest.raises(RequestRejected, match="not-my-dataset"):
        release_key(stranger, keys, market.addr("w1"), request)


def test_authority_is_the_genesis_one(api: ProviderApi) -> None:
    assert api.genesis.attestation_authorities == (AUTHORITY.public_key,)

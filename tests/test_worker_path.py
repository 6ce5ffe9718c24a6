"""The pieces of a worker's path to work that need no network: the authority's decision and role, the
scheduler's handling of replicate reports (an app that always fails is not retried blindly), the
sandbox's wall clock bounded by the contribution deadline, amounts for people, order ids by prefix."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from node.enclave.sandbox import Limits
from node.keys import PLATFORM_CERT_FILE, PLATFORM_KEY_FILE
from node.net.identity import peer_id_of_seed
from node.net.streams import RequestRejected
from node.roles.authority import AuthorityRole
from node.roles.scheduler import APP_FAILURE_QUORUM, TaskWork
from node.roles.worker import MIN_RUN_S, WorkerRole, limits_before
from node.work_messages import OK, CertifyRequest, ReplicateReport
from protocols.attestation import (
    BAD_PLATFORM_KEY,
    NOT_ALLOWED,
    CertificationPolicy,
    decide_certification,
    verify_certificate,
)
from protocols.crypto import Keypair, SignatureVerifier
from protocols.encoding import encode
from protocols.genesis import Genesis, rlc_text
from protocols.orderbook import OrderBook
from tests.support import CHAIN_ID, make_genesis

TASK = b"\x07" * 32
WORKER = Keypair.from_name("worker")
PLATFORM = Keypair.from_name("platform")


def test_an_open_policy_certifies_any_account_a_closed_one_only_its_list() -> None:
    assert decide_certification(CertificationPolicy(), WORKER.address, PLATFORM.public_key) is None
    closed = CertificationPolicy(frozenset({Keypair.from_name("other").address}))
    assert decide_certification(closed, WORKER.address, PLATFORM.public_key) == NOT_ALLOWED
    assert decide_certification(CertificationPolicy(), WORKER.address, b"short") == BAD_PLATFORM_KEY
    assert "any worker account" in CertificationPolicy().describe()
    assert "allow-list" in closed.describe()


@dataclass
class AuthorityNode:
    """What the authority role reads of its node."""

    keypair: Keypair
    genesis: Genesis


def test_the_authority_role_certifies_the_stream_peer_and_refuses_when_not_an_authority() -> None:
    authority = Keypair.from_name("attestation-authority")  # the support genesis names this key
    genesis = make_genesis()
    assert authority.public_key in genesis.attestation_authorities
    role = AuthorityRole()
    peer = peer_id_of_seed(WORKER.seed)  # Noise authenticates the worker as this peer
    grant = role.certify(AuthorityNode(authority, genesis), peer, encode(CertifyRequest(PLATFORM.public_key)))
    assert grant.certificate.worker == WORKER.address and grant.certificate.platform_public_key == PLATFORM.public_key
    assert verify_certificate(SignatureVerifier(CHAIN_ID), genesis.attestation_authorities, grant.certificate, WORKER.address) is None
    assert role.issued == 1

    impostor = AuthorityNode(Keypair.from_name("not-an-authority"), genesis)
    with pytest.raises(RequestRejected, match="not-an-authority"):
        role.certify(impostor, peer, encode(CertifyRequest(PLATFORM.public_key)))
    assert "NOT AN AUTHORITY" in role.notes(impostor)[0]  # type: ignore[arg-type]
    with pytest.raises(RequestRejected, match="malformed"):
        role.certify(AuthorityNode(authority, genesis), peer, b"\x00garbage")


def report(outcome: str) -> ReplicateReport:
    return ReplicateReport(TASK, outcome, "detail", b"", b"")


def test_an_app_failure_stops_the_task_once_enough_workers_agree() -> None:
    work = TaskWork()
    work.reports[b"w1" * 10] = report("exit-code")
    assert not work.abandoned(pool_size=5) and work.verdict(pool_size=5) == ""
    assert work.abandoned(pool_size=1)  # a pool of one worker: nobody else could try
    work.reports[b"w2" * 10] = report("memory-limit")
    assert APP_FAILURE_QUORUM == 2 and work.abandoned(pool_size=5)
    verdict = work.verdict(pool_size=5)
    assert "exit-code (detail)" in verdict and "memory-limit (detail)" in verdict and "final deadline" in verdict


def test_worker_side_failures_and_successes_do_not_count_as_the_apps() -> None:
    work = TaskWork()
    work.reports[b"w1" * 10] = report(OK)
    work.reports[b"w2" * 10] = report("fetch-failed")
    assert work.app_failures() == [] and not work.abandoned(pool_size=1)


def test_the_sandbox_wall_clock_ends_at_the_contribution_deadline() -> None:
    default = Limits()
    assert limits_before(contribution_deadline_ms=35_000, now_ms=5_000).wall_clock_seconds == 30
    assert limits_before(10**12, 0).wall_clock_seconds == default.wall_clock_seconds  # never above the default
    late = limits_before(contribution_deadline_ms=1_000, now_ms=5_000)  # already past: the shortest run
    assert late.wall_clock_seconds == MIN_RUN_S and late.cpu_seconds >= 1


@pytest.mark.parametrize(
    ("nrlc", "text"),
    [(0, "0 RLC"), (10**9, "1 RLC"), (1_500_000_000, "1.5 RLC"), (1, "0.000000001 RLC"), (999_990 * 10**9, "999990 RLC")],
)
def test_amounts_for_people_are_rlc_with_the_decimals_they_need(nrlc: int, text: str) -> None:
    assert rlc_text(nrlc) == text


def test_the_book_finds_orders_by_full_id_or_prefix() -> None:
    from tests.support import Market

    market = Market.create()
    book = OrderBook(SignatureVerifier(CHAIN_ID))
    order = market.app_order()
    book.add(order)
    digest = order.payload_digest
    assert book.find(digest) == [order]
    assert book.find(digest[:4]) == [order]
    assert book.find(b"\xff" * 32) == [] and book.find(bytes([digest[0] ^ 1])) == []


def test_damaged_platform_files_are_set_aside_and_the_worker_reports_itself_uncertified(tmp_path: Path) -> None:
    (tmp_path / PLATFORM_KEY_FILE).write_bytes(b"not a 32-byte seed")
    (tmp_path / PLATFORM_CERT_FILE).write_bytes(b"garbage")
    worker = WorkerRole(tmp_path, manager=None)
    assert worker.platform is None and worker.certificate is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [PLATFORM_CERT_FILE + ".unusable", PLATFORM_KEY_FILE + ".unusable"]

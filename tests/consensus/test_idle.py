"""When an idle height becomes worth a block (protocols/consensus/idle.py)."""

from __future__ import annotations

from protocols.consensus.blocks import genesis_tip
from protocols.consensus.idle import block_due
from protocols.sim.kvapp import KVApp
from tests.consensus.helpers import GENESIS_HASH, PARAMS, T0


def test_transactions_make_a_block_due_now() -> None:
    assert block_due(genesis_tip(GENESIS_HASH, T0), KVApp(), PARAMS, has_txs=True, now=T0 + 5) == T0 + 5


def test_nothing_is_due_while_nothing_waits_on_time() -> None:
    assert block_due(genesis_tip(GENESIS_HASH, T0), KVApp(), PARAMS, has_txs=False, now=T0 + 5) is None


def test_a_deadline_makes_an_empty_block_due_no_sooner_than_the_interval() -> None:
    app = KVApp()
    app.commit_block((f"timer t {T0 + 10}".encode(),), T0)
    tip = genesis_tip(GENESIS_HASH, T0)
    assert block_due(tip, app, PARAMS, has_txs=False, now=T0 + 5) == T0 + PARAMS.empty_block_interval_ms
    app = KVApp()
    app.commit_block((f"timer t {T0 + 5_000}".encode(),), T0)
    assert block_due(tip, app, PARAMS, has_txs=False, now=T0 + 5) == T0 + 5_000

"""The chain's parameters and their hard bounds (protocols/chain_params.py): each bound defined once."""

from __future__ import annotations

import typing

import pytest

from protocols.chain_params import MAX_BLOCK_BYTES, MAX_BLOCK_TXS, MAX_TX_BYTES, ChainParams
from protocols.consensus.messages import Block
from protocols.encoding import MAX_CONTAINER_LEN, MaxLen


def test_the_block_decoder_uses_the_same_transaction_bound() -> None:
    hint = typing.get_type_hints(Block, include_extras=True)["txs"]
    assert MaxLen(MAX_BLOCK_TXS) in typing.get_args(hint)[1:]
    assert MAX_BLOCK_TXS <= MAX_CONTAINER_LEN


def test_the_defaults_are_the_rules_nodes_used_before_the_genesis_carried_them() -> None:
    assert ChainParams() == ChainParams(
        max_block_txs=250, max_block_bytes=64 * 1024, max_tx_bytes=16 * 1024,
        max_clock_drift_ms=2_000, empty_block_interval_ms=1_000,
    )


@pytest.mark.parametrize(
    "kw",
    [{"max_block_txs": MAX_BLOCK_TXS + 1}, {"max_block_bytes": MAX_BLOCK_BYTES + 1}, {"max_tx_bytes": MAX_TX_BYTES + 1},
     {"max_block_txs": 0}, {"max_clock_drift_ms": True}],
)
def test_values_beyond_the_hard_bounds_are_refused(kw: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="chain_params"):
        ChainParams(**kw)

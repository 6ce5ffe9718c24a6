"""Consensus in the simulator, with signatures on: committed transactions per second and rounds per
height for n = 4, 7, 10, beside the raw Ed25519 verification rate measured in the same run.

The whole network runs in this one process, so the wall-clock rates are those of n validators sharing
one core; `per-validator` divides the cost back. Every validator has its own verification cache, as on
a real network (no verification is shared between validators). The physical limit to compare with is
the verify rate: a height costs each validator about 2n + 1 signature checks (n prevotes, n precommits,
one proposal, plus the previous certificate), so at most `verify_rate / (2n + 1)` heights per second
per core.

    /work/venv/bin/python bench/consensus_sim.py [--duration MS] [--sizes 4,7,10]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import time

from protocols.crypto import Keypair, signing_message, verify_raw
from protocols.sim.scenario import SIM_CONSENSUS, Scenario
from protocols.sim.simulation import run

VERIFY_SAMPLES = 3_000


def raw_verify_rate() -> float:
    """Ed25519 verifications per second of distinct messages through the same PyNaCl call the code uses."""
    key = Keypair.from_name("bench")
    msgs = [signing_message("bench", "consensus-vote", hashlib.sha256(i.to_bytes(4, "big")).digest()) for i in range(VERIFY_SAMPLES)]
    sigs = [key.sign_raw(m) for m in msgs]
    start = time.perf_counter()
    for sig, m in zip(sigs, msgs):
        assert verify_raw(sig, m)
    return VERIFY_SAMPLES / (time.perf_counter() - start)


def bench(n: int, duration: int, verify_rate: float) -> None:
    scenario = Scenario(
        n=n,
        seed=n,
        duration=duration,
        min_delay=1,
        max_delay=10,
        tx_interval=20,
        txs_per_batch=40,  # 2000 tx/s offered, more than the blocks take: the pool never runs dry
        timer_every=0,
        cas_share=0.0,  # only transactions that apply: what is offered is what can commit
        clock_skew=5,
        consensus=dataclasses.replace(SIM_CONSENSUS, max_block_txs=500),
    )
    start = time.perf_counter()
    result = run(scenario)
    wall = time.perf_counter() - start
    assert not result.violations, result.violations
    heights = max(result.heights())
    txs = result.committed_txs()
    rounds = list(result.decided_rounds().values())
    verify_share = result.verifications / verify_rate / wall
    height_limit = verify_rate / (2 * n + 1)
    per_validator_heights = heights * n / wall  # heights per second if each validator had its own core
    print(
        f"n={n:<3} heights={heights:<5} txs={txs:<7} wall={wall:6.2f}s  "
        f"tx/s(wall)={txs / wall:8.0f}  tx/s(simulated)={txs / (duration / 1000):7.0f}  "
        f"rounds/height mean={sum(rounds) / len(rounds):.2f} max={max(rounds)}  "
        f"verifications={result.verifications} ({result.verifications / heights / n:.1f} per height per validator)  "
        f"verify share of wall={verify_share:.0%}  "
        f"per-validator heights/s={per_validator_heights:6.1f} vs verify-bound {height_limit:6.0f}/s "
        f"(ratio {per_validator_heights / height_limit:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10_000, help="simulated milliseconds per size")
    parser.add_argument("--sizes", default="4,7,10")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rate = raw_verify_rate()
    print(f"raw Ed25519 verify rate (PyNaCl, this core): {rate:,.0f}/s")
    for n in (int(x) for x in args.sizes.split(",")):
        bench(n, args.duration, rate)


if __name__ == "__main__":
    main()

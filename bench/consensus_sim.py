"""Consensus in the simulator, with signatures on: committed transactions per second and rounds per
height for n = 4, 7, 10, beside the raw Ed25519 verification rate measured in the same run.

The whole network runs in this one process, so the wall-clock rates are those of n validators sharing
one core; `per-validator` divides the cost back. Every validator has its own verification cache, as on
a real network (no verification is shared between validators). The physical limit to compare with is
the verify rate: a height costs each validator about 2n + 1 signature checks (n prevotes, n precommits,
one proposal, plus the previous certificate), so at most `verify_rate / (2n + 1)` heights per second
per core.

    .venv/bin/python -m bench.consensus_sim [--duration MS] [--sizes 4,7,10]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import logging
import time

from protocols.crypto import Keypair, signing_message, verify_raw
from protocols.sim.scenario import SIM_PARAMS, Behaviour, Scenario
from protocols.sim.simulation import run

VERIFY_SAMPLES = 3_000


def raw_verify_rate() -> float:
    """Ed25519 verifications per second of distinct messages through the same PyNaCl call the code uses."""
    key = Keypair.from_name("bench")
    digests = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(VERIFY_SAMPLES)]
    msgs = [signing_message("bench", "consensus-vote", d) for d in digests]
    sigs = [key.sign_raw(m) for m in msgs]
    start = time.perf_counter()
    for sig, m in zip(sigs, msgs):
        assert verify_raw(sig, m)
    return VERIFY_SAMPLES / (time.perf_counter() - start)


def bench(n: int, duration: int, verify_rate: float, faulty: bool) -> None:
    """One line: a clean network, or 10% loss + 5% duplication with f silent validators (`faulty`)."""
    f = (n - 1) // 3
    scenario = Scenario(
        n=n,
        seed=n,
        duration=duration,
        min_delay=1,
        max_delay=10,
        loss=0.1 if faulty else 0.0,
        duplicate=0.05 if faulty else 0.0,
        byzantine=tuple((i, Behaviour.SILENT) for i in range(1, 1 + f)) if faulty else (),
        tx_interval=20,
        txs_per_batch=40,  # 2000 tx/s offered (simulated time)
        timer_every=0,
        clock_skew=5,
        cas_share=0.0,  # only transactions that apply: what is offered can commit
        params=dataclasses.replace(SIM_PARAMS, max_block_txs=500),
    )
    start = time.perf_counter()
    result = run(scenario)
    wall = time.perf_counter() - start
    assert not result.violations, result.violations
    heights = max(result.heights())
    txs = result.committed_txs()
    rounds = list(result.decided_rounds().values())
    verify_share = result.verifications / verify_rate / wall
    live = n - (f if faulty else 0)
    # Each validator on its own core: the run's work divided among the validators that did it.
    per_validator_heights = heights * live / wall
    height_limit = verify_rate / (2 * n + 1)
    label = f"loss10%+{f} silent" if faulty else "clean"
    print(
        f"{n:>3} {label:<17} {heights:>7} {txs:>7} {wall:>7.2f} {txs / wall:>9.0f} {txs * live / wall:>9.0f} "
        f"{txs / (duration / 1000):>8.0f} {sum(rounds) / len(rounds):>6.2f} {max(rounds):>4} "
        f"{result.verifications / heights / live:>8.1f} {verify_share:>7.0%} {per_validator_heights:>9.0f} "
        f"{height_limit:>9.0f} {per_validator_heights / height_limit:>6.2f}"
    )


HEADER = (
    "  n network           heights     txs  wall s  tx/s wall  tx/s 1cpu  tx/s sim rounds  max "
    "ver/h/v  verify% heights/s   bound/s  ratio"
)
LEGEND = """\
tx/s wall: committed tx per wall second, all validators on this one core; tx/s 1cpu: the same if each
validator had a core; tx/s sim: per simulated second (bounded by the offered 2000 tx/s); rounds: mean
and max round at which heights were decided (0 = first try); ver/h/v: Ed25519 verifications per height
per validator; verify%: share of wall time spent verifying; heights/s: per validator with its own core;
bound/s: verify rate / (2n+1), the heights per second signature checking alone allows; ratio = heights/s
/ bound/s."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10_000, help="simulated milliseconds per size")
    parser.add_argument("--sizes", default="4,7,10")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    rate = raw_verify_rate()
    print(f"raw Ed25519 verify rate (PyNaCl, this core): {rate:,.0f}/s")
    print(HEADER)
    for n in (int(x) for x in args.sizes.split(",")):
        for faulty in (False, True):
            bench(n, args.duration, rate, faulty)
    print(LEGEND)


if __name__ == "__main__":
    main()

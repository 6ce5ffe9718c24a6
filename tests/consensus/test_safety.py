"""Safety across many seeded schedules: no two correct validators commit different blocks at one height,
and every committed block carries a valid certificate (checked by the simulator at every commit).

Each schedule draws delays, loss, duplication, a partition that heals, a crash and restart of a correct
validator, and f Byzantine validators with a random behaviour (`protocols.sim.scenario.random_scenario`).
CI runs a few hundred; set POCNET_SIM_SCHEDULES to run more per configuration (e.g. 5000).
"""

from __future__ import annotations

import os

import pytest

from protocols.sim.scenario import random_scenario
from protocols.sim.simulation import run

SCHEDULES = {4: 200, 7: 60}
CHUNKS = 10


def schedules(n: int) -> int:
    override = os.environ.get("POCNET_SIM_SCHEDULES")
    return int(override) if override else SCHEDULES[n]


@pytest.mark.parametrize("n", [4, 7])
@pytest.mark.parametrize("chunk", range(CHUNKS))
def test_agreement_and_certificates(n: int, chunk: int) -> None:
    f = (n - 1) // 3
    total = schedules(n)
    committed = 0
    for seed in range(chunk, total, CHUNKS):
        scenario = random_scenario(seed * 1000 + n, n, f)
        result = run(scenario)
        assert not result.violations, f"{result.violations[:3]} in {scenario}"
        committed += max(result.heights())
    assert committed > 0  # the schedules do make progress, so agreement was actually at stake

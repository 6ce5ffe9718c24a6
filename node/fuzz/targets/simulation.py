"""The `simulation` target: fuzzer-chosen network conditions for the deterministic consensus simulator."""

from __future__ import annotations

from typing import Any

from node.fuzz.mutators import pack_tree, unpack_tree
from node.fuzz.targets.base import Target, feature
from protocols.fuzz.oracles import OracleViolation
from protocols.sim.report import liveness_since
from protocols.sim.scenario import Behaviour, Crash, Partition, Scenario
from protocols.sim.simulation import run

# Bounds that keep one input under a second of CPU: a few simulated seconds of 4 to 7 validators.
SIZES = (4, 5, 7)
MAX_DURATION_MS = 4_000
MIN_DURATION_MS = 500
DELAYS = (1, 5, 20, 60, 150, 400)
RATES = (0.0, 0.01, 0.05, 0.2, 0.5)
BEHAVIOURS = tuple(Behaviour)
# Field order of an input (each an int, taken modulo its range; missing ones count as 0).
FIELDS = ("seed", "size", "duration", "max_delay", "loss", "duplicate", "byzantine", "behaviour", "partition_start",
          "partition_length", "partition_cut", "crash_node", "crash_at", "crash_for", "tx_interval", "txs",
          "timer_every", "cas", "skew", "relay")


def _ints(tree: Any) -> list[int]:
    values = tree if isinstance(tree, list) else [tree]
    ints = [abs(v) if type(v) is int else 0 for v in values]
    return ints + [0] * (len(FIELDS) - len(ints))


def scenario_of(tree: Any) -> Scenario:
    """The scenario an input describes; any tree describes one (out-of-range values wrap around)."""
    v = dict(zip(FIELDS, _ints(tree), strict=False))  # extra integers are ignored
    n = SIZES[v["size"] % len(SIZES)]
    f = (n - 1) // 3
    duration = MIN_DURATION_MS + v["duration"] % (MAX_DURATION_MS - MIN_DURATION_MS)
    byzantine = tuple((n - 1 - i, BEHAVIOURS[(v["behaviour"] + i) % len(BEHAVIOURS)]) for i in range(v["byzantine"] % (f + 1)))
    partitions: tuple[Partition, ...] = ()
    if v["partition_length"] % 3:
        start = v["partition_start"] % duration
        cut = 1 + v["partition_cut"] % (n - 1)
        groups = (frozenset(range(cut)), frozenset(range(cut, n)))
        partitions = (Partition(start, start + 100 + v["partition_length"] % duration, groups),)
    crashes: tuple[Crash, ...] = ()
    correct = [i for i in range(n) if i not in {b for b, _ in byzantine}]
    if v["crash_for"] % 3:
        at = v["crash_at"] % duration
        restart = at + 50 + v["crash_for"] % duration if v["crash_for"] % 3 == 1 else None
        crashes = (Crash(correct[v["crash_node"] % len(correct)], at, restart),)
    return Scenario(
        n=n, seed=v["seed"] % 2**32, duration=duration, min_delay=1, max_delay=DELAYS[v["max_delay"] % len(DELAYS)],
        loss=RATES[v["loss"] % len(RATES)], duplicate=RATES[v["duplicate"] % len(RATES)], byzantine=byzantine,
        partitions=partitions, crashes=crashes, tx_interval=(0, 50, 200, 1000)[v["tx_interval"] % 4],
        txs_per_batch=1 + v["txs"] % 8, timer_every=(0, 1, 3, 10)[v["timer_every"] % 4], cas_share=RATES[v["cas"] % len(RATES)],
        clock_skew=(0, 20, 100, 400)[v["skew"] % 4], relay=bool(v["relay"] % 2), shared_verifier=True,
    )


class SimulationTarget(Target):
    """The deterministic network simulator (protocols/sim/) under fuzzer-chosen conditions: 4 to 7
    validators, delays, loss, duplication, up to f Byzantine validators of every behaviour, a partition
    that heals, a crash with or without restart, clock skew, client load with stale transactions.

    Input: a msgpack array of small integers, one per scenario parameter (see FIELDS); every tree names
    some scenario, so every mutation runs.
    Oracles, on every input:
    - agreement and validity as the simulator checks them on every commit: no correct validator commits
      a different block at a height, a block out of order, a block without a valid certificate or one
      that does not chain to its parent;
    - no exception escapes the simulation (state machines, application, relay, sync).
    """

    name = "simulation"

    def seeds(self) -> list[bytes]:
        return [pack_tree([seed, size, 2_500, seed, seed, seed + 1, 1, seed, 800, seed, 1, 0, 300, seed, seed, 3, seed, seed, seed, seed])
                for seed in range(6) for size in (0, 2)]

    def execute(self, data: bytes) -> set[str]:
        scenario = scenario_of(unpack_tree(data))
        result = run(scenario)
        if result.violations:
            raise OracleViolation(f"simulation broke safety: {result.violations[0]}")
        heights = result.heights()
        liveness = liveness_since(result, 0)
        return {
            feature("validators", scenario.n, "byzantine", *sorted(b.value for _, b in scenario.byzantine)),
            feature("partition" if scenario.partitions else "no partition", "crash" if scenario.crashes else "no crash"),
            f"heights {'none' if max(heights) == 0 else 'some' if min(heights) == 0 else 'all'}",
            f"max round {min(liveness.max_round, 6)}",
        }

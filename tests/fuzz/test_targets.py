"""Every fuzz target runs as a smoke test: a fixed seed and a fixed number of executions (never a
duration), no crash, and the corpus grows beyond the seeds (the mutations reach new behaviour)."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.fuzz.corpus import load_corpus
from node.fuzz.runner import Campaign, Stats, run_campaign
from node.fuzz.targets import TARGETS, target_class

# Executions per target: a second or two each on a loaded 2-core machine.
RUNS = {"decode": 3_000, "ledger": 1_500, "matching": 300, "consensus": 150, "simulation": 40, "node": 400, "network": 60}


def campaign(tmp_path: Path, target: str, runs: int, seed: int = 7) -> Stats:
    return run_campaign(Campaign(target, seed=seed, runs=runs, corpus=tmp_path / "corpus", crash_dir=tmp_path / "crashes"))


@pytest.mark.parametrize("target", [t for t in TARGETS if t != "network"])
def test_target_runs_clean_and_grows_its_corpus(tmp_path: Path, target: str) -> None:
    stats = campaign(tmp_path, target, RUNS[target])
    assert stats.executions == RUNS[target]
    assert stats.crash_files == [], f"{target} crashed: see {stats.crash_files}"
    assert stats.grown > 0, "no mutation showed anything the seeds did not"
    assert len(load_corpus(tmp_path / "corpus")) >= stats.grown


# Four real nodes on a shared 2-core machine: as for the other multi-node tests, py-libp2p timing under
# load occasionally needs another try; a failure that repeats is a real one.
@pytest.mark.slow
@pytest.mark.flaky(reruns=1)
def test_network_target_runs_clean_against_real_nodes(tmp_path: Path) -> None:
    stats = campaign(tmp_path, "network", RUNS["network"])
    assert stats.executions == RUNS["network"]
    assert stats.crash_files == []


def test_a_fixed_seed_and_runs_give_the_same_campaign(tmp_path: Path) -> None:
    first = campaign(tmp_path / "a", "ledger", 800, seed=3)
    second = campaign(tmp_path / "b", "ledger", 800, seed=3)
    assert (first.corpus, first.features) == (second.corpus, second.features)
    assert load_corpus(tmp_path / "a" / "corpus") == load_corpus(tmp_path / "b" / "corpus")


def test_every_target_documents_its_oracles() -> None:
    for name in TARGETS:
        doc = target_class(name).__doc__ or ""
        assert "Oracles" in doc and "Input:" in doc, f"the {name} target's docstring must state its input and oracles"

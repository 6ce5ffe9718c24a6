"""A crash is saved once per bug, minimised, with a replay command that reruns it; minimisation keeps the
failure; operator mistakes around crash files exit with status 2 and one line."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from node.cli import build_parser
from node.fuzz import targets
from node.fuzz.corpus import read_crash, write_crash
from node.fuzz.minimise import failure, minimise
from node.fuzz.runner import Campaign, run_campaign
from node.fuzz.targets.base import Target


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register the target with a planted bug (tests/fuzz/planted.py) for this test."""
    monkeypatch.setitem(targets.TARGETS, "planted", ("tests.fuzz.planted", "PlantedTarget"))
    return "planted"


def pocnet(*argv: str) -> int:
    """Run a `pocnet` command in this process (so the planted target is visible) and return its status."""
    args = build_parser().parse_args(list(argv))
    return int(args.run(args))


def test_a_planted_crash_is_saved_once_and_replays(planted: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    crash_dir = tmp_path / "crashes"
    stats = run_campaign(Campaign(planted, seed=1, runs=20_000, crash_dir=crash_dir))
    assert len(stats.crash_files) == 1, "one bug, one crash file"
    assert stats.crashes >= 1
    path = stats.crash_files[0]
    crash = read_crash(path)
    assert crash.target == planted and "planted: a transfer of" in crash.signature
    assert crash.replay == f"pocnet fuzz replay {path}"
    assert f"replay: pocnet fuzz replay {path}" in capsys.readouterr().out

    assert pocnet("fuzz", "replay", str(path)) == 1
    assert "still fails: OracleViolation: planted" in capsys.readouterr().err


def test_a_fixed_bug_replays_clean(planted: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A crash file whose input no longer fails (the bug was fixed) replays with status 0."""
    clean_input = targets.target_class(planted)().seeds()[0]
    path = write_crash(tmp_path, planted, clean_input, "OracleViolation: planted", "")
    assert pocnet("fuzz", "replay", str(path)) == 0
    assert "runs clean now" in capsys.readouterr().out


class _NeedsSeven(Target):
    """Fails on any input holding a 7 byte; the rest is noise for the minimiser to remove."""

    name = "needs-seven"

    def seeds(self) -> list[bytes]:
        return []

    def execute(self, data: bytes) -> set[str]:
        if b"\x07" in data:
            raise ValueError("seven")
        return set()


def test_minimising_keeps_the_failure_and_drops_the_rest() -> None:
    target = _NeedsSeven()
    data = random.Random(0).randbytes(300).replace(b"\x07", b"") + b"\x07" + b"tail"
    wanted = failure(target, data)
    assert wanted is not None
    small = minimise(target, data, wanted)
    assert small == b"\x07"


def test_replaying_a_file_that_is_no_crash_file_is_an_operator_mistake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.json"
    junk.write_text(json.dumps({"target": "decode"}))
    assert pocnet("fuzz", "replay", str(junk)) == 2
    assert pocnet("fuzz", "replay", str(tmp_path / "missing.json")) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("pocnet: ") for line in errors)

"""`pocnet fuzz` as a user runs it: list, seeds, a campaign in its own process, and one line with status 2
for every operator mistake."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from node.fuzz.corpus import load_corpus
from node.fuzz.targets import TARGETS
from tests.fuzz.test_crashes import pocnet


def run_cli(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "node.cli", *argv], capture_output=True, text=True, cwd=cwd, timeout=300, check=False)


def test_list_names_every_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert pocnet("fuzz", "list") == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(TARGETS)


def test_seeds_are_written_deterministically(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert pocnet("fuzz", "seeds", "ledger", "--corpus", str(tmp_path / "a")) == 0
    assert pocnet("fuzz", "seeds", "ledger", "--corpus", str(tmp_path / "b")) == 0
    first = load_corpus(tmp_path / "a")
    assert first and first == load_corpus(tmp_path / "b")


@pytest.mark.parametrize(
    "argv, says",
    [
        (["fuzz", "nonsense"], "unknown fuzz target 'nonsense'"),
        (["fuzz", "decode", "--runs", "0"], "--runs 0"),
        (["fuzz", "decode", "--duration", "-1"], "--duration -1"),
        (["fuzz", "decode", "--jobs", "0"], "--jobs 0"),
        (["fuzz", "seeds", "decode"], "--corpus"),
        (["fuzz", "seeds"], "name a target"),
        (["fuzz", "replay"], "give the crash file"),
        (["fuzz", "network", "--engine", "atheris", "--runs", "5"], "--engine"),
    ],
)
def test_operator_mistakes_print_one_line_and_exit_2(argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert pocnet(*argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pocnet: ") and says in err[0], err


def test_a_corpus_path_that_is_a_file_is_an_operator_mistake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("x")
    assert pocnet("fuzz", "decode", "--runs", "5", "--corpus", str(tmp_path / "file")) == 2
    assert "not a directory" in capsys.readouterr().err


def test_a_campaign_runs_in_its_own_process_and_grows_the_corpus(tmp_path: Path) -> None:
    result = run_cli("fuzz", "decode", "--runs", "2000", "--engine", "mutational", "--no-coverage",
                     "--corpus", "corpus", "--crash-dir", "crashes", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "DONE" in result.stdout and "crash files of decode in crashes: 0" in result.stdout
    assert len(load_corpus(tmp_path / "corpus")) > 100


@pytest.mark.skipif(importlib.util.find_spec("coverage") is None, reason="the `coverage` extra is not installed")
def test_a_campaign_reports_statement_coverage_per_module(tmp_path: Path) -> None:
    result = run_cli("fuzz", "ledger", "--runs", "400", "--engine", "mutational", "--jobs", "2", "--crash-dir", "crashes", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "[job 0]" in result.stdout and "[job 1]" in result.stdout
    assert "protocols/ledger/poco.py" in result.stdout
    assert "protocols/: " in result.stdout


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="the `atheris` extra is not installed")
def test_the_atheris_engine_runs_a_campaign_and_stops_at_its_runs(tmp_path: Path) -> None:
    result = run_cli("fuzz", "ledger", "--runs", "500", "--engine", "atheris", "--no-coverage",
                     "--corpus", "corpus", "--crash-dir", "crashes", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "#500 DONE" in result.stdout
    assert "INITED cov:" in result.stderr  # libFuzzer's own status lines
    assert len(load_corpus(tmp_path / "corpus")) > 0

"""What a node's log says: when each block was committed there, and what went wrong.

A node logs with `logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s %(message)s")`
(node/cli.py): local wall-clock time to the millisecond, comparable with `time.time()` in this process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

ASCTIME_FORMAT = "%Y-%m-%d %H:%M:%S,%f"
_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (\w+) (\S+) (.*)$")
_COMMIT = re.compile(r"event=block-committed height=(\d+) txs=(\d+) round=(\d+)")
_EVENT = re.compile(r"event=([\w-]+)")
# How many distinct problem lines a report quotes per node.
QUOTED_PROBLEMS = 3


@dataclass(frozen=True)
class CommitEvent:
    height: int
    txs: int
    round: int
    time: float  # seconds since the epoch, as time.time()


@dataclass
class LogProblems:
    """Tracebacks, errors and warnings of one log, counted by event name (or logger for free text)."""

    tracebacks: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    warnings: dict[str, int] = field(default_factory=dict)
    quotes: list[str] = field(default_factory=list)


def parse_time(asctime: str) -> float:
    return datetime.strptime(asctime, ASCTIME_FORMAT).timestamp()


def commits(path: Path) -> dict[int, CommitEvent]:
    """Every `event=block-committed` line of a node's log, by height (the first, should one repeat)."""
    found: dict[int, CommitEvent] = {}
    for line in _lines(path):
        if "event=block-committed" not in line:
            continue
        head, commit = _LINE.match(line), _COMMIT.search(line)
        if head is None or commit is None:
            continue
        height, txs, round_ = (int(g) for g in commit.groups())
        found.setdefault(height, CommitEvent(height, txs, round_, parse_time(head.group(1))))
    return found


def problems(path: Path) -> LogProblems:
    report = LogProblems()
    in_traceback = False
    for line in _lines(path):
        if line.startswith("Traceback") or line.startswith("  + Exception Group Traceback"):
            report.tracebacks += 1
            in_traceback = True
            continue
        if in_traceback and line and not line[0].isspace() and not line.startswith("During handling"):
            # The exception's own line closes a traceback: quote it.
            in_traceback = False
            if len(report.quotes) < QUOTED_PROBLEMS:
                report.quotes.append(f"traceback: {line[:200]}")
        head = _LINE.match(line)
        if head is None or head.group(2) not in ("ERROR", "CRITICAL", "WARNING"):
            continue
        event = _EVENT.search(head.group(4))
        key = event.group(1) if event else f"{head.group(3)}: {head.group(4)[:60]}"
        counts = report.warnings if head.group(2) == "WARNING" else report.errors
        counts[key] = counts.get(key, 0) + 1
        if counts[key] == 1 and len(report.quotes) < QUOTED_PROBLEMS:
            report.quotes.append(line[:240])
    return report


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines() if path.exists() else []

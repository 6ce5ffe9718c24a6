"""`Devnet.stop`: nodes still working on their shutdown are waited for, however slowly they go; only a
process that makes no progress (neither exits nor uses CPU) is killed."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import devnet.network as network
from devnet.network import Devnet, NodeSpec

# A child that ignores SIGTERM, then either works for a while and exits by itself, or sleeps forever.
IGNORE_TERM = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
BUSY_THEN_EXIT = IGNORE_TERM + "end = time.monotonic() + 2.5\nwhile time.monotonic() < end: pass"
STUCK = IGNORE_TERM + "time.sleep(3600)"


def start(code: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    return process


def test_a_slow_stopper_is_waited_for_and_a_stuck_one_is_killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(network, "STOP_GRACE_S", 1.0)
    busy, stuck = start(BUSY_THEN_EXIT), start(STUCK)
    try:
        began = time.monotonic()
        killed = Devnet(tmp_path).stop([NodeSpec("busy", "manager", busy.pid), NodeSpec("stuck", "manager", stuck.pid)])
        took = time.monotonic() - began
        assert killed == ["stuck"]
        assert busy.wait(1) == 0  # it exited by itself, after more than one grace period of work
        assert took >= 2.0
    finally:
        for process in (busy, stuck):
            process.kill()
            process.wait()

"""protocols/consensus and protocols/sim are sans-IO and deterministic (DESIGN.md section 2): no clock,
no sockets, no threads, no processes, and randomness only from a seeded `random.Random`."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2] / "protocols"
FORBIDDEN = {
    "time", "datetime", "trio", "socket", "asyncio", "threading", "subprocess", "os", "secrets", "uuid", "libp2p"
}
FILES = sorted((ROOT / "consensus").glob("*.py")) + sorted((ROOT / "sim").glob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_io_no_clock_no_global_randomness(path: pathlib.Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
        if path.parent.name == "consensus":
            assert "random" not in names, f"{path.name}: consensus must not use randomness"
        # random.<anything> other than the seeded generator class is the hidden global generator.
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "random":
            assert node.attr == "Random", f"{path.name} uses the global random.{node.attr}"

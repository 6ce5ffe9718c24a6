"""Crash signatures and minimisation: the smallest input that still fails the same way.

Two failures are the same bug when they have the same signature: exception type, the shape of its message
(numbers and quoted values blanked), and the innermost frame. Minimisation tries, within a budget, to
drop msgpack array items and shorten byte strings of the body (structure first, so the result still says
which field matters), then to cut byte ranges; a candidate is kept only if it fails with the same signature.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable

from node.fuzz.mutators import node_at, pack_tree, replaced, tree_nodes, unpack_tree
from node.fuzz.targets.base import Target, feature

# Minimising re-runs the target a few hundred times; slow targets (node, network) get less of the budget.
MINIMISE_BUDGET_S = 10.0
MINIMISE_MAX_RUNS = 2_000


def signature(exc: BaseException) -> str:
    """Exception type, message shape and innermost frame: one signature, one bug."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 2)[-1]}:{frames[-1].lineno}" if frames else ""
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {feature(message)}{where}"


def failure(target: Target, data: bytes) -> str | None:
    """The signature of the failure `data` causes, or None if it runs clean."""
    try:
        target.execute(data)
    except Exception as exc:
        return signature(exc)
    return None


def _tree_candidates(header: bytes, body: bytes) -> list[bytes]:
    """Smaller variants of the body's msgpack tree: each array item dropped, each byte string halved."""
    tree = unpack_tree(body)
    if tree is None:
        return []
    out = []
    for path in reversed(tree_nodes(tree)):
        if not path:
            continue
        node = node_at(tree, path)
        parent = node_at(tree, path[:-1])
        out.append(replaced(tree, path[:-1], parent[: path[-1]] + parent[path[-1] + 1 :]))
        if isinstance(node, (bytes, str)) and len(node) > 1:
            out.append(replaced(tree, path, node[: len(node) // 2]))
    return [header + pack_tree(t) for t in out]


def _byte_candidates(data: bytes, start: int) -> list[bytes]:
    """`data` with chunks of halving size cut out, past the header."""
    out = []
    chunk = max(1, (len(data) - start) // 2)
    while chunk >= 1:
        for i in range(start, len(data) - chunk + 1, chunk):
            out.append(data[:i] + data[i + chunk :])
        chunk //= 2
    return out


def minimise(target: Target, data: bytes, wanted: str, budget_s: float = MINIMISE_BUDGET_S,
             clock: Callable[[], float] = time.monotonic) -> bytes:
    """The smallest variant of `data` found within the budget that still fails with signature `wanted`."""
    deadline = clock() + budget_s
    runs = 0
    best = data
    improved = True
    while improved and clock() < deadline and runs < MINIMISE_MAX_RUNS:
        improved = False
        header, body = best[: target.header], best[target.header :]
        for candidate in _tree_candidates(header, body) + _byte_candidates(best, target.header):
            if len(candidate) >= len(best) or clock() >= deadline or runs >= MINIMISE_MAX_RUNS:
                continue
            runs += 1
            if failure(target, candidate) == wanted:
                best = candidate
                improved = True
                break
    return best

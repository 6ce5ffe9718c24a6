"""Mutations of fuzz inputs: raw bytes, and msgpack trees (structure-aware).

Every pocnet message is a msgpack array `[tag, version, field...]` (protocols/encoding.py), so flipping
bits mostly breaks the framing and stops at the parser. Tree mutations unpack the input, change one node
(an int to a boundary value, bytes to another length, a field to another type, an array item dropped or
doubled, a subtree taken from another corpus entry) and pack it again in canonical framing, which is
what reaches the field checks and, once re-signed, the ledger and consensus rules. Byte mutations stay
in the mix for what only they can produce: non-canonical encodings, cut frames, trailing bytes.

All functions take their randomness as a `random.Random`, so a campaign with a fixed seed is repeatable.
"""

from __future__ import annotations

import random
from typing import Any

import msgpack

# Bytes that msgpack gives a meaning (nil, false, never-used, containers, wide ints, bin/str headers).
MSGPACK_MARKERS = b"\xc0\xc2\xc1\xdc\xdd\xde\xdf\xcf\xd3\xc4\xc6\xd9\xdb\x90\x80\xff\x00\x7f"
# Integers where range checks, msgpack's widths and SQLite's integers change behaviour.
BOUNDARY_INTS = (0, 1, 2, 3, -1, 127, 128, 255, 256, 65_535, 65_536, 2**31 - 1, 2**31, 2**32, 2**53, 2**63 - 1, 2**63, 2**64 - 1, -(2**63))
# Lengths where `Len`/`MaxLen` checks change their answer (addresses 20, hashes 32, signatures 64).
BOUNDARY_LENGTHS = (0, 1, 19, 20, 21, 31, 32, 33, 63, 64, 65)
# Inputs grow by splicing; beyond this a mutation is cut back (the decoders' limits are tested on their own).
MAX_INPUT_BYTES = 64 * 1024
# An unpacked tree deeper than this is treated as bytes (a deep tree from the network is a parser test).
MAX_TREE_DEPTH = 32

Path = tuple[int, ...]


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    """A different, non-empty byte string near `data`: flipped bits, cuts, overwrites, msgpack markers
    inserted, a chunk repeated, random bytes appended."""
    while True:
        out = bytearray(data)
        for _ in range(rng.choice((1, 1, 2, 3))):
            i = rng.randrange(len(out) + 1)
            kind = rng.randrange(6)
            if kind == 0 and i < len(out):
                out[i] ^= 1 << rng.randrange(8)
            elif kind == 1:
                del out[i:]
            elif kind == 2:
                out[i : i + 4] = rng.randbytes(rng.randrange(1, 5))
            elif kind == 3:
                out.insert(min(i, len(out)), rng.choice(MSGPACK_MARKERS))
            elif kind == 4:
                out[i:i] = out[rng.randrange(len(out) + 1) :][:16]
            else:
                out += rng.randbytes(rng.randrange(1, 40))
        if bytes(out) != data and out:
            return bytes(out[:MAX_INPUT_BYTES])


def tree_nodes(tree: Any, path: Path = ()) -> list[Path]:
    """Paths to every node of a msgpack tree (arrays are inner nodes)."""
    paths = [path]
    if isinstance(tree, list):
        for i, child in enumerate(tree):
            paths += tree_nodes(child, path + (i,))
    return paths


def node_at(tree: Any, path: Path) -> Any:
    for i in path:
        tree = tree[i]
    return tree


def replaced(tree: Any, path: Path, new: Any) -> Any:
    """A copy of `tree` with the node at `path` replaced by `new` (the original is untouched)."""
    if not path:
        return new
    copy = list(tree)
    copy[path[0]] = replaced(tree[path[0]], path[1:], new)
    return copy


def unpack_tree(data: bytes) -> Any | None:
    """The msgpack tree of `data`, or None if it is not exactly one msgpack value without maps or
    extension types (those are not part of pocnet's encoding: a mutation that made one is a byte-level
    mutation, and stays one)."""
    try:
        tree = msgpack.unpackb(data, raw=False, max_map_len=0, max_ext_len=0)
    except Exception:
        return None
    return tree if _depth(tree) <= MAX_TREE_DEPTH else None


def _depth(tree: Any) -> int:
    return 1 + max((_depth(child) for child in tree), default=0) if isinstance(tree, list) else 0


def pack_tree(tree: Any) -> bytes:
    return msgpack.packb(tree, use_bin_type=True)


def random_scalar(rng: random.Random) -> Any:
    """A msgpack scalar of any family, including those no wire type uses (floats, negative ints)."""
    kind = rng.randrange(7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice(BOUNDARY_INTS)
    if kind == 3:
        return rng.randrange(-1000, 1000)
    if kind == 4:
        return rng.randbytes(rng.choice(BOUNDARY_LENGTHS))
    if kind == 5:
        return "".join(chr(rng.randrange(32, 0x3000)) for _ in range(rng.randrange(0, 12)))
    return rng.uniform(-1e9, 1e9)


def _tweak(rng: random.Random, node: Any) -> Any:
    """A value near `node`, of its own type where possible: the mutations that cross one check at a time."""
    if type(node) is int:
        return rng.choice((node + 1, node - 1, node * 2, node // 2, -node, rng.choice(BOUNDARY_INTS), node ^ (1 << rng.randrange(64))))
    if type(node) is bytes:
        choice = rng.randrange(4)
        if choice == 0 and node:
            i = rng.randrange(len(node))
            return node[:i] + bytes([node[i] ^ (1 << rng.randrange(8))]) + node[i + 1 :]
        if choice == 1:
            return (node + rng.randbytes(65))[: rng.choice(BOUNDARY_LENGTHS)]
        if choice == 2:
            return node[: rng.randrange(len(node) + 1)]
        return node + rng.randbytes(rng.randrange(1, 8))
    if type(node) is str:
        return rng.choice((node + "x", node[:-1], node * 2, node.upper(), "\u0000", "é" * rng.randrange(1, 9)))
    if type(node) is list:
        if not node:
            return [random_scalar(rng)]
        i = rng.randrange(len(node))
        choice = rng.randrange(5)
        if choice == 0:
            return node[:i] + node[i + 1 :]  # a field dropped
        if choice == 1:
            return node[: i + 1] + [node[i]] + node[i + 1 :]  # a field doubled
        if choice == 2:
            return node[:i] + [random_scalar(rng)] + node[i:]  # a field inserted
        if choice == 3:
            j = rng.randrange(len(node))
            swapped = list(node)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            return swapped
        return node[:i]  # cut short
    return random_scalar(rng)


def mutate_tree(rng: random.Random, tree: Any, donors: list[Any], focus: Path = ()) -> Any:
    """One structural change of `tree`: a node tweaked, replaced by a scalar of another type, or replaced
    by a subtree of a donor (another corpus entry), which splices valid substructures together. Most
    changes go under `focus` when the tree has that path (a target's interesting part, e.g. a
    transaction's body rather than its signature, which the target re-signs anyway)."""
    paths = tree_nodes(tree)
    if focus and rng.random() < 0.8:
        paths = [p for p in paths if p[: len(focus)] == focus] or paths
    path = rng.choice(paths)
    node = node_at(tree, path)
    kind = rng.randrange(10)
    if kind < 7:
        new = _tweak(rng, node)
    elif kind < 8 or not donors:
        new = random_scalar(rng)
    else:
        donor = rng.choice(donors)
        new = node_at(donor, rng.choice(tree_nodes(donor)))
    return replaced(tree, path, new)


def mutate_msgpack(rng: random.Random, data: bytes, donors: list[bytes], focus: Path = ()) -> bytes:
    """Mutate `data` as a msgpack tree when it is one (most of the time), else or sometimes as bytes."""
    tree = unpack_tree(data) if rng.random() < 0.8 else None
    if tree is None:
        return mutate_bytes(rng, data) if data else rng.randbytes(rng.randrange(1, 16))
    donor_trees = [t for t in (unpack_tree(d) for d in donors[:4]) if t is not None]
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        tree = mutate_tree(rng, tree, donor_trees, focus)
    try:
        return pack_tree(tree)[:MAX_INPUT_BYTES]
    except (OverflowError, ValueError, TypeError):  # an int tweaked past 64 bits: fall back to bytes
        return mutate_bytes(rng, data)

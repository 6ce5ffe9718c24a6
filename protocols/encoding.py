"""Canonical msgpack encoding of frozen dataclasses ("wire types").

Every structure that crosses the network or goes to storage is a frozen dataclass registered with
`@wire(tag)`. Its one encoding is a msgpack array `[tag, version, field_1, ..., field_n]` in declaration
order; a nested wire value is a nested array of the same shape, so a field may hold one of several wire
types (a union) and the tag says which.

Decoding is strict, because every byte from the network is untrusted:
- the input is bounded in size, containers in length, and maps, extension types and floats are refused;
- the bytes must be the canonical encoding of what they decode to (re-encoding gives them back), so one
  value has exactly one encoding and one hash;
- every field must have its exact declared type (`True` is not an int, a list is not bytes) and satisfy
  the constraints attached with `typing.Annotated` (`Len`, `MaxLen`, `Range`);
- no missing or unknown fields, no trailing bytes.
Anything else raises `DecodeError` with a reason. Depth is bounded by the schema itself: no wire type is
recursive, so a value nests at most as deep as its declared type.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import msgpack

# py-libp2p silently drops gossip payloads over 1 MiB (reference/py-libp2p.md), so no message we accept
# may be larger; bulk data travels over streams in chunks below this bound.
MAX_MESSAGE_BYTES = 1 << 20
# The largest container a wire type may hold unless its field says less: a block's transaction list
# is the biggest legitimate one.
MAX_CONTAINER_LEN = 10_000
# Strings are names, descriptions and params; a longer one is abuse.
MAX_STR_LEN = 64 * 1024
UINT64_MAX = (1 << 64) - 1


class DecodeError(ValueError):
    """Raised for any input that is not the canonical encoding of a valid wire value."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Len:
    """Exact length of a bytes field."""

    n: int


@dataclass(frozen=True)
class MaxLen:
    """Maximum length of a bytes, str or tuple field."""

    n: int


@dataclass(frozen=True)
class Range:
    """Inclusive bounds of an int field."""

    lo: int
    hi: int


U64 = Annotated[int, Range(0, UINT64_MAX)]
Bytes32 = Annotated[bytes, Len(32)]

Converter = Callable[[Any], Any]
T = TypeVar("T")

_REGISTRY: dict[int, type] = {}


def wire(tag: int, version: int = 1) -> Callable[[type[T]], type[T]]:
    """Register a frozen dataclass as a wire type with a unique tag and a schema version.

    The decoder for the class is built lazily on first use, so classes may refer to each other in any order.
    """

    def register(cls: type[T]) -> type[T]:
        if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
            raise TypeError(f"{cls.__name__} must be a frozen dataclass to be a wire type")
        if tag in _REGISTRY:
            raise TypeError(f"wire tag {tag} of {cls.__name__} is already used by {_REGISTRY[tag].__name__}")
        _REGISTRY[tag] = cls
        cls.__wire_tag__ = tag  # type: ignore[attr-defined]
        cls.__wire_version__ = version  # type: ignore[attr-defined]
        cls.__wire_fields__ = tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[attr-defined]
        return cls

    return register


def is_wire_type(cls: object) -> bool:
    return isinstance(cls, type) and hasattr(cls, "__wire_tag__")


# --- encoding -----------------------------------------------------------------------------------


def _to_list(obj: Any) -> list[Any]:
    """msgpack `default` hook: a wire value becomes its array; msgpack recurses into the fields."""
    cls = type(obj)
    try:
        names = cls.__wire_fields__
    except AttributeError:
        raise TypeError(f"cannot encode a value of type {cls.__name__}") from None
    return [cls.__wire_tag__, cls.__wire_version__, *[getattr(obj, name) for name in names]]


def encode(obj: Any) -> bytes:
    """The canonical encoding of a wire value."""
    return msgpack.packb(obj, default=_to_list, use_bin_type=True)


def encode_unsigned(obj: Any) -> bytes:
    """The encoding of a wire value without its last field, which for signed types is the signature."""
    return msgpack.packb(_to_list(obj)[:-1], default=_to_list, use_bin_type=True)


def unsigned_digest(obj: Any) -> bytes:
    """SHA-256 of `encode_unsigned(obj)`."""
    return hashlib.sha256(encode_unsigned(obj)).digest()


def digest(obj: Any) -> bytes:
    """SHA-256 of the canonical encoding."""
    return hashlib.sha256(encode(obj)).digest()


# --- decoding -----------------------------------------------------------------------------------

# Re-encoding decoded plain values (lists, ints, bytes, str: no `default` hook) with one long-lived Packer
# costs half of `msgpack.packb`, which builds a Packer per call; it runs twice per received message. Safe
# to share: without a Python hook, a pack runs start to end under the GIL.
_pack_plain = msgpack.Packer(use_bin_type=True).pack


def decode(expected: Any, data: bytes, max_size: int = MAX_MESSAGE_BYTES) -> Any:
    """Decode `data` as `expected` (a wire type, or a union of wire types), strictly.

    Raises DecodeError for anything that is not the canonical encoding of a valid value.
    """
    if type(data) is not bytes:
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise DecodeError(f"message of {len(data)} bytes exceeds the limit of {max_size}")
    try:
        raw = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            max_str_len=MAX_STR_LEN,
            max_bin_len=max_size,
            max_array_len=MAX_CONTAINER_LEN,
            max_map_len=0,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises a zoo of types (ExtraData, ValueError, UnicodeDecodeError...)
        raise DecodeError(f"malformed msgpack: {type(exc).__name__}: {exc}") from None
    if type(raw) is not list:
        raise DecodeError(f"top level must be an array, got {type(raw).__name__}")
    if _pack_plain(raw) != data:
        raise DecodeError("non-canonical encoding")
    members = _SIGNED_MEMBERS.get(expected)
    if members is None:
        members = _signed_members(expected)
    signed = members.get(raw[0]) if raw and type(raw[0]) is int else None
    if signed is not None:
        # The payload digest is hashed from the received bytes, which are canonical, instead of re-encoding
        # the fields: signed objects arrive on the hot path of order and vote handling.
        try:
            obj = _fast_decoder(signed)(raw, _unsigned_digest_from_bytes(signed, raw, data))
        except DecodeError:
            obj = None
        if obj is not None:
            return obj
    return converter_for(expected)(raw)


def validated(obj: T) -> T:
    """Check that a locally built value is a valid wire value (it decodes back to itself), or raise DecodeError."""
    try:
        data = encode(obj)
    except (TypeError, OverflowError, ValueError) as exc:  # e.g. an int beyond msgpack's 64 bits
        raise DecodeError(f"{type(obj).__name__} cannot be encoded: {exc}") from None
    back = decode(type(obj), data)
    if back != obj:
        raise DecodeError(f"{type(obj).__name__} does not survive a round trip")
    return obj


_CONVERTERS: dict[Any, Converter] = {}


def converter_for(expected: Any) -> Converter:
    conv = _CONVERTERS.get(expected)
    if conv is None:
        conv = _build(expected, ())
        _CONVERTERS[expected] = conv
    return conv


def _build(hint: Any, constraints: tuple[Any, ...]) -> Converter:
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, *extra = typing.get_args(hint)
        return _build(base, constraints + tuple(extra))
    if origin in (typing.Union, types.UnionType):
        return _build_union(typing.get_args(hint), constraints)
    if origin is tuple:
        return _build_tuple(typing.get_args(hint), constraints)
    if hint is int:
        return _int_converter(constraints)
    if hint is bool:
        return _bool_converter
    if hint is bytes:
        return _sized_converter(bytes, constraints, MAX_MESSAGE_BYTES)
    if hint is str:
        return _sized_converter(str, constraints, MAX_STR_LEN)
    if is_wire_type(hint):
        return _wire_converter(hint)
    raise TypeError(f"no wire converter for type hint {hint!r}")


def _int_converter(constraints: tuple[Any, ...]) -> Converter:
    ranges = [c for c in constraints if isinstance(c, Range)]
    lo, hi = (ranges[0].lo, ranges[0].hi) if ranges else (0, UINT64_MAX)

    def convert(value: Any) -> int:
        if type(value) is not int:
            raise DecodeError(f"expected int, got {type(value).__name__}")
        if not lo <= value <= hi:
            raise DecodeError(f"int {value} outside [{lo}, {hi}]")
        return value

    return convert


def _bool_converter(value: Any) -> bool:
    if type(value) is not bool:
        raise DecodeError(f"expected bool, got {type(value).__name__}")
    return value


def _sized_converter(kind: type, constraints: tuple[Any, ...], default_max: int) -> Converter:
    exact = next((c.n for c in constraints if isinstance(c, Len)), None)
    most = next((c.n for c in constraints if isinstance(c, MaxLen)), default_max)
    name = kind.__name__

    def convert(value: Any) -> Any:
        if type(value) is not kind:
            raise DecodeError(f"expected {name}, got {type(value).__name__}")
        if exact is not None and len(value) != exact:
            raise DecodeError(f"expected {name} of length {exact}, got {len(value)}")
        if len(value) > most:
            raise DecodeError(f"{name} of length {len(value)} exceeds {most}")
        return value

    return convert


def _build_tuple(args: tuple[Any, ...], constraints: tuple[Any, ...]) -> Converter:
    if len(args) == 2 and args[1] is Ellipsis:
        item = _build(args[0], ())
        most = next((c.n for c in constraints if isinstance(c, MaxLen)), MAX_CONTAINER_LEN)

        def convert_seq(value: Any) -> tuple[Any, ...]:
            if type(value) is not list:
                raise DecodeError(f"expected array, got {type(value).__name__}")
            if len(value) > most:
                raise DecodeError(f"array of length {len(value)} exceeds {most}")
            return tuple([item(v) for v in value])

        return convert_seq
    items = [_build(a, ()) for a in args]

    def convert_fixed(value: Any) -> tuple[Any, ...]:
        if type(value) is not list or len(value) != len(items):
            raise DecodeError(f"expected array of {len(items)} items")
        return tuple([conv(v) for conv, v in zip(items, value)])

    return convert_fixed


def _build_union(args: tuple[Any, ...], constraints: tuple[Any, ...]) -> Converter:
    allows_none = type(None) in args
    members = [a for a in args if a is not type(None)]
    if len(members) == 1:
        inner = _build(members[0], constraints)
    elif all(is_wire_type(m) for m in members):
        by_tag = {m.__wire_tag__: _wire_converter(m) for m in members}

        def inner(value: Any) -> Any:
            if type(value) is not list or not value:
                raise DecodeError("expected a tagged array")
            conv = by_tag.get(value[0]) if type(value[0]) is int else None
            if conv is None:
                raise DecodeError(f"tag {value[0]!r} is not one of {sorted(by_tag)}")
            return conv(value)

    else:
        raise TypeError(f"unions must be of wire types (and None), got {args!r}")
    if not allows_none:
        return inner

    def optional(value: Any) -> Any:
        return None if value is None else inner(value)

    return optional


def _wire_converter(cls: type) -> Converter:
    """Converter for one wire class; built once, on first call (classes may refer to ones defined later).

    The happy path is one generated function (`_compile_fast`); when it declines a value, `_checked` goes
    through the same rules field by field to raise an error that names the field and the problem.
    """
    cached = _CONVERTERS.get(cls)
    if cached is not None:
        return cached

    def convert(value: Any) -> Any:
        try:
            obj = _fast_decoder(cls)(value)
        except DecodeError:  # from a composite field's converter: `_checked` names the path to it
            obj = None
        return obj if obj is not None else _checked(cls, _field_converters(cls), value)

    _CONVERTERS[cls] = convert
    return convert


_FAST_DECODERS: dict[type, Callable[..., Any]] = {}
_FIELD_CONVERTERS: dict[type, list[Converter]] = {}


def _field_hints(cls: type) -> list[Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return [hints[name] for name in cls.__wire_fields__]


def _field_converters(cls: type) -> list[Converter]:
    fields = _FIELD_CONVERTERS.get(cls)
    if fields is None:
        fields = _FIELD_CONVERTERS[cls] = [_build(hint, ()) for hint in _field_hints(cls)]
    return fields


def _fast_decoder(cls: type) -> Callable[..., Any]:
    fast = _FAST_DECODERS.get(cls)
    if fast is None:
        fast = _FAST_DECODERS[cls] = _compile_fast(cls, _field_hints(cls))
    return fast


_SIGNED_MEMBERS: dict[Any, dict[Any, type]] = {}


def _signed_members(expected: Any) -> dict[Any, type]:
    """The signed wire classes `expected` (a wire class or a union) admits, by tag."""
    members = _SIGNED_MEMBERS.get(expected)
    if members is None:
        union = typing.get_origin(expected) in (typing.Union, types.UnionType)
        candidates = typing.get_args(expected) if union else (expected,)
        members = _SIGNED_MEMBERS[expected] = {
            cls.__wire_tag__: cls for cls in candidates if getattr(cls, "__wire_signed__", False)
        }
    return members


def _checked(cls: type, fields: list[Converter], value: Any) -> Any:
    """The slow path: every check one by one, raising DecodeError with the first problem found."""
    if type(value) is not list:
        raise DecodeError(f"{cls.__name__}: expected array, got {type(value).__name__}")
    if len(value) != len(fields) + 2:
        raise DecodeError(f"{cls.__name__}: expected {len(fields)} fields, got {len(value) - 2}")
    if value[0] != cls.__wire_tag__ or type(value[0]) is not int:
        raise DecodeError(f"{cls.__name__}: wrong tag {value[0]!r}")
    if value[1] != cls.__wire_version__ or type(value[1]) is not int:
        raise DecodeError(f"{cls.__name__}: unsupported version {value[1]!r}")
    try:
        args = [conv(v) for conv, v in zip(fields, value[2:])]
    except DecodeError as exc:
        raise DecodeError(f"{cls.__name__}.{_failing_field(cls, fields, value)}: {exc.reason}") from None
    try:
        obj = cls(*args)
    except (ValueError, TypeError) as exc:  # a __post_init__ invariant of the class
        raise DecodeError(f"{cls.__name__}: {exc}") from None
    if getattr(cls, "__wire_signed__", False):
        object.__setattr__(obj, "payload_digest", _unsigned_digest_of(value))
    return obj


def _unsigned_digest_of(value: list[Any]) -> bytes:
    """A signed value's payload digest from its raw array: the same bytes minus the signature, hashed."""
    return hashlib.sha256(_pack_plain(value[:-1])).digest()


def _array_header(length: int) -> bytes:
    """msgpack's header of an array of `length` items (fixarray, array 16 or array 32)."""
    if length < 16:
        return bytes((0x90 | length,))
    if length < 1 << 16:
        return b"\xdc" + length.to_bytes(2, "big")
    return b"\xdd" + length.to_bytes(4, "big")


def _fixed_size(hint: Any) -> int | None:
    """The length of the encoding of every valid value of `hint`, if it is one number (a signature's is)."""
    constraints: tuple[Any, ...] = ()
    if typing.get_origin(hint) is Annotated:
        hint, *extra = typing.get_args(hint)
        constraints = tuple(extra)
    if hint is bool:
        return 1
    if hint is bytes:
        exact = next((c.n for c in constraints if isinstance(c, Len)), None)
        if exact is None:
            return None
        return exact + (2 if exact < 1 << 8 else 3 if exact < 1 << 16 else 5)  # bin 8/16/32 header
    if is_wire_type(hint):
        sizes = [_fixed_size(field) for field in _field_hints(hint)]
        if None in sizes:
            return None
        head = _array_header(len(sizes) + 2) + msgpack.packb(hint.__wire_tag__) + msgpack.packb(hint.__wire_version__)
        return len(head) + sum(sizes)  # type: ignore[arg-type]
    return None


_SIGNATURE_SIZES: dict[type, int | None] = {}
# Array headers of every length a wire class can have, built once: the digest cut runs for every order.
_SMALL_ARRAY_HEADERS = tuple(_array_header(length) for length in range(64))


def _unsigned_digest_from_bytes(cls: type, value: list[Any], data: bytes) -> bytes:
    """`_unsigned_digest_of(value)` cut from `data`, the canonical encoding of `value`: the array header
    for one item less, then every item's bytes but the last (the signature, whose encoding has a fixed
    length in every signed class). Hashing a slice of the received bytes costs half of re-encoding."""
    tail = _SIGNATURE_SIZES.get(cls, -1)
    if tail == -1:
        tail = _SIGNATURE_SIZES[cls] = _fixed_size(_field_hints(cls)[-1])
    length = len(value)
    if tail is None or length >= len(_SMALL_ARRAY_HEADERS):
        return _unsigned_digest_of(value)
    head = _SMALL_ARRAY_HEADERS[length - 1]
    return hashlib.sha256(head + data[len(_SMALL_ARRAY_HEADERS[length]) : len(data) - tail]).digest()


def _primitive_condition(hint: Any, var: str) -> str | None:
    """A Python expression true when `var` is a valid value of a primitive field, or None if not primitive."""
    constraints: tuple[Any, ...] = ()
    if typing.get_origin(hint) is Annotated:
        hint, *extra = typing.get_args(hint)
        constraints = tuple(extra)
    if hint is int:
        ranges = [c for c in constraints if isinstance(c, Range)]
        lo, hi = (ranges[0].lo, ranges[0].hi) if ranges else (0, UINT64_MAX)
        return f"type({var}) is int and {lo} <= {var} <= {hi}"
    if hint is bool:
        return f"type({var}) is bool"
    if hint in (bytes, str):
        exact = next((c.n for c in constraints if isinstance(c, Len)), None)
        most = next((c.n for c in constraints if isinstance(c, MaxLen)), MAX_MESSAGE_BYTES if hint is bytes else MAX_STR_LEN)
        size = f"len({var}) == {exact}" if exact is not None else f"len({var}) <= {most}"
        return f"type({var}) is {hint.__name__} and {size}"
    return None


def _header_condition(cls: type, tag: str, version: str) -> str:
    return (
        f"type({tag}) is int and {tag} == {cls.__wire_tag__} and type({version}) is int"
        f" and {version} == {cls.__wire_version__}"
    )


def _is_flat(hint: Any) -> bool:
    """A wire class of primitive fields only, with no invariant and no signature: decoded inline."""
    return (
        is_wire_type(hint)
        and not getattr(hint, "__wire_signed__", False)
        and not hasattr(hint, "__post_init__")
        and all(_primitive_condition(h, "x") is not None for h in _field_hints(hint))
    )


def _compile_fast(cls: type, hints: list[Any]) -> Callable[..., Any]:
    """Generate the happy path of decoding `cls` from its raw array as one function.

    Primitive fields are checked inline, and so are those of a nested class of primitives (a signature);
    other nested wire classes go straight to their own generated function, other composite fields through
    their converters; the object is built without the dataclass __init__
    (which calls object.__setattr__ once per field) unless the class has a __post_init__ invariant.
    Decoding signed orders is on the hot path of order handling, where one closure call per field cost
    more than the checks themselves. The function returns None when any check fails; the caller then runs
    `_checked` for the precise error. For a signed class it takes the payload digest when the caller
    already knows it.
    """
    n = len(hints)
    signed = getattr(cls, "__wire_signed__", False)
    lines = [
        "def fast(value, digest=None):" if signed else "def fast(value):",
        f"    if type(value) is not list or len(value) != {n + 2}: return None",
        f"    tag, version{''.join(f', f{i}' for i in range(n))} = value",
    ]
    # Every primitive check in one expression: one branch for the whole happy path.
    conditions = [_header_condition(cls, "tag", "version")]
    conditions += [c for i, hint in enumerate(hints) if (c := _primitive_condition(hint, f"f{i}")) is not None]
    # A nested class of primitives only (a signature) is unpacked and checked here too, and built below:
    # a call per nested value cost as much as checking all of its fields.
    flat = {i: hint for i, hint in enumerate(hints) if _is_flat(hint)}
    for i, nested in flat.items():
        inner = _field_hints(nested)
        names = "".join(f", f{i}_{j}" for j in range(len(inner)))
        lines += [
            f"    if type(f{i}) is not list or len(f{i}) != {len(inner) + 2}: return None",
            f"    f{i}_tag, f{i}_version{names} = f{i}",
        ]
        conditions.append(_header_condition(nested, f"f{i}_tag", f"f{i}_version"))
        conditions += [_primitive_condition(h, f"f{i}_{j}") for j, h in enumerate(inner)]  # type: ignore[misc]
    lines.append(f"    if not ({' and '.join(conditions)}): return None")
    helpers: dict[str, Any] = {}
    for i, hint in enumerate(hints):
        if _primitive_condition(hint, f"f{i}") is not None:
            continue
        if i in flat:
            helpers[f"nested_cls{i}"] = hint
            entries = ", ".join(f"{name!r}: f{i}_{j}" for j, name in enumerate(hint.__wire_fields__))
            lines += [f"    f{i} = new(nested_cls{i})", f"    setattr(f{i}, '__dict__', {{{entries}}})"]
        elif is_wire_type(hint) and not getattr(hint, "__wire_signed__", False):
            helpers[f"nested{i}"] = _fast_decoder(hint)
            lines += [f"    f{i} = nested{i}(f{i})", f"    if f{i} is None: return None"]
        else:
            helpers[f"convert{i}"] = _build(hint, ())
            lines.append(f"    f{i} = convert{i}(f{i})")
    if signed:
        lines.append("    if digest is None: digest = unsigned_digest_of(value)")
    if hasattr(cls, "__post_init__"):
        lines += [
            "    try:",
            f"        obj = cls({', '.join(f'f{i}' for i in range(n))})",
            "    except (ValueError, TypeError):",
            "        return None",
        ]
        if signed:
            lines.append("    setattr(obj, 'payload_digest', digest)")
    else:
        entries = [f"{name!r}: f{i}" for i, name in enumerate(cls.__wire_fields__)]
        if signed:
            entries.append("'payload_digest': digest")
        lines += ["    obj = new(cls)", f"    setattr(obj, '__dict__', {{{', '.join(entries)}}})"]
    lines.append("    return obj")
    namespace: dict[str, Any] = {
        **helpers,
        "cls": cls,
        "new": object.__new__,
        "setattr": object.__setattr__,
        "unsigned_digest_of": _unsigned_digest_of,
    }
    exec("\n".join(lines), namespace)  # noqa: S102 - code built only from our own type hints
    return namespace["fast"]  # type: ignore[no-any-return]


def _failing_field(cls: type, fields: list[Converter], value: list[Any]) -> str:
    """Name the first field that does not convert, for an error message a user can act on."""
    for name, conv, item in zip(cls.__wire_fields__, fields, value[2:]):
        try:
            conv(item)
        except DecodeError:
            return name
    return "?"

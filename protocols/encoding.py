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
import reprlib
import types
import typing
from collections.abc import Callable, Sized
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, Protocol, TypeVar, cast, overload

import msgpack
import msgspec

# py-libp2p silently drops gossip payloads over 1 MiB (reference/py-libp2p.md), so no message we accept
# may be larger; bulk data travels over streams in chunks below this bound.
MAX_MESSAGE_BYTES = 1 << 20
# The largest container a wire type may hold unless its field says less: a block's transaction list
# is the biggest legitimate one.
MAX_CONTAINER_LEN = 10_000
# Strings are names, descriptions and params; a longer one is abuse. The parser bounds a string's UTF-8
# bytes; a field bounds its characters, at most a quarter of that, so no string within its field's bound
# can trip the parser's (the fast and the slow path must agree on every input).
MAX_STR_LEN = 64 * 1024
MAX_STR_CHARS = MAX_STR_LEN // 4
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


class _WireClass(Protocol):
    """What `@wire` adds to a class."""

    __wire_tag__: ClassVar[int]
    __wire_version__: ClassVar[int]
    __wire_fields__: ClassVar[tuple[str, ...]]


def _wired(cls: type) -> type[_WireClass]:
    """`cls`, a class registered by `@wire`, typed as such (the decorator cannot say so to a type checker)."""
    return cast("type[_WireClass]", cls)


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
    packed: bytes = msgpack.packb(obj, default=_to_list, use_bin_type=True)
    return packed


def encode_unsigned(obj: Any) -> bytes:
    """The encoding of a wire value without its last field, which for signed types is the signature."""
    packed: bytes = msgpack.packb(_to_list(obj)[:-1], default=_to_list, use_bin_type=True)
    return packed


def unsigned_digest(obj: Any) -> bytes:
    """SHA-256 of `encode_unsigned(obj)`."""
    return hashlib.sha256(encode_unsigned(obj)).digest()


def digest(obj: Any) -> bytes:
    """SHA-256 of the canonical encoding."""
    return hashlib.sha256(encode(obj)).digest()


# --- decoding -----------------------------------------------------------------------------------

# The slow path re-encodes decoded plain values (lists, ints, bytes, str: no `default` hook) with one
# long-lived Packer; `msgpack.packb` builds one per call. Safe to share: without a Python hook, a pack runs
# start to end under the GIL.
_pack_plain = msgpack.Packer(use_bin_type=True).pack


@overload
def decode(expected: type[T], data: bytes, max_size: int = ...) -> T: ...
@overload
def decode(expected: Any, data: bytes, max_size: int = ...) -> Any: ...  # a union of wire types
def decode(expected: Any, data: bytes, max_size: int = MAX_MESSAGE_BYTES) -> Any:
    """Decode `data` as `expected` (a wire type, or a union of wire types), strictly.

    Raises DecodeError for anything that is not the canonical encoding of a valid value. Valid input takes
    the fast path: msgspec parses and checks every field against the class's schema in C, and re-encoding
    the result must give `data` back. Anything it refuses goes through the slow path, which applies the
    same rules one by one to say what is wrong.
    """
    if type(data) is not bytes:
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    if len(data) > max_size:
        raise DecodeError(f"message of {len(data)} bytes exceeds the limit of {max_size}")
    by_tag = _FAST_BY_TAG.get(expected)
    if by_tag is None:
        by_tag = _FAST_BY_TAG[expected] = {tag: _fast_decoder(cls) for tag, cls in _members(expected).items()}
    fast = by_tag.get(_peek_tag(data))
    if fast is not None:
        try:
            return fast(data)
        except Exception:
            pass  # the reason, the slow path is the authority: it accepts or names the problem
    return _decode_slowly(expected, data, max_size)


def _peek_tag(data: bytes) -> int | None:
    """The tag of a canonical wire value: the first item of its array (fixarray, array 16 or array 32
    header), if it is an int below 256. Whatever the bytes hold, decoding checks the tag again."""
    header = data[0] if data else 0
    start = 1 if 0x90 <= header <= 0x9F else 3 if header == 0xDC else 5 if header == 0xDD else 0
    if not start or len(data) <= start + 1:
        return None
    tag = data[start]
    if tag < 0x80:
        return tag
    return data[start + 1] if tag == 0xCC else None


def _decode_slowly(expected: Any, data: bytes, max_size: int) -> Any:
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
    return converter_for(expected)(raw)


# Per expected type (a wire class or a union), the fast decoder of each class it admits, by tag.
_FAST_BY_TAG: dict[Any, dict[int | None, Callable[[bytes], Any] | None]] = {}


def _members(expected: Any) -> dict[int, type]:
    """The wire classes `expected` (a wire class or a union of them) admits, by tag."""
    union = typing.get_origin(expected) in (typing.Union, types.UnionType)
    candidates = typing.get_args(expected) if union else (expected,)
    return {_wired(cls).__wire_tag__: cls for cls in candidates if is_wire_type(cls)}


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
        return _sized_converter(str, constraints, MAX_STR_CHARS)
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


def _sized_converter(kind: type[Sized], constraints: tuple[Any, ...], default_max: int) -> Converter:
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
                raise DecodeError(f"tag {_shown(value[0])} is not one of {sorted(by_tag)}")
            return conv(value)

    else:
        raise TypeError(f"unions must be of wire types (and None), got {args!r}")
    if not allows_none:
        return inner

    def optional(value: Any) -> Any:
        return None if value is None else inner(value)

    return optional


def _wire_converter(cls: type) -> Converter:
    """The slow path's converter for one wire class: every rule checked in turn, for a precise error."""
    cached = _CONVERTERS.get(cls)
    if cached is not None:
        return cached

    def convert(value: Any) -> Any:
        return _checked(cls, _field_converters(cls), value)

    _CONVERTERS[cls] = convert
    return convert


_FIELD_CONVERTERS: dict[type, list[Converter]] = {}


def _field_hints(cls: type) -> list[Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return [hints[name] for name in _wired(cls).__wire_fields__]


def _field_converters(cls: type) -> list[Converter]:
    fields = _FIELD_CONVERTERS.get(cls)
    if fields is None:
        fields = _FIELD_CONVERTERS[cls] = [_build(hint, ()) for hint in _field_hints(cls)]
    return fields


def _checked(cls: type, fields: list[Converter], value: Any) -> Any:
    """The slow path: every check one by one, raising DecodeError with the first problem found."""
    if type(value) is not list:
        raise DecodeError(f"{cls.__name__}: expected array, got {type(value).__name__}")
    if len(value) != len(fields) + 2:
        raise DecodeError(f"{cls.__name__}: expected {len(fields)} fields, got {len(value) - 2}")
    if value[0] != _wired(cls).__wire_tag__ or type(value[0]) is not int:
        raise DecodeError(f"{cls.__name__}: wrong tag {_shown(value[0])}")
    if value[1] != _wired(cls).__wire_version__ or type(value[1]) is not int:
        raise DecodeError(f"{cls.__name__}: unsupported version {_shown(value[1])}")
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


# --- the fast path: msgspec decodes and checks in C ------------------------------------------------

_msgspec_encode = msgspec.msgpack.Encoder().encode
_NIL = msgspec.Raw(b"\xc0")
INT64_MAX = (1 << 63) - 1


class _NotExpressible(Exception):
    """A type hint msgspec cannot check exactly: its class is always decoded by the slow path."""


def _fields_schema(cls: type) -> tuple[Any, list[Converter | None]]:
    """The msgspec type of `cls`'s array, and per field the conversion of what msgspec returns (None: as is)."""
    parts = [_field_schema(hint) for hint in _field_hints(cls)]
    items = (Literal[_wired(cls).__wire_tag__], Literal[_wired(cls).__wire_version__], *(kind for kind, _ in parts))
    return tuple[items], [convert for _, convert in parts]  # type: ignore[valid-type]


def _field_schema(hint: Any) -> tuple[Any, Converter | None]:
    """msgspec type and conversion for one field, with exactly the rules of the slow path's `_build`."""
    constraints: tuple[Any, ...] = ()
    if typing.get_origin(hint) is Annotated:
        hint, *extra = typing.get_args(hint)
        constraints = tuple(extra)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(members) == 1 and not is_wire_type(members[0]):
            inner, convert = _field_schema(Annotated[(members[0], *constraints)] if constraints else members[0])
            if convert is None:
                return inner | None, None
            present = convert  # a name the lambda can close over, narrowed to a Converter
            return inner | None, lambda value: None if value is None else present(value)
        # Unions of wire types (and optional wire values): msgspec hands over the field's bytes, and the
        # field is decoded by `decode`, tag dispatch, digest cut and canonical check included.
        allows_none = len(members) != len(typing.get_args(hint))
        expected = members[0] if len(members) == 1 else typing.Union[tuple(members)]  # noqa: UP007 - built at run time
        return msgspec.Raw, lambda raw: None if allows_none and raw == _NIL else decode(expected, bytes(raw))
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            item, convert = _field_schema(args[0])
            most = next((c.n for c in constraints if isinstance(c, MaxLen)), MAX_CONTAINER_LEN)
            if most > MAX_CONTAINER_LEN:  # the slow path's parser refuses longer arrays
                raise TypeError(f"a tuple field may hold at most {MAX_CONTAINER_LEN} items, not {most}")
            sequence = Annotated[tuple[item, ...], msgspec.Meta(max_length=most)]  # type: ignore[valid-type]
            return sequence, (None if convert is None else lambda value: tuple([convert(v) for v in value]))
        parts = [_field_schema(a) for a in args]
        converts = [c or _identity for _, c in parts]
        fixed = tuple[tuple(kind for kind, _ in parts)]  # type: ignore[misc, valid-type]
        if all(c is None for _, c in parts):
            return fixed, None
        return fixed, lambda value: tuple([c(v) for c, v in zip(converts, value)])
    if hint is int:
        ranges = [c for c in constraints if isinstance(c, Range)]
        lo, hi = (int(ranges[0].lo), int(ranges[0].hi)) if ranges else (0, UINT64_MAX)  # bounds may be IntEnums
        if hi == UINT64_MAX:  # msgpack has no larger int, and msgspec no bound beyond int64
            return Annotated[int, msgspec.Meta(ge=lo)], None
        if hi > INT64_MAX or lo < -INT64_MAX - 1:
            raise _NotExpressible(hint)
        return Annotated[int, msgspec.Meta(ge=lo, le=hi)], None
    if hint is bool:
        return bool, None
    if hint in (bytes, str):
        exact = next((c.n for c in constraints if isinstance(c, Len)), None)
        most = next((c.n for c in constraints if isinstance(c, MaxLen)), MAX_MESSAGE_BYTES if hint is bytes else MAX_STR_CHARS)
        if hint is str and most > MAX_STR_CHARS:
            raise TypeError(f"a str field may hold at most {MAX_STR_CHARS} characters, not {most}")
        bounds = msgspec.Meta(min_length=exact, max_length=exact) if exact is not None else msgspec.Meta(max_length=most)
        return Annotated[hint, bounds], None
    if is_wire_type(hint):
        if getattr(hint, "__wire_signed__", False):  # its digest is cut from its own bytes
            return msgspec.Raw, lambda raw: decode(hint, bytes(raw))
        kind, _ = _fields_schema(hint)
        return kind, _builder(hint)
    raise _NotExpressible(hint)


def _identity(value: Any) -> Any:
    return value


_BUILDERS: dict[type, Converter] = {}


def _builder(cls: type) -> Converter:
    """Build a `cls` value from msgspec's checked tuple (for a value nested in another)."""
    built = _BUILDERS.get(cls)
    if built is None:
        built = _BUILDERS[cls] = _generate(cls, from_bytes=False)
    return built


_FAST_DECODERS: dict[type, Callable[[bytes], Any] | None] = {}


def _fast_decoder(cls: type) -> Callable[[bytes], Any] | None:
    """Decode the bytes of one `cls` value, or raise DecodeError / msgspec.MsgspecError; None if the class's
    schema is beyond msgspec. Built once per class, on first use."""
    if cls not in _FAST_DECODERS:
        try:
            _FAST_DECODERS[cls] = _generate(cls, from_bytes=True)
        except _NotExpressible:
            _FAST_DECODERS[cls] = None
    return _FAST_DECODERS[cls]


def _is_flat(hint: Any) -> bool:
    """A wire class of plain fields, with no invariant and no signature: built inline where it is nested."""
    return (
        is_wire_type(hint)
        and not getattr(hint, "__wire_signed__", False)
        and not hasattr(hint, "__post_init__")
        and all(convert is None for convert in _fields_schema(hint)[1])
    )


def _generate(cls: type, from_bytes: bool) -> Callable[[Any], Any]:
    """One function that builds a `cls` value: from its bytes (`from_bytes`: parse with msgspec, check the
    encoding is canonical, cut the payload digest from the bytes) or from msgspec's tuple.

    Generated, because it runs for every order and vote: a dataclass __init__ pays an object.__setattr__
    per field where one dict display costs a fraction, and a call per step (or per nested signature) cost
    as much as the work itself.
    """
    schema, converts = _fields_schema(cls)
    hints = _field_hints(cls)
    n = len(converts)
    signed = getattr(cls, "__wire_signed__", False)
    namespace: dict[str, Any] = {
        "cls": cls,
        "new": object.__new__,
        "setattr": object.__setattr__,
        "encode": _msgspec_encode,
        "sha256": hashlib.sha256,
        "DecodeError": DecodeError,
    }
    if from_bytes:
        namespace["unpack"] = msgspec.msgpack.Decoder(schema).decode
        lines = [
            "def decode_fast(data):",
            "    value = unpack(data)",
            "    if encode(value) != data: raise DecodeError('non-canonical encoding')",
        ]
    else:
        lines = ["def build(value):"]
    if signed:
        # Signed values are only built from their own bytes (nested ones arrive as msgspec.Raw): the unsigned
        # encoding is the array header for one item less, then every item's bytes but the last (the
        # signature), and hashing that slice of the received bytes costs half of re-encoding.
        tail = _fixed_size(hints[-1])
        if not from_bytes or tail is None:  # a signature of varying length: left to the slow path
            raise _NotExpressible(cls)
        namespace["head"] = _array_header(n + 1)
        lines.append(f"    digest = sha256(head + data[{len(_array_header(n + 2))} : len(data) - {tail}]).digest()")
    lines.append(f"    _tag, _version{''.join(f', f{i}' for i in range(n))} = value")
    for i, (hint, convert) in enumerate(zip(hints, converts)):
        if convert is None:
            continue
        if _is_flat(hint):  # a signature: built here, a call saved on every signed message
            names = hint.__wire_fields__
            namespace[f"nested{i}"] = hint
            lines.append(f"    _tag{i}, _version{i}{''.join(f', f{i}_{j}' for j in range(len(names)))} = f{i}")
            lines += _construction(f"f{i}", hint, f"nested{i}", [(name, f"f{i}_{j}") for j, name in enumerate(names)])
        else:
            namespace[f"convert{i}"] = convert
            lines.append(f"    f{i} = convert{i}(f{i})")
    if hasattr(cls, "__post_init__"):  # the class checks an invariant: its __init__ runs, and may reject
        lines += [
            "    try:",
            f"        obj = cls({', '.join(f'f{i}' for i in range(n))})",
            "    except (ValueError, TypeError) as exc:",
            f"        raise DecodeError(f'{cls.__name__}: {{exc}}') from None",
        ]
        if signed:
            lines.append("    setattr(obj, 'payload_digest', digest)")
    else:
        entries = [(name, f"f{i}") for i, name in enumerate(_wired(cls).__wire_fields__)]
        lines += _construction("obj", cls, "cls", entries + ([("payload_digest", "digest")] if signed else []))
    lines.append("    return obj")
    exec("\n".join(lines), namespace)
    return namespace["decode_fast" if from_bytes else "build"]  # type: ignore[no-any-return]


def _construction(var: str, cls: type, name_of_cls: str, entries: list[tuple[str, str]]) -> list[str]:
    """Lines that make `var` a `cls` holding `entries` (attribute, expression) without running __init__: one
    dict display for an instance dict, one store per slot for a slotted class."""
    lines = [f"    {var} = new({name_of_cls})"]
    if hasattr(cls, "__slots__"):
        return lines + [f"    setattr({var}, {attribute!r}, {expression})" for attribute, expression in entries]
    return lines + [f"    setattr({var}, '__dict__', {{{', '.join(f'{a!r}: {e}' for a, e in entries)}}})"]


def _shown(value: Any) -> str:
    """A received value in an error message, bounded: `repr` of a deeply nested list from the network would
    exhaust the recursion limit, and a long one would flood the logs."""
    shown: str = reprlib.repr(value)
    return shown


def _failing_field(cls: type, fields: list[Converter], value: list[Any]) -> str:
    """Name the first field that does not convert, for an error message a user can act on."""
    for name, conv, item in zip(_wired(cls).__wire_fields__, fields, value[2:]):
        try:
            conv(item)
        except DecodeError:
            return name
    return "?"

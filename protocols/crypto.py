"""Keys, addresses and domain-separated Ed25519 signatures (DESIGN.md section 3).

A signature covers `b"pocnet/v1/" + chain_id + b"/" + kind + b"/" + sha256(encoding without signature)`.
The chain id comes from the genesis and the kind names the structure, so a signature made for one
network, or for one kind of message, is worthless anywhere else.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, ClassVar, Generic, Protocol, TypeVar, overload

import nacl.bindings
import nacl.exceptions
import nacl.signing

from protocols.encoding import Len, unsigned_digest, wire

ADDRESS_LEN = 20
Address = Annotated[bytes, Len(ADDRESS_LEN)]
PublicKey = Annotated[bytes, Len(32)]
SignatureBytes = Annotated[bytes, Len(64)]
ZERO_ADDRESS = bytes(ADDRESS_LEN)
SIGNATURE_PREFIX = b"pocnet/v1/"
HEX_DIGITS = re.compile(r"[0-9a-fA-F]*")


@functools.lru_cache(maxsize=65_536)
def address_of(public_key: bytes) -> bytes:
    """Address = the first 20 bytes of SHA-256 of the Ed25519 public key.

    Cached: every signed object asks for its signer's address, and a network has far fewer keys than
    messages."""
    return hashlib.sha256(public_key).digest()[:ADDRESS_LEN]


def hex_address(address: bytes) -> str:
    return "0x" + address.hex()


def parse_address(text: str) -> bytes:
    """Parse `0x` + 40 hex digits, with an error that says what was wrong."""
    body = text[2:] if text.startswith(("0x", "0X")) else text
    if not HEX_DIGITS.fullmatch(body) or len(body) % 2:
        raise ValueError(f"address {text!r} is not hexadecimal (0x and 40 hex digits)")
    raw = bytes.fromhex(body)
    if len(raw) != ADDRESS_LEN:
        raise ValueError(f"address {text!r} has {len(raw)} bytes, expected {ADDRESS_LEN}")
    return raw


def signing_prefix(chain_id: str, kind: str) -> bytes:
    return SIGNATURE_PREFIX + chain_id.encode() + b"/" + kind.encode() + b"/"


def signing_message(chain_id: str, kind: str, payload_digest: bytes) -> bytes:
    return signing_prefix(chain_id, kind) + payload_digest


@wire(tag=1)
@dataclass(frozen=True, slots=True)
class Signature:
    """An Ed25519 signature together with the key that made it (the signer's address derives from the key).

    Slotted: every signed message holds one, and an instance dict would double its memory."""

    public_key: PublicKey
    signature: SignatureBytes

    @property
    def signer(self) -> bytes:
        return address_of(self.public_key)


EMPTY_SIGNATURE = Signature(bytes(32), bytes(64))


class Keypair:
    """A node's Ed25519 key: libp2p identity, account and signer at once."""

    def __init__(self, seed: bytes) -> None:
        self._key = nacl.signing.SigningKey(seed)
        self.seed = seed
        self.public_key = bytes(self._key.verify_key)
        self.address = address_of(self.public_key)

    @classmethod
    def generate(cls) -> Keypair:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @classmethod
    def from_name(cls, name: str) -> Keypair:
        """A deterministic key for tests and simulations; never for real funds."""
        return cls(hashlib.sha256(b"pocnet-test-key/" + name.encode()).digest())

    def sign_raw(self, message: bytes) -> Signature:
        return Signature(self.public_key, self._key.sign(message).signature)

    def sign_digest(self, chain_id: str, kind: str, payload_digest: bytes) -> Signature:
        return self.sign_raw(signing_message(chain_id, kind, payload_digest))


def verify_raw(signature: Signature, message: bytes) -> bool:
    try:
        nacl.bindings.crypto_sign_open(signature.signature + message, signature.public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
        return False
    return True


ValueT = TypeVar("ValueT")


class memoised(Generic[ValueT]):
    """A lock-free cached_property: the first read stores the value in the instance dict, later reads find it
    there without calling anything. (functools.cached_property takes a lock on every first read in 3.11.)
    Only for values derived from immutable fields."""

    def __init__(self, compute: Callable[[Any], ValueT]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> memoised[ValueT]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> ValueT: ...
    def __get__(self, obj: object, owner: type | None = None) -> memoised[ValueT] | ValueT:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.compute(obj)
        return value


class SignedMixin:
    """For wire types whose last field is `signature: Signature` over the rest of the encoding.

    Subclasses set `SIGNATURE_KIND`, the domain-separation word in the signed message.
    """

    SIGNATURE_KIND: ClassVar[str] = ""
    __wire_signed__ = True
    signature: Signature

    # Both are memoised in the instance dict (the decoder pre-fills payload_digest): they are read for
    # every order on the matching hot path, where a property call per read showed up in profiles.
    @memoised
    def payload_digest(self) -> bytes:
        """SHA-256 of the encoding without the signature: what the signature covers, and the object's id."""
        return unsigned_digest(self)

    @memoised
    def signer(self) -> bytes:
        return address_of(self.signature.public_key)


class Signable(Protocol):
    """A frozen dataclass with a signature field and its domain-separation word (a `SignedMixin`)."""

    SIGNATURE_KIND: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, Any]]


SignedT = TypeVar("SignedT", bound=Signable)


def sign(keypair: Keypair, chain_id: str, unsigned: SignedT) -> SignedT:
    """Return a copy of `unsigned` (whose signature field is a placeholder) signed by `keypair`."""
    sig = keypair.sign_digest(chain_id, unsigned.SIGNATURE_KIND, unsigned_digest(unsigned))
    return replace(unsigned, signature=sig)


# The instance-dict key under which a signed object remembers the chain its signature verified for.
_VERIFIED_ON = "_signature_verified_on"


class SignatureVerifier:
    """Verifies signed wire objects for one chain, remembering results so each signature is checked once.

    Orders travel many times (gossip, re-announcements, inside MatchOrders); Ed25519 verification is the
    dominant cost of handling them, so the outcome is cached by (kind, payload digest, key, signature). The
    cache is bounded: two generations of plain dicts, the older dropped whole when the younger is full, so
    an insertion is one dict store (an OrderedDict's costs twice that, on the path of every new order).
    Eviction only costs a re-verification.
    """

    def __init__(self, chain_id: str, capacity: int = 100_000) -> None:
        self.chain_id = chain_id
        self._generation_size = max(1, capacity // 2)
        self._young: dict[tuple[str, bytes, bytes, bytes], bool] = {}
        self._old: dict[tuple[str, bytes, bytes, bytes], bool] = {}
        self._prefixes: dict[str, bytes] = {}
        self.verifications = 0

    def verify(self, obj: SignedMixin) -> bool:
        # The same object is checked again and again (the book on arrival, then matching for every candidate
        # combination, then the ledger): a valid result is also kept in the immutable object itself, which
        # spares building the cache key. It is tagged with the chain id, what the result depends on.
        if obj.__dict__.get(_VERIFIED_ON) == self.chain_id:
            return True
        sig = obj.signature
        kind = obj.SIGNATURE_KIND
        key = (kind, obj.payload_digest, sig.public_key, sig.signature)
        ok = self._young.get(key)
        if ok is None:
            ok = self._old.get(key)
            if ok is None:
                self.verifications += 1
                prefix = self._prefixes.get(kind)
                if prefix is None:
                    prefix = self._prefixes[kind] = signing_prefix(self.chain_id, kind)
                ok = verify_raw(sig, prefix + key[1])
            self._young[key] = ok
            if len(self._young) >= self._generation_size:
                self._old, self._young = self._young, {}
        if ok:
            obj.__dict__[_VERIFIED_ON] = self.chain_id
        return ok

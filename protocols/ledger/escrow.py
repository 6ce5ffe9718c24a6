"""Moving nRLC between free balance and frozen escrow (PoCo's IexecEscrow: lock, unlock, seize, reward).

`seize` takes frozen funds out of an account into the transaction's `Pot`; `reward` pays out of it. Every
handler that seizes must pay the whole pot back out before it returns, which `Pot.require_empty` checks:
that is how the total supply stays constant.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from protocols.ledger.state import StateView

# PoCo's kitty: the pot that receives the stakes of pools whose tasks failed and pays a bonus to pools that
# complete tasks. Its funds are held as the frozen balance of this address, which no key controls.
KITTY_ADDRESS = hashlib.sha256(b"pocnet/kitty").digest()[:20]


class Reject(Exception):
    """A transaction rule failed; the transaction changes nothing and reports `code`."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class Pot:
    """Seized funds in flight inside one transaction."""

    def __init__(self) -> None:
        self.amount = 0

    def require_empty(self) -> None:
        if self.amount != 0:
            raise AssertionError(f"{self.amount} nRLC seized but not paid out: supply would change")


def lock(view: StateView, address: bytes, amount: int, code: str) -> None:
    """Move `amount` from free balance to frozen, or reject with `code` if the balance is too low."""
    account = view.account(address)
    if account.balance < amount:
        raise Reject(code, f"0x{address.hex()} has {account.balance} nRLC free, needs {amount}")
    view.put_account(address, replace(account, balance=account.balance - amount, frozen=account.frozen + amount))


def unlock(view: StateView, address: bytes, amount: int) -> None:
    account = view.account(address)
    _require_frozen(account.frozen, amount, address)
    view.put_account(address, replace(account, balance=account.balance + amount, frozen=account.frozen - amount))


def seize(view: StateView, pot: Pot, address: bytes, amount: int) -> None:
    account = view.account(address)
    _require_frozen(account.frozen, amount, address)
    view.put_account(address, replace(account, frozen=account.frozen - amount))
    pot.amount += amount


def reward(view: StateView, pot: Pot, address: bytes, amount: int) -> None:
    if amount > pot.amount:
        raise AssertionError(f"paying {amount} nRLC out of a pot of {pot.amount}")
    pot.amount -= amount
    account = view.account(address)
    view.put_account(address, replace(account, balance=account.balance + amount))


def lock_into_kitty(view: StateView, pot: Pot, amount: int) -> None:
    pot.amount -= amount
    kitty = view.account(KITTY_ADDRESS)
    view.put_account(KITTY_ADDRESS, replace(kitty, frozen=kitty.frozen + amount))


def _require_frozen(frozen: int, amount: int, address: bytes) -> None:
    # Frozen funds are only released by the code that locked them; a shortfall is a ledger bug, not bad input.
    if frozen < amount:
        raise AssertionError(f"0x{address.hex()} has {frozen} nRLC frozen, cannot release {amount}")

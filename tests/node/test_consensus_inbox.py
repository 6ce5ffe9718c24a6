"""The consensus inbox: transaction traffic (wake-ups) and a vote flood never cost a timer or a block."""

from __future__ import annotations

import trio

from node.consensus_inbox import WAKE, ConsensusInbox


async def drain(inbox: ConsensusInbox) -> list[object]:
    out = []
    while len(inbox):
        out.append(await inbox.get())
    return out


async def test_a_burst_of_wakeups_is_one_wakeup_after_the_votes() -> None:
    inbox = ConsensusInbox(max_messages=10)
    inbox.put_message("vote 1")
    for _ in range(3_000):
        inbox.wake()
    inbox.put_message("vote 2")
    inbox.put_reliable("timeout")
    assert await drain(inbox) == ["vote 1", "vote 2", "timeout", WAKE]


async def test_messages_are_bounded_but_timers_and_blocks_are_never_dropped() -> None:
    inbox = ConsensusInbox(max_messages=3)
    accepted = [inbox.put_message(f"vote {i}") for i in range(5)]
    for i in range(50):
        inbox.put_reliable(f"timeout {i}")
    assert accepted == [True, True, True, False, False]
    assert inbox.dropped_messages == 2
    items = await drain(inbox)
    assert items == ["vote 0", "vote 1", "vote 2", *(f"timeout {i}" for i in range(50))]
    # Room again once the machine took them.
    assert inbox.put_message("vote 5") and await inbox.get() == "vote 5"


async def test_get_waits_for_input() -> None:
    inbox = ConsensusInbox(max_messages=1)
    got: list[object] = []

    async def consumer() -> None:
        got.append(await inbox.get())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        await trio.sleep(0.01)
        assert got == []
        inbox.wake()
    assert got == [WAKE]

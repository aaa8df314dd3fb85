"""The pass bound: at most ``limit`` passes at work, in arrival order, none held up by a canary."""

from __future__ import annotations

import asyncio

import pytest

from rerank_operator.reconcile.slots import PassSlots, released


async def test_at_most_limit_passes_work_at_once_in_arrival_order() -> None:
    slots = PassSlots(2)
    started: list[int] = []
    peak = 0
    gate = asyncio.Event()

    async def one_pass(n: int) -> None:
        nonlocal peak
        async with slots.held():
            started.append(n)
            peak = max(peak, slots.in_use)
            await gate.wait()

    tasks = [asyncio.create_task(one_pass(n)) for n in range(6)]
    await asyncio.sleep(0.01)
    assert started == [0, 1] and slots.in_use == 2  # the other four wait
    gate.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert started == list(range(6)) and peak == 2 and slots.in_use == 0


async def test_a_pass_gives_its_slot_back_while_its_canary_is_in_flight() -> None:
    slots = PassSlots(1)
    canary_answer = asyncio.Event()
    order: list[str] = []

    async def probing() -> None:
        async with slots.held():
            order.append("probing: before the canary")
            async with released():
                await canary_answer.wait()  # a slow reranker
            order.append("probing: after the canary")
            assert slots.in_use == 1

    async def other() -> None:
        async with slots.held():
            order.append("other pipeline's pass")

    first = asyncio.create_task(probing())
    await asyncio.sleep(0.01)
    await asyncio.wait_for(other(), 5)  # not held up by the canary
    canary_answer.set()
    await asyncio.wait_for(first, 5)
    assert order == ["probing: before the canary", "other pipeline's pass", "probing: after the canary"]
    assert slots.in_use == 0


async def test_cancelled_while_waiting_to_resume_leaves_the_count_right() -> None:
    slots = PassSlots(1)
    in_canary, canary_done, free = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def probing() -> None:
        async with slots.held(), released():
            in_canary.set()
            await canary_done.wait()

    async def blocker() -> None:
        async with slots.held():
            await free.wait()

    task = asyncio.create_task(probing())
    await in_canary.wait()
    hold = asyncio.create_task(blocker())  # takes the slot the canary gave back
    await asyncio.sleep(0.01)
    assert slots.in_use == 1
    canary_done.set()
    await asyncio.sleep(0.01)  # the probing pass now waits for a slot again
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    free.set()
    await asyncio.wait_for(hold, 5)
    assert slots.in_use == 0
    async with slots.held():  # exactly one slot, as at the start: nothing leaked, nothing added
        assert slots.in_use == 1 and slots._semaphore.locked()


async def test_released_outside_a_pass_does_nothing() -> None:
    async with released():
        pass
    with pytest.raises(ValueError, match="at least 1"):
        PassSlots(0)

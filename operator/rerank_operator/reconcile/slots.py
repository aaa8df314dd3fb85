"""How many passes do their work at once: a bound, like controller-runtime's MaxConcurrentReconciles.

A burst (a thousand pipelines applied together, or all their pods turning ready) makes a thousand
passes due at once. Unbounded, they would all hold what a pass holds (the
parsed spec, rendered manifests, decoded children, the apiserver's answers) while they queue for the
same API connections and the same core: the operator's memory peaks with the burst, and every pass
finishes late instead of most finishing early. With a bound, a pass waits for a slot (first come, first
served) before it reads or builds anything.

A pass gives its slot back while its canary is in flight (:func:`released`): that is traffic to the
reranker, not work on the operator's side, and a slow or hanging reranker must not hold up other
pipelines' passes. It takes a slot again, in turn, before it goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from rerank_operator.kube.client import CONCURRENT_REQUESTS

# the default: as many passes as the API facade has connections; more would only wait for one,
# holding their memory
DEFAULT_LIMIT = CONCURRENT_REQUESTS


@dataclass
class _Held:
    slots: PassSlots
    held: bool = True


# the current pass's slot (a pass runs in one task; the canary code needs no parameter for it)
_CURRENT: ContextVar[_Held | None] = ContextVar("rerank_operator_pass_slot", default=None)


class PassSlots:
    """At most ``limit`` passes past :meth:`held` at once, the others waiting in arrival order."""

    def __init__(self, limit: int = DEFAULT_LIMIT):
        if limit < 1:
            raise ValueError(f"a pass limit must be at least 1, not {limit}")
        self.limit = limit
        self._semaphore = asyncio.Semaphore(limit)
        self._in_use = 0

    @property
    def in_use(self) -> int:
        return self._in_use

    async def _acquire(self) -> None:
        await self._semaphore.acquire()
        self._in_use += 1

    def _release(self) -> None:
        self._in_use -= 1
        self._semaphore.release()

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Hold a slot for one pass (waiting for one first)."""
        await self._acquire()
        token = _Held(self)
        reset = _CURRENT.set(token)
        try:
            yield
        finally:
            _CURRENT.reset(reset)
            if token.held:  # not held if cancelled while taking it back after a canary
                self._release()


@asynccontextmanager
async def released() -> AsyncIterator[None]:
    """Give the current pass's slot back for the duration (a no-op outside a pass), then wait for one."""
    token = _CURRENT.get()
    if token is None or not token.held:
        yield
        return
    token.slots._release()
    token.held = False
    try:
        yield
    finally:
        await token.slots._acquire()
        token.held = True

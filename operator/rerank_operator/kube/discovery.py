"""Which optional APIs (add-on CRDs such as KEDA's or prometheus-operator's) the cluster serves.

Discovery answers change only when someone installs or removes an add-on, so one answer is reused for
``ttl_seconds`` instead of asking on every pass of every pipeline.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from rerank_operator.kube.client import KubeApi

DEFAULT_TTL_SECONDS = 300.0


class ApiDiscovery:
    def __init__(
        self,
        kube: KubeApi,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._ttl = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, set[str] | None]] = {}

    async def serves(self, group_version: str, plural: str) -> bool:
        """Whether ``plural`` exists in ``group_version`` (cached; errors other than absence propagate)."""
        now = self._clock()
        cached = self._cache.get(group_version)
        if cached is None or now - cached[0] >= self._ttl:
            cached = (now, await self._kube.served_resources(group_version))
            self._cache[group_version] = cached
        resources = cached[1]
        return resources is not None and plural in resources

"""Round-trip latency of the canary probe against the loopback stand-in (bounded: --iterations)."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import httpx

from rerank_operator.probe import ProbeTarget, probe_reranker
from rerank_operator.standin.server import StandinServer


async def run(iterations: int) -> list[float]:
    with StandinServer() as server:
        target = ProbeTarget(endpoint=server.url, served_model=server.served_model)
        async with httpx.AsyncClient(trust_env=False) as client:
            samples = []
            for _ in range(iterations):
                t0 = time.perf_counter()
                verdict = await probe_reranker(target, client=client)
                samples.append((time.perf_counter() - t0) * 1000)
                if not verdict.ok:
                    raise SystemExit(f"probe failed: {verdict.reason}: {verdict.message}")
            return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()
    samples = sorted(asyncio.run(run(min(args.iterations, 10_000))))
    p95 = samples[int(0.95 * (len(samples) - 1))]
    print(
        f"probe round trip over {len(samples)} runs: p50 {statistics.median(samples):.2f} ms, "
        f"p95 {p95:.2f} ms, max {samples[-1]:.2f} ms"
    )


if __name__ == "__main__":
    main()

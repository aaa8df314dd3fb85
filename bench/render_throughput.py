"""CPU cost of rendering every child of a pipeline (what each resync recomputes)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from rerank_operator.manifests import render_all
from rerank_operator.models import RerankPipeline

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    for path in sorted(EXAMPLES.glob("*.yaml")):
        pipeline = RerankPipeline.from_body(yaml.safe_load(path.read_text()))
        n = min(args.iterations, 100_000)
        t0 = time.perf_counter()
        for _ in range(n):
            render_all(pipeline)
        per = (time.perf_counter() - t0) / n * 1e6
        print(f"{path.name}: {per:.1f} µs per render_all ({n} runs)")


if __name__ == "__main__":
    main()

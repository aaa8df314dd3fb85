"""Time to a ready local control plane (cached binaries; builds them first if missing)."""

from __future__ import annotations

import argparse
import time

from rerank_operator.sandbox import CLUSTER_BINARIES, Sandbox, default_crds_dir, ensure_binaries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ensure_binaries(CLUSTER_BINARIES)
    for i in range(min(args.runs, 10)):
        t0 = time.perf_counter()
        with Sandbox(crds=default_crds_dir()) as sb:
            up = time.perf_counter() - t0
            phases = ", ".join(f"{k} {v:.1f}s" for k, v in sb.timings.items())
        print(f"run {i + 1}: ready in {up:.1f}s ({phases})")


if __name__ == "__main__":
    main()

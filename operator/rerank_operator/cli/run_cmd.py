"""``rerank-operator run``: the operator process (kopf)."""

from __future__ import annotations

import argparse
import sys


def register(parser: argparse.ArgumentParser) -> None:
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable; exact names); default: all namespaces",
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="watch all namespaces (default)")
    parser.add_argument(
        "--liveness",
        default=None,
        metavar="URL",
        help="serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz",
    )
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port"
    )
    parser.add_argument(
        "--peering",
        default=None,
        metavar="NAME",
        help="use kopf peering with this KopfPeering name (default: standalone, one replica with Recreate)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    patterns = [str(ns) for ns in args.namespace if any(c in str(ns) for c in "*?[")]
    if patterns:  # each namespace is listed and watched by name (no cluster-wide namespace watch)
        print(
            f"rerank-operator run: --namespace takes exact names, not patterns: {', '.join(patterns)}",
            file=sys.stderr,
        )
        return 2

    import asyncio
    import logging

    import kopf

    import rerank_operator.handlers  # noqa: F401  (registers the handlers)
    from rerank_operator import metrics

    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat.FULL)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.metrics_port is not None:
        metrics.serve(args.metrics_port)
    namespaces: list[str] = [str(ns) for ns in args.namespace]
    asyncio.run(
        kopf.operator(
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=args.liveness,
            standalone=args.peering is None,
            peering_name=args.peering,
            memo=kopf.Memo(watched_namespaces=tuple(namespaces)),  # what the view's watches cover
        )
    )
    return 0

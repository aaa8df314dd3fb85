"""``rerank-operator probe``: send the canary to an endpoint and print the verdict as JSON.

Exit codes: 0 healthy, 1 unhealthy (the verdict says why), 2 usage error (bad arguments, missing API key
variable, invalid endpoint or host overrides). Heavy imports stay inside :func:`run`.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rerank_operator.probe import ProbeTarget


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--endpoint",
        required=True,
        metavar="URL",
        help="scheme://host:port, as published to Milvus (the probe POSTs {URL}/rerank)",
    )
    parser.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="send 'Authorization: Bearer $VAR' (the key itself is never printed)",
    )
    parser.add_argument("--query", help="canary query (default: a built-in canary)")
    parser.add_argument(
        "--document",
        action="append",
        metavar="TEXT",
        help="canary document; repeat for each (requires --query)",
    )
    parser.add_argument(
        "--expected-top-index",
        type=int,
        metavar="N",
        help="index of the --document that must rank first (default 0)",
    )
    parser.add_argument(
        "--engine", choices=("vllm", "tei"), default="vllm", help="wire protocol (default vllm)"
    )
    parser.add_argument(
        "--timeout", type=float, default=5.0, metavar="S", help="seconds per request (default 5)"
    )
    parser.add_argument("--max-latency-ms", type=int, metavar="N", help="fail with SlowResponse above this")
    parser.add_argument("--model", metavar="NAME", help="served model name that GET /v1/models must list")
    parser.add_argument(
        "--truncate-prompt-tokens",
        type=int,
        metavar="N",
        help="vLLM: forwarded like Milvus' truncate_prompt_tokens param",
    )
    parser.add_argument(
        "--truncate",
        action="store_true",
        default=None,
        help="TEI: send truncate: true, like Milvus' truncate param",
    )
    parser.add_argument(
        "--max-client-batch-size",
        type=int,
        metavar="N",
        help="the max_client_batch_size Milvus is given: the canary goes out in requests of at most N "
        "documents, and for TEI GET /info must allow N (else BatchLimitExceeded)",
    )


class UsageError(Exception):
    """A problem with the arguments rather than with the endpoint."""


def _target(args: argparse.Namespace) -> ProbeTarget:
    import os

    from rerank_operator.probe import DEFAULT_CANARY, Canary, ProbeTarget

    if args.document and args.query is None:
        raise UsageError("--document requires --query")
    if args.query is not None and not args.document:
        raise UsageError("--query requires at least one --document")
    if args.expected_top_index is not None and args.query is None:
        raise UsageError("--expected-top-index requires --query and --document")
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise UsageError(f"environment variable {args.api_key_env} is not set or empty")
    try:
        canary = DEFAULT_CANARY
        if args.query is not None:
            top = 0 if args.expected_top_index is None else args.expected_top_index
            canary = Canary(args.query, tuple(args.document), top)
        return ProbeTarget(
            endpoint=args.endpoint,
            canary=canary,
            engine=args.engine,
            api_key=api_key,
            served_model=args.model,
            timeout_s=args.timeout,
            max_latency_ms=args.max_latency_ms,
            truncate_prompt_tokens=args.truncate_prompt_tokens,
            truncate=args.truncate,
            max_client_batch_size=args.max_client_batch_size,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    import asyncio
    import json

    from rerank_operator.probe import HostResolver, Reason, probe_reranker

    try:
        target = _target(args)
        resolver = HostResolver.from_env()
    except (UsageError, ValueError) as exc:
        print(f"rerank-operator probe: error: {exc}", file=sys.stderr)
        return 2
    verdict = asyncio.run(probe_reranker(target, resolver=resolver))
    print(json.dumps(verdict.to_dict(), indent=2))
    if verdict.reason == Reason.INVALID_ENDPOINT:
        print(f"rerank-operator probe: error: {verdict.message}", file=sys.stderr)
        return 2
    return 0 if verdict.ok else 1

"""``python -m rerank_operator.standin``: run the stand-in as a process until SIGINT/SIGTERM.

The first line on stdout is the URL (``http://127.0.0.1:PORT``), so a parent process started with
``--port 0`` can read where it listens. ``--engine tei`` serves TEI's API instead of vLLM's.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from rerank_operator.standin.faults import FaultMode
from rerank_operator.standin.server import (
    DEFAULT_MAX_CLIENT_BATCH_SIZE,
    DEFAULT_MODEL,
    ENGINES,
    StandinServer,
)


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rerank_operator.standin", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (0 = pick a free one; see stdout)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="served model name (vLLM --served-model-name)")
    p.add_argument("--api-key-env", metavar="VAR", help="require 'Authorization: Bearer $VAR' like --api-key")
    p.add_argument(
        "--max-model-len",
        type=int,
        default=512,
        help="context limit in words (default 512; TEI's max_input_length with --engine tei)",
    )
    p.add_argument(
        "--engine",
        choices=ENGINES,
        default="vllm",
        help="API to speak: vllm (default) or tei (Hugging Face text-embeddings-inference)",
    )
    p.add_argument(
        "--max-client-batch-size",
        type=_positive_int,
        default=DEFAULT_MAX_CLIENT_BATCH_SIZE,
        metavar="N",
        help=f"TEI: most texts per rerank request, more is a 413 (default {DEFAULT_MAX_CLIENT_BATCH_SIZE})",
    )
    p.add_argument(
        "--auto-truncate",
        action="store_true",
        help="TEI: truncate overlong inputs when a request does not say 'truncate'",
    )
    p.add_argument(
        "--fault",
        choices=[m.value for m in FaultMode if m is not FaultMode.LOADING],
        default=FaultMode.HEALTHY.value,
        help="initial fault mode",
    )
    p.add_argument("--delay-s", type=float, default=None, help="delay for --fault slow")
    p.add_argument("--log-level", default="WARNING", help="Python logging level for stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            parser.error(f"environment variable {args.api_key_env} is not set or empty")
    try:
        server = StandinServer(
            args.host,
            args.port,
            args.model,
            api_key,
            max_model_len=args.max_model_len,
            engine=args.engine,
            max_client_batch_size=args.max_client_batch_size,
            auto_truncate=args.auto_truncate,
        )
        server.set_fault(args.fault, delay_s=args.delay_s)
        server.start()
    except (ValueError, OSError) as exc:
        print(f"stand-in: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(server.url, flush=True)
    try:
        while not done.wait(1.0):  # wake periodically so signals are handled promptly on every platform
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

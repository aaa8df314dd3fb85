"""``rerank-operator validate -f FILE``: offline validation, one ``field: problem`` line each."""

from __future__ import annotations

import argparse
import sys

from rerank_operator.cli._files import add_filename_argument


def register(parser: argparse.ArgumentParser) -> None:
    add_filename_argument(parser)


def run(args: argparse.Namespace) -> int:
    from rerank_operator.cli._files import FileError, parse_pipelines

    try:
        parsed = parse_pipelines(args.filename)
    except FileError as exc:
        print(exc, file=sys.stderr)
        return 2
    if parsed.count == 0 and parsed.grants == 0:
        print(f"{args.filename}: no RerankPipeline documents found (kind: RerankPipeline)", file=sys.stderr)
        return 1
    for line in parsed.problems:
        print(line)
    if parsed.problems:
        return 1
    grants = f", {parsed.grants} RerankPublishGrant(s) valid" if parsed.grants else ""
    print(f"{args.filename}: {parsed.count} RerankPipeline(s) valid{grants}", file=sys.stderr)
    return 0

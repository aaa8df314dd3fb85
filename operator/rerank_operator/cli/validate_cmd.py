"""``rerank-operator validate -f FILE``: offline validation, one ``field: problem`` line each."""

from __future__ import annotations

import argparse
import sys


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f", "--filename", required=True, help="YAML file with RerankPipeline documents ('-': stdin)"
    )


def run(args: argparse.Namespace) -> int:
    from rerank_operator.cli._files import FileError, is_pipeline, load_documents
    from rerank_operator.models import InvalidPipeline, RerankPipeline

    try:
        docs = load_documents(args.filename)
    except FileError as exc:
        print(exc, file=sys.stderr)
        return 2
    problems: list[str] = []
    checked = 0
    for index, doc in enumerate(docs):
        if not is_pipeline(doc):
            continue
        checked += 1
        label = _label(doc, index)
        try:
            RerankPipeline.from_body(doc)
        except InvalidPipeline as exc:
            problems += [f"{label}: {p}" for p in exc.problems]
    if checked == 0:
        print(f"{args.filename}: no RerankPipeline documents found (kind: RerankPipeline)", file=sys.stderr)
        return 1
    for line in problems:
        print(line)
    if problems:
        return 1
    print(f"{args.filename}: {checked} RerankPipeline(s) valid", file=sys.stderr)
    return 0


def _label(doc: dict[str, object], index: int) -> str:
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return f"RerankPipeline/{name}" if name else f"document {index + 1}"

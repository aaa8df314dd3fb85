"""``rerank-operator render -f FILE``: every child as multi-document YAML, offline, for GitOps previews."""

from __future__ import annotations

import argparse
import sys


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f", "--filename", required=True, help="YAML file with RerankPipeline documents ('-': stdin)"
    )
    parser.add_argument(
        "--cluster-domain",
        default=None,
        help="cluster DNS domain used in the published endpoint (default: $RERANK_OPERATOR_CLUSTER_DOMAIN "
        "or cluster.local)",
    )


def run(args: argparse.Namespace) -> int:
    from rerank_operator.cli._files import FileError, is_pipeline, load_documents
    from rerank_operator.manifests import render_all
    from rerank_operator.models import InvalidPipeline, RerankPipeline
    from rerank_operator.settings import cluster_domain
    from rerank_operator.yamlio import dump_all

    try:
        docs = load_documents(args.filename)
    except FileError as exc:
        print(exc, file=sys.stderr)
        return 2
    manifests = []
    failed = False
    for doc in docs:
        if not is_pipeline(doc):
            continue
        try:
            pipeline = RerankPipeline.from_body(doc)
        except InvalidPipeline as exc:
            failed = True
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            continue
        manifests += render_all(pipeline, args.cluster_domain or cluster_domain())
    if failed:
        return 1
    if not manifests:
        print(f"{args.filename}: no RerankPipeline documents found", file=sys.stderr)
        return 1
    sys.stdout.write(dump_all(manifests))
    return 0

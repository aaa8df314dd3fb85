"""``rerank-operator render -f FILE``: every child as multi-document YAML, offline, for GitOps previews.

A pipeline with ``spec.external`` has no workload (something else runs its reranker): only its published
ConfigMaps are rendered, and a note on stderr says so, so an empty-looking preview is not a surprise.
"""

from __future__ import annotations

import argparse
import sys

from rerank_operator.cli._files import add_filename_argument


def register(parser: argparse.ArgumentParser) -> None:
    add_filename_argument(parser)
    parser.add_argument(
        "--cluster-domain",
        default=None,
        help="cluster DNS domain used in the published endpoint (default: $RERANK_OPERATOR_CLUSTER_DOMAIN "
        "or cluster.local)",
    )


def run(args: argparse.Namespace) -> int:
    from rerank_operator.cli._files import FileError, parse_pipelines
    from rerank_operator.manifests import render_all
    from rerank_operator.settings import cluster_domain
    from rerank_operator.yamlio import dump_all

    try:
        parsed = parse_pipelines(args.filename)
    except FileError as exc:
        print(exc, file=sys.stderr)
        return 2
    for problem in parsed.problems:
        print(problem, file=sys.stderr)
    if parsed.problems:
        return 1
    if not parsed.pipelines:
        print(f"{args.filename}: no RerankPipeline documents found", file=sys.stderr)
        return 1
    domain = args.cluster_domain or cluster_domain()
    for pipeline in parsed.pipelines:
        if pipeline.spec.external is not None:
            print(
                f"RerankPipeline/{pipeline.name}: spec.external ({pipeline.spec.external.endpoint}) runs "
                "elsewhere: the operator deploys nothing for it, only its published ConfigMaps are rendered",
                file=sys.stderr,
            )
    sys.stdout.write(dump_all(m for p in parsed.pipelines for m in render_all(p, domain)))
    return 0

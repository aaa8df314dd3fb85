"""``rerank-operator crd``: print (or write) the CRDs generated from the models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output-dir",
        type=Path,
        help="write one file per CRD into this directory (as in crds/) instead of printing them all",
    )


def run(args: argparse.Namespace) -> int:
    from rerank_operator.models.crd import crd_files

    files = crd_files()
    if args.output_dir is None:
        # the concatenation is byte-identical to `cat crds/*.yaml` (file names sort in this order)
        sys.stdout.write("".join(files.values()))
        return 0
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.output_dir / name).write_text(text, encoding="utf-8")
    return 0

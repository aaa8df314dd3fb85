"""``rerank-operator crd``: print the CRD generated from the models."""

from __future__ import annotations

import argparse
import sys


def register(parser: argparse.ArgumentParser) -> None:
    del parser  # no options: the output must be byte-identical to crds/


def run(args: argparse.Namespace) -> int:
    from rerank_operator.models.crd import crd_yaml

    sys.stdout.write(crd_yaml())
    return 0

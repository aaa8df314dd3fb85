"""Reading RerankPipeline documents from files for the offline commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml


def add_filename_argument(parser: argparse.ArgumentParser) -> None:
    """``-f/--filename``, the same for every command that reads pipelines from a file."""
    parser.add_argument(
        "-f", "--filename", required=True, help="YAML file with RerankPipeline documents ('-': stdin)"
    )


class FileError(Exception):
    """The file cannot be read or parsed at all (as opposed to an invalid pipeline)."""


def load_documents(path: str) -> list[dict[str, Any]]:
    """All non-empty YAML documents of ``path`` (``-`` for stdin)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise FileError(f"{path}: {exc.strerror or exc}") from exc
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise FileError(f"{path}: not valid YAML: {exc}") from exc
    for i, doc in enumerate(docs):
        if not isinstance(doc, dict):
            raise FileError(f"{path}: document {i + 1} is not a mapping")
    if not docs:
        raise FileError(f"{path}: no YAML documents")
    return docs


def is_pipeline(doc: dict[str, Any]) -> bool:
    return doc.get("kind") == "RerankPipeline"


def is_grant(doc: dict[str, Any]) -> bool:
    return doc.get("kind") == "RerankPublishGrant"


class ParsedFile:
    """The RerankPipeline documents of a file: the valid ones, and one labelled line per problem.
    RerankPublishGrants in the same file (a namespace's consent, often kept next to the pipeline in
    GitOps) are checked too; other kinds are ignored."""

    def __init__(self, docs: list[dict[str, Any]]):
        from rerank_operator.models import InvalidPipeline, RerankPipeline
        from rerank_operator.models.grant import grant_problems

        self.pipelines: list[RerankPipeline] = []
        self.problems: list[str] = []
        self.count = 0
        self.grants = 0
        for index, doc in enumerate(docs):
            if is_grant(doc):
                self.grants += 1
                self.problems += [f"{_label(doc, index)}: {p}" for p in grant_problems(doc)]
            if not is_pipeline(doc):
                continue
            self.count += 1
            try:
                self.pipelines.append(RerankPipeline.from_body(doc))
            except InvalidPipeline as exc:
                self.problems += [f"{_label(doc, index)}: {p}" for p in exc.problems]


def parse_pipelines(path: str) -> ParsedFile:
    """Raises ``FileError`` when the file cannot be read or parsed as YAML at all."""
    return ParsedFile(load_documents(path))


def _label(doc: dict[str, Any], index: int) -> str:
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return f"{doc.get('kind')}/{name}" if name else f"document {index + 1}"

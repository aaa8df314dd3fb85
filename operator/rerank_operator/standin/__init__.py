"""A stand-in for a vLLM reranker: tests and the sandbox use it where no GPU or model is available.

Not a product feature. It speaks vLLM's rerank API (and TEI's ``texts`` variant), scores lexically and
deterministically, and can be switched into the fault modes the probe must recognise.
"""

from rerank_operator.standin.faults import Fault, FaultMode
from rerank_operator.standin.scoring import rank, relevance, tokenize
from rerank_operator.standin.server import DEFAULT_MODEL, RecordedRequest, StandinServer

__all__ = [
    "DEFAULT_MODEL",
    "Fault",
    "FaultMode",
    "RecordedRequest",
    "StandinServer",
    "rank",
    "relevance",
    "tokenize",
]

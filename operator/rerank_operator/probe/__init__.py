"""Canary probe for rerank endpoints: is this URL safe to hand to Milvus?

Pure httpx + asyncio, no Kubernetes imports: used by the operator's handlers and by
``rerank-operator probe``.
"""

from rerank_operator.probe.canary import DEFAULT_CANARY, Canary
from rerank_operator.probe.client import probe_reranker, request_body
from rerank_operator.probe.evaluate import ENGINES, Answer, Engine, evaluate_answers, evaluate_response
from rerank_operator.probe.resolver import ENV_VAR as HOST_OVERRIDES_ENV
from rerank_operator.probe.resolver import HostResolver
from rerank_operator.probe.target import ProbeTarget, parse_endpoint
from rerank_operator.probe.verdict import FAILURE_REASONS, REASONS, ProbeVerdict, Reason

__all__ = [
    "DEFAULT_CANARY",
    "ENGINES",
    "FAILURE_REASONS",
    "HOST_OVERRIDES_ENV",
    "REASONS",
    "Answer",
    "Canary",
    "Engine",
    "HostResolver",
    "ProbeTarget",
    "ProbeVerdict",
    "Reason",
    "evaluate_answers",
    "evaluate_response",
    "parse_endpoint",
    "probe_reranker",
    "request_body",
]

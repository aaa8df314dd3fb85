"""A pipeline's revision: the identity of what scores documents.

Two pods of one revision give the same scores for the same documents; two pods of different revisions
may not, and Milvus must never merge their scores into one ranking (it scores one search in several
requests, each routed to any pod of the Service). So the revision is a hash of everything that shapes
the scores: the serving arguments (model, revision, served name, dtype, overrides...), the chat template
(mounted, so not in the arguments), the engine (image, env...) and the secrets it reads. What only moves
pods around (GPUs, tolerations, node selection, replicas) is not in it and rolls a revision in place.
"""

from __future__ import annotations

import hashlib
import json

from rerank_operator.models import RerankPipeline
from rerank_operator.render.vllm_args import serve_args

REVISION_CHARS = 8  # <name>-<revision> stays a DNS-1035 label: names are at most 52 characters


def config_hash(pipeline: RerankPipeline) -> str:
    """Hash of everything that shapes the scores, including the mounted template text.

    The template lives in a ConfigMap, so editing it would not change the pod template by itself; the
    hash in a pod annotation makes every relevant spec change roll the pods (or start a revision).
    """
    spec = pipeline.spec
    relevant = {
        "args": serve_args(pipeline),
        "template": spec.model.chat_template,
        "engine": spec.engine.to_api(),
        "hfToken": spec.hf_token_secret_ref.to_api() if spec.hf_token_secret_ref else None,
        "apiKey": spec.api_key_secret_ref.to_api() if spec.api_key_secret_ref else None,
    }
    digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()
    return digest[:16]


def revision(pipeline: RerankPipeline) -> str:
    """The revision of the current spec: the pods' ``rerank.dev/revision`` label."""
    return config_hash(pipeline)[:REVISION_CHARS]

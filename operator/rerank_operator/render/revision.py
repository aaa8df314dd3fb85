"""A pipeline's revision: the identity of what scores documents.

Two pods of one revision give the same scores for the same documents; two pods of different revisions
may not, and Milvus must never merge their scores into one ranking (it scores one search in several
requests, each routed to any pod of the Service). So the revision is a hash of everything that shapes
the scores: the serving arguments (model, revision, served name, dtype, overrides...), the chat template
(mounted, so not in the arguments), the engine (image, env...) and the secrets it reads. What only moves
pods around (GPUs, tolerations, node selection, replicas) is not in it and rolls a revision in place;
except that, for TEI with its default image, going between 0 and some GPUs switches between TEI's CPU
and GPU images, which is a new revision like any image change.

The hash is stable across operator upgrades: an object stored before engine.kind existed (no kind, and
the image the schema used to default, written out) hashes exactly as it did, and so does one that
leaves the image to the operator's default; a new engine or a new image is a new revision.

A pipeline with ``spec.external`` runs no pods: its revision identifies the server it points at.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from typing import Any

from rerank_operator.models import RerankPipeline
from rerank_operator.render.vllm_args import server_args

REVISION_CHARS = 8  # <name>-<revision> stays a DNS-1035 label: names are at most 52 characters


# config_hash by pipeline object: a pass names its children a dozen times (``child_names``), and each
# would render the serving arguments and serialise them again. The models are frozen, so an object's
# hash never changes; an entry goes with its object (weakref callback), and ``is`` guards id reuse.
_HASHES: dict[int, tuple[weakref.ref[RerankPipeline], str]] = {}


def config_hash(pipeline: RerankPipeline) -> str:
    """Hash of everything that shapes the scores, including the mounted template text.

    The template lives in a ConfigMap, so editing it would not change the pod template by itself; the
    hash in a pod annotation makes every relevant spec change roll the pods (or start a revision).
    """
    key = id(pipeline)
    known = _HASHES.get(key)
    if known is not None and known[0]() is pipeline:
        return known[1]
    digest = _config_hash(pipeline)

    def forget(ref: weakref.ref[RerankPipeline]) -> None:
        known = _HASHES.get(key)
        if known is not None and known[0] is ref:
            del _HASHES[key]

    _HASHES[key] = (weakref.ref(pipeline, forget), digest)
    return digest


def _config_hash(pipeline: RerankPipeline) -> str:
    spec = pipeline.spec
    api_key = spec.effective_api_key_ref
    relevant: dict[str, Any]
    if spec.external is not None:
        relevant = {
            "external": spec.external.to_api(),  # endpoint, protocol and the API key's Secret
            "model": spec.model.name,
            "servedName": spec.model.effective_served_name,
        }
    else:
        relevant = {
            "args": server_args(pipeline),
            "template": spec.model.chat_template,
            "engine": _engine(pipeline),
            "hfToken": spec.hf_token_secret_ref.to_api() if spec.hf_token_secret_ref else None,
            "apiKey": api_key.to_api() if api_key else None,
        }
    digest = hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()
    return digest[:16]


def _engine(pipeline: RerankPipeline) -> dict[str, Any]:
    """The engine as it was hashed before engine.kind existed: the image the pods run (the schema used to
    default it, so stored objects spell it out), and no kind for vLLM, the only engine there was."""
    engine = pipeline.spec.engine.to_api()
    engine["image"] = pipeline.spec.image
    if pipeline.spec.engine.effective_kind == "vllm":
        engine.pop("kind", None)
    return engine


def revision(pipeline: RerankPipeline) -> str:
    """The revision of the current spec: the pods' ``rerank.dev/revision`` label."""
    return config_hash(pipeline)[:REVISION_CHARS]

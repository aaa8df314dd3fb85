"""Deployment, Service, model-cache PVC and chat-template ConfigMap of a pipeline.

Pure functions: spec in, manifest dicts out. No I/O, so they are tested directly and power
``rerank-operator render`` for GitOps previews.

One pod shape serves both engines (``spec.engine.kind``): GPUs, tolerations, scheduling, the model
cache volume, the secrets, probes on ``/health`` and the revisions are shared. What differs is the
container: vLLM (container ``vllm``) runs ``vllm serve``, keeps the cache at ``HF_HOME``, reads its key
from ``VLLM_API_KEY`` and serves ``/metrics`` on its API port; TEI (container ``tei``) runs
``text-embeddings-router``, keeps the cache at ``HUGGINGFACE_HUB_CACHE`` (its image's ``/data``), reads
``API_KEY`` and serves ``/metrics`` on a ``metrics`` port of its own, and has no chat template.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

from rerank_operator import ANNOTATION_PREFIX
from rerank_operator.models import HF_CACHE_PATH, TEI_CACHE_PATH, RerankPipeline, SecretKeyRef
from rerank_operator.render.naming import (
    REVISION_LABEL,
    child_names,
    object_meta,
    revision_selector,
    selector_labels,
)
from rerank_operator.render.naming import blue_green as blue_green  # re-exported: reconcile imports it here
from rerank_operator.render.revision import config_hash, revision
from rerank_operator.render.tei_args import metrics_port
from rerank_operator.render.vllm_args import (
    CHAT_TEMPLATE_DIR,
    CHAT_TEMPLATE_FILE,
    server_args,
    server_command,
)

# The server container's name per engine. vLLM's is the one every operator release used: renaming it
# would change every running pipeline's pod template (a rollout at upgrade).
CONTAINER_NAME = "vllm"
TEI_CONTAINER_NAME = "tei"
PORT_NAME = "http"
# TEI serves /metrics on its own port (--prometheus-port); vLLM on the API port.
METRICS_PORT_NAME = "metrics"
HEALTH_PATH = "/health"
STARTUP_PERIOD_SECONDS = 10
# Scheduling and pulling a multi-GB vLLM image come before the startup budget starts counting.
PROGRESS_MARGIN_SECONDS = 600
_ROLLING_UPDATE = {
    "BlueGreen": {"maxSurge": 1, "maxUnavailable": 0},
    "Surge": {"maxSurge": 1, "maxUnavailable": 0},
    "Replace": {"maxSurge": 0, "maxUnavailable": 1},
}
CONFIG_HASH_ANNOTATION = f"{ANNOTATION_PREFIX}/config-hash"


def is_tei(pipeline: RerankPipeline) -> bool:
    return pipeline.spec.engine.effective_kind == "tei"


def container_name(pipeline: RerankPipeline) -> str:
    """The server container's name: ``vllm`` or ``tei``."""
    return TEI_CONTAINER_NAME if is_tei(pipeline) else CONTAINER_NAME


def cache_path(pipeline: RerankPipeline) -> str:
    """Where the model cache volume is mounted: the directory the engine's image downloads into."""
    return TEI_CACHE_PATH if is_tei(pipeline) else HF_CACHE_PATH


def metrics_port_name(pipeline: RerankPipeline) -> str:
    """The container port Prometheus scrapes ``/metrics`` on."""
    return METRICS_PORT_NAME if is_tei(pipeline) else PORT_NAME


def _secret_env(name: str, ref: SecretKeyRef) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def _env(pipeline: RerankPipeline) -> list[dict[str, Any]]:
    """Cache location and secrets (references only, never values), then the user's env."""
    spec = pipeline.spec
    token, api_key = spec.hf_token_secret_ref, spec.effective_api_key_ref
    env: list[dict[str, Any]]
    if is_tei(pipeline):
        env = [{"name": "HUGGINGFACE_HUB_CACHE", "value": TEI_CACHE_PATH}]
        if token:
            # HF_API_TOKEN: the name TEI releases before 1.6 read (an older pinned image still works)
            env += [_secret_env("HF_TOKEN", token), _secret_env("HF_API_TOKEN", token)]
        if api_key:
            env.append(_secret_env("API_KEY", api_key))
    else:
        env = [{"name": "HF_HOME", "value": HF_CACHE_PATH}]
        if token:
            env.append(_secret_env("HF_TOKEN", token))
        if api_key:
            env.append(_secret_env("VLLM_API_KEY", api_key))
    env += [e.to_api() for e in spec.engine.env]
    return env


def _ports(pipeline: RerankPipeline) -> list[dict[str, Any]]:
    """The API port first (what the Service targets and the sandbox's pod runner listens on)."""
    ports = [{"name": PORT_NAME, "containerPort": pipeline.spec.engine.port, "protocol": "TCP"}]
    if is_tei(pipeline):
        ports.append({"name": METRICS_PORT_NAME, "containerPort": metrics_port(pipeline), "protocol": "TCP"})
    return ports


def _resources(pipeline: RerankPipeline) -> dict[str, Any]:
    res = pipeline.spec.resources
    limits: dict[str, Any] = {}
    requests: dict[str, Any] = {}
    if res.gpus > 0:
        limits[res.gpu_resource_name] = res.gpus
    for target, source in ((requests, res.requests), (limits, res.limits)):
        if source is not None:
            target.update({k: str(v) for k, v in source.to_api().items()})
    out: dict[str, Any] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def _tolerations(pipeline: RerankPipeline) -> list[dict[str, Any]]:
    """User tolerations, plus one for the GPU taint GPU pools carry (as the
    ExtendedResourceToleration admission plugin would add)."""
    spec = pipeline.spec
    tolerations = [t.to_api() for t in spec.tolerations]
    gpu = spec.resources.gpu_resource_name
    if spec.resources.gpus > 0 and not any(t.get("key") == gpu for t in tolerations):
        tolerations.append({"key": gpu, "operator": "Exists", "effect": "NoSchedule"})
    return tolerations


def _volumes(pipeline: RerankPipeline) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    spec = pipeline.spec
    names = child_names(pipeline)
    volumes: list[dict[str, Any]] = [
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": str(spec.engine.shm_size)}},
    ]
    mounts: list[dict[str, Any]] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    cache = spec.model_cache
    if cache.kind == "pvc":
        volumes.append({"name": "model-cache", "persistentVolumeClaim": {"claimName": names.cache_pvc}})
    elif cache.kind == "existingClaim":
        volumes.append({"name": "model-cache", "persistentVolumeClaim": {"claimName": cache.existing_claim}})
    else:
        volumes.append({"name": "model-cache", "emptyDir": {}})
    mounts.append({"name": "model-cache", "mountPath": cache_path(pipeline)})
    if spec.model.chat_template is not None and not is_tei(pipeline):  # TEI has no chat template
        volumes.append(
            {
                "name": "chat-template",
                "configMap": {
                    "name": names.chat_template,
                    "items": [{"key": CHAT_TEMPLATE_FILE, "path": CHAT_TEMPLATE_FILE}],
                },
            }
        )
        mounts.append({"name": "chat-template", "mountPath": CHAT_TEMPLATE_DIR, "readOnly": True})
    return volumes, mounts


def _probes(pipeline: RerankPipeline) -> dict[str, Any]:
    """``/health`` probes on the API port (both engines serve it); the startup budget covers weight
    download and load (neither answers until then), after which readiness and liveness take over."""
    http = {"path": HEALTH_PATH, "port": PORT_NAME}
    budget = pipeline.spec.engine.startup_timeout_seconds
    return {
        "startupProbe": {
            "httpGet": http,
            "periodSeconds": STARTUP_PERIOD_SECONDS,
            "timeoutSeconds": 5,
            "failureThreshold": max(1, math.ceil(budget / STARTUP_PERIOD_SECONDS)),
        },
        "readinessProbe": {"httpGet": http, "periodSeconds": 5, "timeoutSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"httpGet": http, "periodSeconds": 10, "timeoutSeconds": 5, "failureThreshold": 3},
    }


def progress_deadline_seconds(pipeline: RerankPipeline) -> int:
    """After this long without progress the Deployment reports ProgressDeadlineExceeded (Stalled)."""
    return pipeline.spec.engine.startup_timeout_seconds + PROGRESS_MARGIN_SECONDS


def render_deployment(pipeline: RerankPipeline) -> dict[str, Any]:
    """The Deployment of the current spec. BlueGreen: the current revision's own Deployment, whose
    selector includes its revision, so it never adopts another revision's pods; a change that is not
    a new revision (GPUs, tolerations...) rolls it in place, pod by pod, without mixing models. Surge
    and Replace: one Deployment that every change rolls in place."""
    spec = pipeline.spec
    names = child_names(pipeline)
    rev = revision(pipeline)
    meta = object_meta(pipeline, names.deployment, "server")
    selector = revision_selector(pipeline, rev) if blue_green(pipeline) else selector_labels(pipeline)
    if blue_green(pipeline):
        meta["labels"][REVISION_LABEL] = rev
    # (no revision label on Surge and Replace pods: adding one would roll every pod at an upgrade)
    pod_labels = {**meta["labels"], **selector}
    volumes, mounts = _volumes(pipeline)
    container: dict[str, Any] = {
        "name": container_name(pipeline),
        "image": spec.image,
        "imagePullPolicy": spec.engine.image_pull_policy,
        "command": server_command(pipeline),
        "args": server_args(pipeline),
        "ports": _ports(pipeline),
        "env": _env(pipeline),
        "resources": _resources(pipeline),
        "volumeMounts": mounts,
        **_probes(pipeline),
    }
    pod_spec: dict[str, Any] = {
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 60,
        "containers": [container],
        "volumes": volumes,
    }
    tolerations = _tolerations(pipeline)
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.affinity:
        pod_spec["affinity"] = copy.deepcopy(spec.affinity)  # never alias the (frozen) spec's dict
    if spec.runtime_class_name:
        pod_spec["runtimeClassName"] = spec.runtime_class_name
    if spec.priority_class_name:
        pod_spec["priorityClassName"] = spec.priority_class_name
    deployment_spec: dict[str, Any] = {}
    if spec.autoscaling is None:
        # Only while the operator owns scaling: with an autoscaler the count is its field, and leaving
        # it out of our apply is what lets its writes stand (see reconcile.replicas for the handover).
        deployment_spec["replicas"] = spec.replicas
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            **deployment_spec,
            "selector": {"matchLabels": selector},
            # Surge (and BlueGreen within one revision): a rollout never takes the working reranker
            # away first; with no spare GPU the new pod waits Pending and the old one keeps serving.
            # Replace trades that for needing no spare GPU (spec.rollout.strategy).
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": dict(_ROLLING_UPDATE[spec.rollout.strategy]),
            },
            # The default 600 s would call a healthy model load "failed": give the startup budget room.
            "progressDeadlineSeconds": progress_deadline_seconds(pipeline),
            "revisionHistoryLimit": 3,
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": {CONFIG_HASH_ANNOTATION: config_hash(pipeline)},
                },
                "spec": pod_spec,
            },
        },
    }


def stable_selector(pipeline: RerankPipeline, active: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the endpoint's Service selects. Surge and Replace: every pod of the pipeline. BlueGreen:
    the pods of one revision, ``active`` (labels beyond the base ones, e.g. ``{REVISION_LABEL: rev}``),
    which the switch changes; offline (``render``) the current revision, as after its switch."""
    if not blue_green(pipeline):
        return selector_labels(pipeline)
    extra = dict(active) if active is not None else {REVISION_LABEL: revision(pipeline)}
    return {**selector_labels(pipeline), **extra}


def render_service(pipeline: RerankPipeline, active: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The stable Service: the published endpoint, whose address never changes (see ``stable_selector``)."""
    names = child_names(pipeline)
    return _service(pipeline, names.service, "server", stable_selector(pipeline, active))


def render_revision_service(pipeline: RerankPipeline) -> dict[str, Any] | None:
    """BlueGreen: the current revision's own Service. Only the canary calls it: it reaches that
    revision's pods and nothing else, before (and whether or not) the stable Service switches to it."""
    if not blue_green(pipeline):
        return None
    rev = revision(pipeline)
    service = _service(
        pipeline, child_names(pipeline).revision_service, "canary", revision_selector(pipeline, rev)
    )
    service["metadata"]["labels"][REVISION_LABEL] = rev
    return service


def _service(pipeline: RerankPipeline, name: str, component: str, selector: dict[str, str]) -> dict[str, Any]:
    port = pipeline.spec.engine.port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_meta(pipeline, name, component),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": PORT_NAME, "port": port, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def render_disruption_budget(pipeline: RerankPipeline) -> dict[str, Any] | None:
    """Voluntary evictions (node drains, autoscaler scale-down) take one reranker pod at a time, so
    a drain never empties the endpoint while another replica could still serve; unhealthy pods may
    always go, so a pod stuck loading never blocks a drain.

    ``None`` for a pipeline that never runs more than one pod: one pod of ``maxUnavailable: 1`` may
    always be evicted, so the budget would protect nothing and only cost an object, its writes and
    the disruption controller's (it is created when ``replicas`` or ``maxReplicas`` goes above 1, and
    a budget left from such a count stays, as harmless as it is useless)."""
    autoscaling = pipeline.spec.autoscaling
    most = autoscaling.max_replicas if autoscaling is not None else pipeline.spec.replicas
    if most <= 1:
        return None
    names = child_names(pipeline)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(pipeline, names.disruption_budget, "server"),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(pipeline)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def render_cache_pvc(pipeline: RerankPipeline) -> dict[str, Any] | None:
    pvc = pipeline.spec.model_cache.pvc
    if pvc is None:
        return None
    spec: dict[str, Any] = {
        "accessModes": list(pvc.access_modes),
        "resources": {"requests": {"storage": str(pvc.size)}},
    }
    if pvc.storage_class_name:
        spec["storageClassName"] = pvc.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": object_meta(pipeline, child_names(pipeline).cache_pvc, "model-cache"),
        "spec": spec,
    }


def render_chat_template(pipeline: RerankPipeline) -> dict[str, Any] | None:
    template = pipeline.spec.model.chat_template
    if template is None or is_tei(pipeline):
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(pipeline, child_names(pipeline).chat_template, "chat-template"),
        "data": {CHAT_TEMPLATE_FILE: template},
    }

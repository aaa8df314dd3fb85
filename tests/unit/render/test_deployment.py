"""The reranker Deployment: command, GPU, volumes, secrets, probes, scheduling and the config hash."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from rerank_operator.manifests import render_all
from rerank_operator.models import (
    DEFAULT_IMAGE,
    DEFAULT_TEI_CPU_IMAGE,
    DEFAULT_TEI_IMAGE,
    HF_CACHE_PATH,
    TEI_CACHE_PATH,
    RerankPipeline,
)
from rerank_operator.render import (
    config_hash,
    render_cache_pvc,
    render_chat_template,
    render_deployment,
    render_disruption_budget,
    revision,
    router_args,
    serve_args,
)
from rerank_operator.render.naming import REVISION_LABEL
from rerank_operator.render.workload import CONFIG_HASH_ANNOTATION

MakePipeline = Callable[..., RerankPipeline]


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    [c] = deployment["spec"]["template"]["spec"]["containers"]
    out: dict[str, Any] = c
    return out


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def volumes_by_name(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in pod_spec(deployment)["volumes"]}


def mounts_by_path(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["mountPath"]: m for m in container(deployment)["volumeMounts"]}


def env_by_name(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    env = container(deployment)["env"]
    names = [e["name"] for e in env]
    assert len(names) == len(set(names)), f"duplicate env names: {names}"
    return {e["name"]: e for e in env}


# ------------------------------------------------------------------------------------ basics
def test_deployment_identity(make_pipeline: MakePipeline) -> None:
    """BlueGreen (the default): each revision has its own Deployment, named after it."""
    pipeline = make_pipeline()
    d = render_deployment(pipeline)
    assert d["apiVersion"] == "apps/v1"
    assert d["kind"] == "Deployment"
    assert d["metadata"]["name"] == f"demo-{revision(pipeline)}"
    assert d["metadata"]["namespace"] == "search"
    assert d["metadata"]["labels"][REVISION_LABEL] == revision(pipeline)
    assert d["spec"]["replicas"] == 1


@pytest.mark.parametrize("strategy", ["Surge", "Replace"])
def test_deployment_identity_when_rolled_in_place(make_pipeline: MakePipeline, strategy: str) -> None:
    """Surge and Replace: one Deployment that every change rolls, and no revision label anywhere
    (adding one would roll every pod at an upgrade)."""
    d = render_deployment(make_pipeline(rollout={"strategy": strategy}))
    assert d["metadata"]["name"] == "demo-reranker"
    assert d["metadata"]["namespace"] == "search"
    assert REVISION_LABEL not in d["metadata"]["labels"]
    assert REVISION_LABEL not in d["spec"]["template"]["metadata"]["labels"]
    assert d["spec"]["selector"] == {
        "matchLabels": {
            "app.kubernetes.io/name": "vllm-reranker",
            "app.kubernetes.io/instance": "demo",
            "app.kubernetes.io/component": "server",
        }
    }


@pytest.mark.parametrize("replicas", [0, 1, 3, 64])
def test_replicas(make_pipeline: MakePipeline, replicas: int) -> None:
    assert render_deployment(make_pipeline(replicas=replicas))["spec"]["replicas"] == replicas


def test_rollout_never_removes_the_working_pod_first(make_pipeline: MakePipeline) -> None:
    strategy = render_deployment(make_pipeline())["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


def test_replace_rollout_needs_no_spare_gpu(make_pipeline: MakePipeline) -> None:
    strategy = render_deployment(make_pipeline(rollout={"strategy": "Replace"}))["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


@pytest.mark.parametrize("budget", [30, 1800, 86400])
def test_progress_deadline_outlasts_the_startup_budget(make_pipeline: MakePipeline, budget: int) -> None:
    """The Deployment default (600 s) would report a model still loading as failed."""
    d = render_deployment(make_pipeline(engine={"startupTimeoutSeconds": budget}))
    assert d["spec"]["progressDeadlineSeconds"] == budget + 600  # + room to schedule and pull the image


def test_container_runs_vllm_serve(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(model={"maxModelLen": 512, "dtype": "float16"})
    c = container(render_deployment(pipeline))
    assert c["command"] == ["vllm", "serve"]
    assert c["args"] == serve_args(pipeline)
    args = c["args"]
    assert args[0] == "BAAI/bge-reranker-base"
    assert args[args.index("--runner") + 1] == "pooling"
    assert args[args.index("--port") + 1] == "8000"
    assert args[args.index("--served-model-name") + 1] == "BAAI/bge-reranker-base"
    assert args[args.index("--dtype") + 1] == "float16"
    assert args[args.index("--max-model-len") + 1] == "512"


def test_image_and_pull_policy(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    c = container(render_deployment(pipeline))
    assert pipeline.spec.engine.image is None  # no schema default: the operator's pinned image applies
    assert c["image"] == pipeline.spec.image == DEFAULT_IMAGE
    assert c["image"].startswith("vllm/vllm-openai:v")
    assert c["imagePullPolicy"] == "IfNotPresent"
    c = container(
        render_deployment(make_pipeline(engine={"image": "my/vllm:1", "imagePullPolicy": "Always"}))
    )
    assert (c["image"], c["imagePullPolicy"]) == ("my/vllm:1", "Always")


@pytest.mark.parametrize("port", [8000, 9001])
def test_container_port_named_http(make_pipeline: MakePipeline, port: int) -> None:
    c = container(render_deployment(make_pipeline(engine={"port": port})))
    assert c["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert c["args"][c["args"].index("--port") + 1] == str(port)


def test_service_links_are_disabled(make_pipeline: MakePipeline) -> None:
    """Injected VLLM_* service env vars would collide with vLLM's own settings."""
    assert pod_spec(render_deployment(make_pipeline()))["enableServiceLinks"] is False


def test_selector_matches_pod_labels(make_pipeline: MakePipeline) -> None:
    d = render_deployment(make_pipeline())
    selector = d["spec"]["selector"]["matchLabels"]
    pod_labels = d["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert selector["app.kubernetes.io/instance"] == "demo"


def test_blue_green_selector_names_the_revision(make_pipeline: MakePipeline) -> None:
    """A revision's Deployment never adopts another revision's pods: its selector includes its revision."""
    pipeline = make_pipeline()
    d = render_deployment(pipeline)
    assert d["spec"]["selector"] == {
        "matchLabels": {
            "app.kubernetes.io/name": "vllm-reranker",
            "app.kubernetes.io/instance": "demo",
            "app.kubernetes.io/component": "server",
            REVISION_LABEL: revision(pipeline),
        }
    }
    assert d["spec"]["template"]["metadata"]["labels"][REVISION_LABEL] == revision(pipeline)
    other = render_deployment(make_pipeline(model={"name": "BAAI/bge-reranker-large"}))
    assert other["metadata"]["name"] != d["metadata"]["name"]
    assert other["spec"]["selector"]["matchLabels"][REVISION_LABEL] != revision(pipeline)


def test_vllm_container_keeps_its_name(make_pipeline: MakePipeline) -> None:
    """Renaming it would change every running pipeline's pod template: a rollout at upgrade."""
    assert container(render_deployment(make_pipeline()))["name"] == "vllm"
    assert container(render_deployment(make_pipeline(engine={"kind": "vllm"})))["name"] == "vllm"


# ------------------------------------------------------------------------------------ resources
def test_default_gpu_limit(make_pipeline: MakePipeline) -> None:
    assert container(render_deployment(make_pipeline()))["resources"] == {"limits": {"nvidia.com/gpu": 1}}


@pytest.mark.parametrize(
    ("name", "count"), [("nvidia.com/gpu", 2), ("amd.com/gpu", 1), ("gpu.intel.com/i915", 4)]
)
def test_custom_gpu_resource_and_count(make_pipeline: MakePipeline, name: str, count: int) -> None:
    d = render_deployment(make_pipeline(resources={"gpus": count, "gpuResourceName": name}))
    limits = container(d)["resources"]["limits"]
    assert limits == {name: count}
    assert "requests" not in container(d)["resources"]  # extended resources: limit implies request
    assert {"key": name, "operator": "Exists", "effect": "NoSchedule"} in pod_spec(d)["tolerations"]


def test_zero_gpus_means_no_gpu_limit_and_no_gpu_toleration(make_pipeline: MakePipeline) -> None:
    d = render_deployment(make_pipeline(resources={"gpus": 0}))
    assert container(d)["resources"] == {}
    assert "tolerations" not in pod_spec(d)
    d = render_deployment(
        make_pipeline(resources={"gpus": 0}, tolerations=[{"key": "x", "operator": "Exists"}])
    )
    assert pod_spec(d)["tolerations"] == [{"key": "x", "operator": "Exists"}]


def test_cpu_and_memory_requests_and_limits(make_pipeline: MakePipeline) -> None:
    d = render_deployment(
        make_pipeline(
            resources={
                "gpus": 1,
                "requests": {"cpu": "500m", "memory": "8Gi"},
                "limits": {"cpu": 4, "memory": "16Gi"},
            }
        )
    )
    assert container(d)["resources"] == {
        "requests": {"cpu": "500m", "memory": "8Gi"},
        "limits": {"nvidia.com/gpu": 1, "cpu": "4", "memory": "16Gi"},
    }


# ------------------------------------------------------------------------------------- volumes
def test_dev_shm_is_a_memory_empty_dir(make_pipeline: MakePipeline) -> None:
    d = render_deployment(make_pipeline())
    assert volumes_by_name(d)["dshm"] == {
        "name": "dshm",
        "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"},
    }
    assert mounts_by_path(d)["/dev/shm"]["name"] == "dshm"
    d = render_deployment(make_pipeline(engine={"shmSize": "8Gi"}))
    assert volumes_by_name(d)["dshm"]["emptyDir"]["sizeLimit"] == "8Gi"


# modelCache -> the pod's model-cache volume source (the same for both engines)
CACHE_SOURCES: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({}, {"emptyDir": {}}),
    ({"pvc": {"size": "10Gi"}}, {"persistentVolumeClaim": {"claimName": "demo-model-cache"}}),
    ({"existingClaim": "shared-hf"}, {"persistentVolumeClaim": {"claimName": "shared-hf"}}),
]


@pytest.mark.parametrize(("cache", "source"), CACHE_SOURCES, ids=["emptyDir", "pvc", "existingClaim"])
def test_model_cache_is_mounted_at_the_hf_cache(
    make_pipeline: MakePipeline, cache: dict[str, Any], source: dict[str, Any]
) -> None:
    d = render_deployment(make_pipeline(modelCache=cache))
    assert volumes_by_name(d)["model-cache"] == {"name": "model-cache", **source}
    assert HF_CACHE_PATH == "/root/.cache/huggingface"
    assert mounts_by_path(d)[HF_CACHE_PATH] == {"name": "model-cache", "mountPath": HF_CACHE_PATH}
    assert env_by_name(d)["HF_HOME"] == {"name": "HF_HOME", "value": HF_CACHE_PATH}


def test_every_mount_has_a_volume(make_pipeline: MakePipeline, full_spec: dict[str, Any]) -> None:
    d = render_deployment(make_pipeline(**full_spec))
    volumes = volumes_by_name(d)
    assert len(volumes) == len(pod_spec(d)["volumes"])  # names are unique
    for mount in container(d)["volumeMounts"]:
        assert mount["name"] in volumes


@pytest.mark.parametrize("strategy", ["BlueGreen", "Surge"])
def test_chat_template_is_mounted_and_passed(make_pipeline: MakePipeline, strategy: str) -> None:
    pipeline = make_pipeline(
        model={"chatTemplate": "{{ messages[0]['content'] }}"}, rollout={"strategy": strategy}
    )
    d = render_deployment(pipeline)
    volume = volumes_by_name(d)["chat-template"]
    # BlueGreen: each revision mounts its own copy, so a candidate's new text never reaches a serving pod
    expected = f"demo-{revision(pipeline)}-chat-template" if strategy == "BlueGreen" else "demo-chat-template"
    assert volume["configMap"]["name"] == expected
    assert volume["configMap"]["items"] == [{"key": "template.jinja", "path": "template.jinja"}]
    mount = mounts_by_path(d)["/etc/rerank/chat-template"]
    assert mount == {"name": "chat-template", "mountPath": "/etc/rerank/chat-template", "readOnly": True}
    args = container(d)["args"]
    assert args[args.index("--chat-template") + 1] == "/etc/rerank/chat-template/template.jinja"


def test_no_chat_template_volume_without_a_template(make_pipeline: MakePipeline) -> None:
    d = render_deployment(make_pipeline())
    assert "chat-template" not in volumes_by_name(d)
    assert "--chat-template" not in container(d)["args"]


# ------------------------------------------------------------------------------------- secrets
def test_secrets_come_from_secret_key_refs(make_pipeline: MakePipeline) -> None:
    d = render_deployment(
        make_pipeline(
            hfTokenSecretRef={"name": "hf-secret", "key": "token"},
            apiKeySecretRef={"name": "api-secret", "key": "key"},
        )
    )
    env = env_by_name(d)
    assert env["HF_TOKEN"] == {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf-secret", "key": "token"}},
    }
    assert env["VLLM_API_KEY"] == {
        "name": "VLLM_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "api-secret", "key": "key"}},
    }
    args = container(d)["args"]
    assert not any(a.startswith("--api-key") for a in args)
    assert not any("api-secret" in a or "hf-secret" in a for a in args)


def test_no_secret_env_without_refs(make_pipeline: MakePipeline) -> None:
    env = env_by_name(render_deployment(make_pipeline()))
    assert "HF_TOKEN" not in env
    assert "VLLM_API_KEY" not in env
    assert "HUGGING_FACE_HUB_TOKEN" not in env


def test_user_env_is_appended_verbatim(make_pipeline: MakePipeline, full_spec: dict[str, Any]) -> None:
    env = container(render_deployment(make_pipeline(**full_spec)))["env"]
    assert env[-2:] == full_spec["engine"]["env"]
    assert [e["name"] for e in env[:3]] == ["HF_HOME", "HF_TOKEN", "VLLM_API_KEY"]


def test_no_value_anywhere_looks_like_a_secret_value(
    make_pipeline: MakePipeline, full_spec: dict[str, Any]
) -> None:
    """Only references: no ``value`` on the token/key env vars, and no Secret objects rendered."""
    manifests = render_all(make_pipeline(**full_spec))
    assert "Secret" not in {m["kind"] for m in manifests}
    env = env_by_name(render_deployment(make_pipeline(**full_spec)))
    assert "value" not in env["HF_TOKEN"]
    assert "value" not in env["VLLM_API_KEY"]


# -------------------------------------------------------------------------------------- probes
def test_probes_on_health(make_pipeline: MakePipeline) -> None:
    c = container(render_deployment(make_pipeline()))
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[kind]["httpGet"] == {"path": "/health", "port": "http"}, kind
        assert c[kind]["timeoutSeconds"] >= 1
    assert c["readinessProbe"]["periodSeconds"] == 5
    assert c["livenessProbe"]["periodSeconds"] == 10
    startup = c["startupProbe"]
    # the default budget (1800 s) covers downloading and loading the weights
    assert startup["periodSeconds"] * startup["failureThreshold"] == 1800


@pytest.mark.parametrize("budget", [30, 35, 600, 1800, 86400])
def test_startup_failure_threshold_covers_the_budget(make_pipeline: MakePipeline, budget: int) -> None:
    startup = container(render_deployment(make_pipeline(engine={"startupTimeoutSeconds": budget})))[
        "startupProbe"
    ]
    assert startup["failureThreshold"] == math.ceil(budget / startup["periodSeconds"])
    assert startup["periodSeconds"] * startup["failureThreshold"] >= budget
    assert startup["periodSeconds"] * (startup["failureThreshold"] - 1) < budget


def test_termination_grace(make_pipeline: MakePipeline) -> None:
    assert pod_spec(render_deployment(make_pipeline()))["terminationGracePeriodSeconds"] >= 30


# ---------------------------------------------------------------------------------- scheduling
def test_scheduling_fields(make_pipeline: MakePipeline, full_spec: dict[str, Any]) -> None:
    pod = pod_spec(render_deployment(make_pipeline(**full_spec)))
    assert pod["nodeSelector"] == {"pool": "gpu-a100"}
    assert pod["affinity"] == full_spec["affinity"]
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["priorityClassName"] == "high-priority"
    assert pod["tolerations"] == [
        {
            "key": "dedicated",
            "operator": "Equal",
            "value": "rerank",
            "effect": "NoExecute",
            "tolerationSeconds": 60,
        },
        {"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    ]


def test_unset_scheduling_fields_are_left_out(make_pipeline: MakePipeline) -> None:
    pod = pod_spec(render_deployment(make_pipeline()))
    for key in ("nodeSelector", "affinity", "runtimeClassName", "priorityClassName"):
        assert key not in pod
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_gpu_toleration_is_not_duplicated(make_pipeline: MakePipeline) -> None:
    mine = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    tolerations = pod_spec(render_deployment(make_pipeline(tolerations=[mine])))["tolerations"]
    assert tolerations == [mine]


# --------------------------------------------------------------------------------- config hash
def template_hash(deployment: dict[str, Any]) -> str:
    value: str = deployment["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
    return value


def test_config_hash_annotation(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline()
    assert CONFIG_HASH_ANNOTATION == "rerank.dev/config-hash"
    assert template_hash(render_deployment(pipeline)) == config_hash(pipeline)
    assert len(config_hash(pipeline)) == 16
    int(config_hash(pipeline), 16)


CHANGES_THAT_ROLL: list[tuple[str, dict[str, Any]]] = [
    ("model", {"model": {"name": "BAAI/bge-reranker-large"}}),
    ("served-name", {"model": {"servedName": "other"}}),
    ("revision", {"model": {"revision": "abc"}}),
    ("dtype", {"model": {"dtype": "half"}}),
    ("max-model-len", {"model": {"maxModelLen": 1024}}),
    ("hf-overrides", {"model": {"hfOverrides": {"architectures": ["X"]}}}),
    ("template-text", {"model": {"chatTemplate": "B {{ messages }}"}}),
    ("image", {"engine": {"image": "vllm/vllm-openai:v0.10.0"}}),
    ("extra-args", {"engine": {"extraArgs": ["--seed", "1"]}}),
    ("gpu-memory", {"engine": {"gpuMemoryUtilization": 0.5}}),
    ("hf-token-ref", {"hfTokenSecretRef": {"name": "other", "key": "token"}}),
    ("api-key-ref", {"apiKeySecretRef": {"name": "api", "key": "other"}}),
    ("port", {"engine": {"port": 8001}}),
]

CHANGES_THAT_DO_NOT_ROLL: list[tuple[str, dict[str, Any]]] = [
    ("probe-interval", {"probe": {"intervalSeconds": 120}}),
    ("probe-thresholds", {"probe": {"failureThreshold": 10, "successThreshold": 3}}),
    ("probe-documents", {"probe": {"query": "q", "documents": ["a", "b"]}}),
    ("publish", {"publish": {"namespaces": ["apps"], "maxClientBatchSize": 8, "credential": "c"}}),
    ("publish-name", {"publish": {"configMapName": "x", "functionName": "f", "inputField": "text"}}),
    ("truncate", {"model": {"truncatePromptTokens": 256}}),
    ("replicas", {"replicas": 4}),
    ("drain", {"rollout": {"drainSeconds": 600}}),
]

BASE: dict[str, Any] = {
    "model": {"chatTemplate": "A {{ messages }}"},
    "hfTokenSecretRef": {"name": "hf", "key": "token"},
    "apiKeySecretRef": {"name": "api", "key": "key"},
}


def merged(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in change.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


@pytest.mark.parametrize("change", [c[1] for c in CHANGES_THAT_ROLL], ids=[c[0] for c in CHANGES_THAT_ROLL])
def test_relevant_change_changes_the_hash(make_pipeline: MakePipeline, change: dict[str, Any]) -> None:
    before = render_deployment(make_pipeline(**BASE))
    after = render_deployment(make_pipeline(**merged(BASE, change)))
    assert template_hash(before) != template_hash(after)
    # BlueGreen: a change of what scores documents is a new revision, so a Deployment of its own
    assert before["metadata"]["name"] != after["metadata"]["name"]


@pytest.mark.parametrize(
    "change", [c[1] for c in CHANGES_THAT_DO_NOT_ROLL], ids=[c[0] for c in CHANGES_THAT_DO_NOT_ROLL]
)
def test_unrelated_change_keeps_the_pod_template(make_pipeline: MakePipeline, change: dict[str, Any]) -> None:
    before = render_deployment(make_pipeline(**BASE))
    after = render_deployment(make_pipeline(**merged(BASE, change)))
    assert template_hash(before) == template_hash(after)
    assert before["spec"]["template"] == after["spec"]["template"]
    assert before["metadata"]["name"] == after["metadata"]["name"]  # the same revision


def test_switching_between_surge_and_replace_keeps_the_pod_template(make_pipeline: MakePipeline) -> None:
    """Only the rolling-update parameters differ: the pods stay as they are."""
    surge = render_deployment(make_pipeline(**merged(BASE, {"rollout": {"strategy": "Surge"}})))
    replace = render_deployment(make_pipeline(**merged(BASE, {"rollout": {"strategy": "Replace"}})))
    assert surge["metadata"]["name"] == replace["metadata"]["name"] == "demo-reranker"
    assert surge["spec"]["template"] == replace["spec"]["template"]
    assert surge["spec"]["selector"] == replace["spec"]["selector"]
    assert surge["spec"]["strategy"] != replace["spec"]["strategy"]


def test_hash_ignores_metadata(make_pipeline: MakePipeline) -> None:
    a = make_pipeline(metadata={"uid": "1", "generation": 1, "labels": {"x": "y"}})
    b = make_pipeline(metadata={"uid": "2", "generation": 9})
    assert config_hash(a) == config_hash(b)


# ------------------------------------------------------------------------------------------ TEI
TEI: dict[str, Any] = {"kind": "tei"}


def test_tei_container_runs_the_router(make_pipeline: MakePipeline, tei_spec: dict[str, Any]) -> None:
    pipeline = make_pipeline(**tei_spec)
    c = container(render_deployment(pipeline))
    assert c["name"] == "tei"
    assert c["image"] == "ghcr.io/huggingface/text-embeddings-inference:hopper-1.8"
    assert c["command"] == ["text-embeddings-router"]
    assert c["args"] == router_args(pipeline)
    args = c["args"]
    assert args[args.index("--model-id") + 1] == "BAAI/bge-reranker-large"
    assert args[args.index("--port") + 1] == "8080"
    assert args[args.index("--max-client-batch-size") + 1] == "16"  # publish.maxClientBatchSize
    assert "--runner" not in args and "vllm" not in c["command"]


@pytest.mark.parametrize(
    ("gpus", "image"), [(1, DEFAULT_TEI_IMAGE), (4, DEFAULT_TEI_IMAGE), (0, DEFAULT_TEI_CPU_IMAGE)]
)
def test_tei_default_image_follows_the_gpus(make_pipeline: MakePipeline, gpus: int, image: str) -> None:
    c = container(render_deployment(make_pipeline(engine=TEI, resources={"gpus": gpus})))
    assert c["image"] == image
    assert image.startswith("ghcr.io/huggingface/text-embeddings-inference:")
    mine = container(
        render_deployment(make_pipeline(engine={**TEI, "image": "my/tei:1"}, resources={"gpus": gpus}))
    )
    assert mine["image"] == "my/tei:1"


def test_tei_ports_api_and_metrics(make_pipeline: MakePipeline) -> None:
    c = container(render_deployment(make_pipeline(engine={**TEI, "port": 8080})))
    assert c["ports"] == [
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9000, "protocol": "TCP"},
    ]
    args = c["args"]
    assert args[args.index("--prometheus-port") + 1] == "9000"
    # the two ports never collide
    c = container(render_deployment(make_pipeline(engine={**TEI, "port": 9000})))
    assert [p["containerPort"] for p in c["ports"]] == [9000, 9001]


def test_vllm_has_no_separate_metrics_port(make_pipeline: MakePipeline) -> None:
    assert [p["name"] for p in container(render_deployment(make_pipeline()))["ports"]] == ["http"]


@pytest.mark.parametrize(("cache", "source"), CACHE_SOURCES, ids=["emptyDir", "pvc", "existingClaim"])
def test_tei_model_cache_is_mounted_at_data(
    make_pipeline: MakePipeline, cache: dict[str, Any], source: dict[str, Any]
) -> None:
    pipeline = make_pipeline(engine=TEI, modelCache=cache)
    d = render_deployment(pipeline)
    assert volumes_by_name(d)["model-cache"] == {"name": "model-cache", **source}
    assert TEI_CACHE_PATH == "/data"
    assert mounts_by_path(d)[TEI_CACHE_PATH] == {"name": "model-cache", "mountPath": TEI_CACHE_PATH}
    assert HF_CACHE_PATH not in mounts_by_path(d)
    env = env_by_name(d)
    assert env["HUGGINGFACE_HUB_CACHE"] == {"name": "HUGGINGFACE_HUB_CACHE", "value": TEI_CACHE_PATH}
    assert "HF_HOME" not in env
    # the operator's own PVC is the same for both engines
    assert render_cache_pvc(pipeline) == render_cache_pvc(make_pipeline(modelCache=cache))


def test_tei_secrets_come_from_secret_key_refs(make_pipeline: MakePipeline) -> None:
    d = render_deployment(
        make_pipeline(
            engine=TEI,
            hfTokenSecretRef={"name": "hf-secret", "key": "token"},
            apiKeySecretRef={"name": "api-secret", "key": "key"},
        )
    )
    env = env_by_name(d)
    token = {"secretKeyRef": {"name": "hf-secret", "key": "token"}}
    assert env["HF_TOKEN"] == {"name": "HF_TOKEN", "valueFrom": token}
    assert env["HF_API_TOKEN"] == {"name": "HF_API_TOKEN", "valueFrom": token}  # TEI before 1.6
    assert env["API_KEY"] == {
        "name": "API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "api-secret", "key": "key"}},
    }
    assert "VLLM_API_KEY" not in env
    for name in ("HF_TOKEN", "HF_API_TOKEN", "API_KEY"):
        assert "value" not in env[name]
    args = container(d)["args"]
    assert not any(a.startswith(("--api-key", "--hf-token", "--hf-api-token")) for a in args)
    assert not any("api-secret" in a or "hf-secret" in a for a in args)


def test_tei_env_order_and_user_env(make_pipeline: MakePipeline, tei_spec: dict[str, Any]) -> None:
    env = container(render_deployment(make_pipeline(**tei_spec)))["env"]
    assert [e["name"] for e in env] == ["HUGGINGFACE_HUB_CACHE", "API_KEY", "RUST_LOG"]
    assert env[-1] == {"name": "RUST_LOG", "value": "info"}


def test_tei_no_secret_env_without_refs(make_pipeline: MakePipeline) -> None:
    env = env_by_name(render_deployment(make_pipeline(engine=TEI)))
    assert set(env) == {"HUGGINGFACE_HUB_CACHE"}


def test_tei_probes_on_health(make_pipeline: MakePipeline) -> None:
    c = container(render_deployment(make_pipeline(engine=TEI)))
    vllm = container(render_deployment(make_pipeline()))
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[kind]["httpGet"] == {"path": "/health", "port": "http"}, kind
        assert c[kind] == vllm[kind]


def test_tei_has_no_chat_template(make_pipeline: MakePipeline) -> None:
    pipeline = make_pipeline(engine=TEI)
    d = render_deployment(pipeline)
    assert "chat-template" not in volumes_by_name(d)
    assert "/etc/rerank/chat-template" not in mounts_by_path(d)
    assert render_chat_template(pipeline) is None


SHARED: dict[str, Any] = {
    "replicas": 3,
    "resources": {"gpus": 2, "gpuResourceName": "amd.com/gpu", "requests": {"cpu": "2", "memory": "8Gi"}},
    "nodeSelector": {"pool": "gpu-a100"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "rerank", "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
    "runtimeClassName": "nvidia",
    "priorityClassName": "high",
    "modelCache": {"existingClaim": "shared-hf"},
    "engine": {"shmSize": "4Gi", "startupTimeoutSeconds": 900, "imagePullPolicy": "Always"},
}


@pytest.mark.parametrize("strategy", ["BlueGreen", "Surge", "Replace"])
def test_tei_shares_the_pod_shape_with_vllm(make_pipeline: MakePipeline, strategy: str) -> None:
    """Only the container's engine-specific parts differ: scheduling, GPUs, volumes, rollout, budget."""
    vllm_spec = {**copy.deepcopy(SHARED), "rollout": {"strategy": strategy}}
    tei_spec = copy.deepcopy(vllm_spec)
    tei_spec["engine"]["kind"] = "tei"
    vllm, tei = make_pipeline(**vllm_spec), make_pipeline(**tei_spec)
    dv, dt = render_deployment(vllm), render_deployment(tei)
    pv, pt = pod_spec(dv), pod_spec(dt)
    assert {k: v for k, v in pv.items() if k != "containers"} == {
        k: v for k, v in pt.items() if k != "containers"
    }
    cv, ct = container(dv), container(dt)
    for key in ("resources", "imagePullPolicy", "startupProbe", "readinessProbe", "livenessProbe"):
        assert cv[key] == ct[key], key
    assert cv["resources"]["limits"] == {"amd.com/gpu": 2}
    assert {"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pt["tolerations"]
    for key in ("strategy", "replicas", "progressDeadlineSeconds", "revisionHistoryLimit"):
        assert dv["spec"][key] == dt["spec"][key], key
    assert render_disruption_budget(vllm) == render_disruption_budget(tei) is not None
    if strategy == "BlueGreen":  # each its own revision, named after it
        assert dt["metadata"]["name"] == f"demo-{revision(tei)}" != dv["metadata"]["name"]
        assert dt["spec"]["template"]["metadata"]["labels"][REVISION_LABEL] == revision(tei)
    else:
        assert dt["metadata"]["name"] == dv["metadata"]["name"] == "demo-reranker"
    assert dt["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] == config_hash(tei)


# ------------------------------------------------------------------------------- determinism
def test_render_is_deterministic_and_pure(make_pipeline: MakePipeline, full_spec: dict[str, Any]) -> None:
    pipeline = make_pipeline(metadata={"uid": "abc"}, **full_spec)
    before = pipeline.model_dump()
    first = render_all(pipeline)
    second = render_all(pipeline)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert pipeline.model_dump() == before
    # an equal pipeline built separately renders identically
    assert render_all(make_pipeline(metadata={"uid": "abc"}, **full_spec)) == first


def test_mutating_the_output_does_not_touch_the_spec(
    make_pipeline: MakePipeline, full_spec: dict[str, Any]
) -> None:
    pipeline = make_pipeline(**full_spec)
    before = pipeline.model_dump()
    for manifest in render_all(pipeline):
        scramble(manifest)
    assert pipeline.model_dump() == before
    assert render_deployment(pipeline) == render_deployment(make_pipeline(**full_spec))


def scramble(node: Any) -> None:
    """Mutate every container in a manifest in place (what a caller like kopf.adopt might do)."""
    if isinstance(node, dict):
        for value in list(node.values()):
            scramble(value)
        node["__scrambled__"] = True
    elif isinstance(node, list):
        for value in node:
            scramble(value)
        node.append("__scrambled__")

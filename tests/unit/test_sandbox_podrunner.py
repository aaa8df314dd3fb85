"""The "process kubelet": a rendered container's command/args/env as a local process description."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rerank_operator.models import HF_CACHE_PATH, RerankPipeline
from rerank_operator.render import render_chat_template, render_deployment
from rerank_operator.render.vllm_args import CHAT_TEMPLATE_DIR, CHAT_TEMPLATE_FILE
from rerank_operator.sandbox.podrunner import (
    PodSpecError,
    local_container,
    map_paths,
    project_config_map,
    resolve_env,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _example(name: str) -> RerankPipeline:
    body = next(d for d in yaml.safe_load_all((EXAMPLES / name).read_text()) if d)
    return RerankPipeline.from_body(body)


def test_env_is_resolved_like_the_kubelet_does() -> None:
    secrets = {("secret", "key", "api-key"): "s3cret", ("configmap", "cm", "level"): "debug"}
    env = resolve_env(
        [
            {"name": "A", "value": "1"},
            {"name": "B", "value": "$(A)-x-$$(A)-$(UNKNOWN)"},
            {"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "key", "key": "api-key"}}},
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "level"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}}},
        ],
        lambda kind, name, key: secrets.get((kind, name, key)),
    )
    assert env == {"A": "1", "B": "1-x-$(A)-$(UNKNOWN)", "VLLM_API_KEY": "s3cret", "LEVEL": "debug"}


def test_a_missing_secret_or_an_unsupported_source_is_named() -> None:
    with pytest.raises(PodSpecError, match=r"env HF_TOKEN: secretKeyRef hf/token not found"):
        resolve_env(
            [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}],
            lambda *a: None,
        )
    with pytest.raises(PodSpecError, match="env POD: only value"):
        resolve_env(
            [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}], lambda *a: None
        )


def test_paths_under_a_mount_are_mapped_and_nothing_else() -> None:
    mounts = {"/root/.cache/huggingface": Path("/tmp/hf"), "/etc/rerank/chat-template": Path("/tmp/ct")}
    assert map_paths("/root/.cache/huggingface", mounts) == "/tmp/hf"
    assert map_paths("/etc/rerank/chat-template/template.jinja", mounts) == "/tmp/ct/template.jinja"
    assert map_paths("--chat-template=/etc/rerank/chat-template/t.j", mounts) == "--chat-template=/tmp/ct/t.j"
    assert map_paths("/root/.cache/huggingface-other", mounts) == "/root/.cache/huggingface-other"
    assert map_paths("BAAI/bge-reranker-base", mounts) == "BAAI/bge-reranker-base"


def test_config_map_projection_honours_items(tmp_path: Path) -> None:
    project_config_map({"a": "1", "b": "2"}, [{"key": "b", "path": "sub/b.txt"}], tmp_path / "v")
    assert [p.relative_to(tmp_path / "v").as_posix() for p in (tmp_path / "v").rglob("*") if p.is_file()] == [
        "sub/b.txt"
    ]
    with pytest.raises(PodSpecError, match="key 'c'"):
        project_config_map({"a": "1"}, [{"key": "c"}], tmp_path / "w")


def test_the_rendered_qwen3_deployment_runs_with_its_template_and_cache_mapped(tmp_path: Path) -> None:
    pipeline = _example("qwen3-reranker.yaml")
    deployment = render_deployment(pipeline)
    template_cm = render_chat_template(pipeline)
    assert template_cm is not None
    hf_home = tmp_path / "hf-home"
    local = local_container(
        deployment,
        lookup=lambda *a: None,
        config_map_data=lambda name: template_cm["data"] if name == template_cm["metadata"]["name"] else None,
        volume_dirs={"model-cache": hf_home},
        scratch=tmp_path / "scratch",
    )
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    # the command and args as rendered, only the mounted path rewritten
    template_local = tmp_path / "scratch" / "volumes" / "chat-template" / CHAT_TEMPLATE_FILE
    expected = [*container["command"], *container["args"]]
    expected[expected.index(f"{CHAT_TEMPLATE_DIR}/{CHAT_TEMPLATE_FILE}")] = str(template_local)
    assert local.argv == expected
    assert template_local.read_text() == pipeline.spec.model.chat_template
    assert local.env["HF_HOME"] == str(hf_home)
    assert local.mounts[HF_CACHE_PATH] == hf_home
    assert local.mounts["/dev/shm"] == Path("/dev/shm")
    assert local.port == pipeline.spec.engine.port


def test_a_pvc_must_be_mapped_and_the_api_key_comes_from_the_cluster(tmp_path: Path) -> None:
    pipeline = _example("cached-private.yaml")
    deployment = render_deployment(pipeline)
    values = {("secret", "hf-token", "token"): "hf_x", ("secret", "reranker-api-key", "api-key"): "k"}

    def run(volume_dirs: dict[str, Path]) -> dict[str, str]:
        return local_container(
            deployment,
            lookup=lambda kind, name, key: values.get((kind, name, key)),
            config_map_data=lambda name: None,
            volume_dirs=volume_dirs,
            scratch=tmp_path,
        ).env

    with pytest.raises(PodSpecError, match="volume model-cache: map it"):
        run({})
    env = run({"model-cache": tmp_path / "hf"})
    assert env["HF_TOKEN"] == "hf_x" and env["VLLM_API_KEY"] == "k"

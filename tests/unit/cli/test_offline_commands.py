"""The offline commands: ``render``, ``validate`` and ``crd``, and the examples they are shown with."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from rerank_operator.cli import main
from rerank_operator.models import RerankPipeline
from rerank_operator.models.crd import crd_files
from rerank_operator.models.quirks import quirk_for
from rerank_operator.render import revision, selector_labels
from rerank_operator.render.naming import REVISION_LABEL

REPO_ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = REPO_ROOT / "examples"
CRD_FILE = REPO_ROOT / "crds" / "rerankpipelines.rerank.dev.yaml"
EXE = Path(sys.executable).with_name("rerank-operator")

HEADER = "apiVersion: rerank.dev/v1alpha1\nkind: RerankPipeline\n"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(tmp_path: Path, text: str, name: str = "pipeline.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def by_kind(manifests: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for m in manifests:
        out.setdefault(m["kind"], []).append(m)
    return out


# ------------------------------------------------------------------------------------- render
@pytest.mark.parametrize("example", ["minimal.yaml", "qwen3-reranker.yaml", "cached-private.yaml"])
def test_render_each_example(capsys: pytest.CaptureFixture[str], example: str) -> None:
    code, out, err = run(capsys, "render", "-f", str(EXAMPLES / example))
    assert code == 0, err
    assert out.startswith("---\n")
    manifests = [d for d in yaml.safe_load_all(out) if d is not None]
    kinds = by_kind(manifests)
    pipeline = load_example(example)
    [deployment] = kinds["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    if pipeline.spec.rollout.strategy == "BlueGreen":
        assert_blue_green_shape(pipeline, deployment, kinds["Service"])
    else:
        assert deployment["metadata"]["name"] == f"{pipeline.name}-reranker"
        [service] = kinds["Service"]
        assert service["metadata"]["name"] == f"{pipeline.name}-reranker"
        assert service["spec"]["selector"] == selector_labels(pipeline)
        assert REVISION_LABEL not in pod_labels
    for service in kinds["Service"]:
        assert service["spec"]["selector"].items() <= pod_labels.items()  # every Service reaches the pods
    assert kinds["ConfigMap"]
    published = [cm for cm in kinds["ConfigMap"] if "milvus-function.json" in cm.get("data", {})]
    assert published
    for m in manifests:
        assert m["apiVersion"]
        assert m["metadata"]["name"]
        assert "ownerReferences" not in m["metadata"]  # offline: no uid to own with


def assert_blue_green_shape(
    pipeline: RerankPipeline, deployment: dict[str, Any], services: list[dict[str, Any]]
) -> None:
    """BlueGreen offline: the revision's Deployment and its own Service (for the canary), then the
    stable Service (the endpoint) selecting that same revision, as after its switch."""
    rev = revision(pipeline)
    assert deployment["metadata"]["name"] == f"{pipeline.name}-{rev}"
    assert deployment["spec"]["selector"]["matchLabels"] == {**selector_labels(pipeline), REVISION_LABEL: rev}
    assert deployment["spec"]["template"]["metadata"]["labels"][REVISION_LABEL] == rev
    revision_service, stable = services
    assert revision_service["metadata"]["name"] == f"{pipeline.name}-{rev}"
    assert revision_service["metadata"]["labels"]["app.kubernetes.io/component"] == "canary"
    assert revision_service["metadata"]["labels"][REVISION_LABEL] == rev
    assert revision_service["spec"]["selector"] == {**selector_labels(pipeline), REVISION_LABEL: rev}
    assert stable["metadata"]["name"] == f"{pipeline.name}-reranker"
    assert stable["metadata"]["labels"]["app.kubernetes.io/component"] == "server"
    assert stable["spec"]["selector"] == revision_service["spec"]["selector"]
    assert stable["spec"]["ports"] == revision_service["spec"]["ports"]


def test_render_autoscaled_example(capsys: pytest.CaptureFixture[str]) -> None:
    """Acceptance of autoscaling: an HPA on the pipeline's Deployment, and no replicas in the Deployment."""
    code, out, err = run(capsys, "render", "-f", str(EXAMPLES / "autoscaled.yaml"))
    assert code == 0, err
    kinds = by_kind([d for d in yaml.safe_load_all(out) if d is not None])
    [deployment] = kinds["Deployment"]
    [hpa] = kinds["HorizontalPodAutoscaler"]
    assert "replicas" not in deployment["spec"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "vllm:num_requests_waiting"
    assert len(kinds["PodMonitor"]) == 1


def test_render_tei_example_runs_the_router(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "render", "-f", str(EXAMPLES / "tei-bge.yaml"))
    assert code == 0, err
    manifests = [d for d in yaml.safe_load_all(out) if d is not None]
    kinds = by_kind(manifests)
    pipeline = load_example("tei-bge.yaml")
    assert pipeline.spec.engine.effective_kind == "tei"
    [deployment] = kinds["Deployment"]
    assert_blue_green_shape(pipeline, deployment, kinds["Service"])
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "tei"
    assert container["image"] == "ghcr.io/huggingface/text-embeddings-inference:1.8"  # GPU default
    assert container["command"] == ["text-embeddings-router"]
    args = container["args"]
    assert args[:2] == ["--model-id", "BAAI/bge-reranker-base"]
    assert args[args.index("--max-client-batch-size") + 1] == str(pipeline.spec.publish.max_client_batch_size)
    assert "--auto-truncate" in args
    assert {p["name"] for p in container["ports"]} == {"http", "metrics"}
    assert {e["name"] for e in container["env"]} == {"HUGGINGFACE_HUB_CACHE"}
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/dev/shm", "/data"}
    [monitor] = kinds["PodMonitor"]
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    assert [cm for cm in kinds["ConfigMap"] if "milvus-function.json" in cm.get("data", {})]


def test_render_external_example_deploys_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "render", "-f", str(EXAMPLES / "external-vllm.yaml"))
    assert code == 0, err
    manifests = [d for d in yaml.safe_load_all(out) if d is not None]
    assert manifests
    assert {m["kind"] for m in manifests} == {"ConfigMap"}  # only the published config
    assert "milvus-function.json" in manifests[0]["data"]
    assert "RerankPipeline/bge-m3-kserve: spec.external" in err
    assert "deploys nothing" in err
    pipeline = load_example("external-vllm.yaml")
    assert pipeline.spec.external is not None
    assert pipeline.spec.external.api_key_secret_ref is not None
    assert pipeline.spec.publish.credential
    assert "kserve-reranker-key" not in out  # the Secret is the canary's; Milvus gets the credential label


def test_render_minimal_in_detail(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "render", "-f", str(EXAMPLES / "minimal.yaml"))
    manifests = list(yaml.safe_load_all(out))
    # one pod: no budget; BlueGreen (the default): the revision's Service, then the stable one
    assert [m["kind"] for m in manifests] == ["Deployment", "Service", "Service", "ConfigMap"]
    assert_blue_green_shape(load_example("minimal.yaml"), manifests[0], manifests[1:3])
    [container] = manifests[0]["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["vllm", "serve"]
    assert container["args"][0] == "BAAI/bge-reranker-base"
    cm = manifests[3]
    # the published endpoint is the stable Service, never a revision's
    assert cm["data"]["endpoint"] == "http://bge-base-reranker.default.svc.cluster.local:8000"
    assert cm["data"]["ready"] == "false"


def test_render_qwen3_includes_the_template_configmap(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "render", "-f", str(EXAMPLES / "qwen3-reranker.yaml"))
    manifests = list(yaml.safe_load_all(out))
    source = yaml.safe_load((EXAMPLES / "qwen3-reranker.yaml").read_text(encoding="utf-8"))
    rev = revision(load_example("qwen3-reranker.yaml"))
    template_cm = next(m for m in manifests if m["metadata"]["name"] == f"qwen3-reranker-{rev}-chat-template")
    [deployment] = [m for m in manifests if m["kind"] == "Deployment"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["chat-template"]["configMap"]["name"] == template_cm["metadata"]["name"]
    # the multi-line template survives the YAML round trip byte for byte
    assert template_cm["data"]["template.jinja"] == source["spec"]["model"]["chatTemplate"]


def test_render_cached_private_has_pvc_and_every_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(capsys, "render", "-f", str(EXAMPLES / "cached-private.yaml"))
    kinds = by_kind(list(yaml.safe_load_all(out)))
    [pvc] = kinds["PersistentVolumeClaim"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["storageClassName"] == "standard-rwx"
    namespaces = [cm["metadata"]["namespace"] for cm in kinds["ConfigMap"]]
    assert namespaces == ["search", "shop-frontend", "support-bot"]
    assert "apikey" not in out.lower().replace("api-key", "")  # no secret value, only references


@pytest.mark.parametrize("how", ["flag", "env"])
def test_render_cluster_domain(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    argv = ["render", "-f", str(EXAMPLES / "minimal.yaml")]
    if how == "flag":
        argv += ["--cluster-domain", "corp.internal"]
    else:
        monkeypatch.setenv("RERANK_OPERATOR_CLUSTER_DOMAIN", "corp.internal")
    _, out, _ = run(capsys, *argv)
    cm = list(yaml.safe_load_all(out))[-1]
    assert cm["data"]["endpoint"] == "http://bge-base-reranker.default.svc.corp.internal:8000"


def test_render_from_stdin(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO((EXAMPLES / "minimal.yaml").read_text(encoding="utf-8")))
    code, out, _ = run(capsys, "render", "-f", "-")
    assert code == 0
    assert "kind: Deployment" in out


def test_render_several_pipelines_and_skips_other_documents(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = (
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: search}\n---\n"
        f"{HEADER}metadata: {{name: one}}\nspec: {{model: {{name: BAAI/bge-reranker-base}}}}\n---\n"
        f"{HEADER}metadata: {{name: two}}\nspec: {{model: {{name: BAAI/bge-reranker-large}}}}\n"
    )
    code, out, _ = run(capsys, "render", "-f", write(tmp_path, text))
    assert code == 0
    manifests = list(yaml.safe_load_all(out))
    pipelines = [
        RerankPipeline.from_body(d) for d in yaml.safe_load_all(text) if d["kind"] == "RerankPipeline"
    ]
    deployments = [m["metadata"]["name"] for m in manifests if m["kind"] == "Deployment"]
    assert deployments == [f"one-{revision(pipelines[0])}", f"two-{revision(pipelines[1])}"]
    services = [m["metadata"]["name"] for m in manifests if m["kind"] == "Service"]
    assert services == [
        f"one-{revision(pipelines[0])}",
        "one-reranker",
        f"two-{revision(pipelines[1])}",
        "two-reranker",
    ]
    assert "Namespace" not in out


def test_render_surge_pipeline_rolls_one_deployment_in_place(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = (
        f"{HEADER}metadata: {{name: one}}\n"
        "spec: {model: {name: BAAI/bge-reranker-base}, rollout: {strategy: Surge}}\n"
    )
    code, out, _ = run(capsys, "render", "-f", write(tmp_path, text))
    assert code == 0
    kinds = by_kind(list(yaml.safe_load_all(out)))
    assert [m["metadata"]["name"] for m in kinds["Deployment"]] == ["one-reranker"]
    [service] = kinds["Service"]
    assert service["metadata"]["name"] == "one-reranker"
    assert REVISION_LABEL not in service["spec"]["selector"]


def test_render_invalid_pipeline_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = f"{HEADER}metadata: {{name: bad}}\nspec: {{replicas: -1, model: {{name: BAAI/x}}}}\n"
    code, out, err = run(capsys, "render", "-f", write(tmp_path, text))
    assert code == 1
    assert out == ""
    assert "spec.replicas" in err


def test_render_without_pipelines_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = run(capsys, "render", "-f", write(tmp_path, "apiVersion: v1\nkind: ConfigMap\n"))
    assert code == 1
    assert out == ""
    assert "no RerankPipeline documents" in err


def test_render_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(EXAMPLES / "cached-private.yaml")
    assert run(capsys, "render", "-f", path)[1] == run(capsys, "render", "-f", path)[1]


# ----------------------------------------------------------------------------------- validate
@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_validate_accepts_every_example(capsys: pytest.CaptureFixture[str], example: str) -> None:
    code, out, err = run(capsys, "validate", "-f", str(EXAMPLES / example))
    assert code == 0, out
    assert out == ""
    assert "1 RerankPipeline(s) valid" in err


def test_the_three_examples_exist() -> None:
    names = {p.name for p in EXAMPLES.glob("*.yaml")}
    assert {"minimal.yaml", "qwen3-reranker.yaml", "cached-private.yaml"} <= names


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "replicas: -1\n  model: {name: BAAI/x}",
            "spec.replicas: Input should be greater than or equal to 0",
        ),
        ("model: {name: BAAI/x}\n  bogus: 1", "spec.bogus: unknown field"),
        (
            "model: {name: BAAI/x, truncatePromptTokens: -2}",
            "spec.model.truncatePromptTokens: Input should be",
        ),
        ("model: {name: BAAI/x}\n  model_cache: {}", "spec.model_cache: unknown field"),
        ("model: {name: Qwen/Qwen3-Reranker-0.6B}", "spec.model.chatTemplate: qwen3-reranker models need"),
        (
            "model: {name: BAAI/x}\n  external: {endpoint: 'https://rr.example.com'}\n"
            "  engine: {image: 'vllm/vllm-openai:v0.32.0'}",
            "spec.engine.image: configures the operator's own pods, and spec.external runs none",
        ),
        (
            "model: {name: BAAI/x, maxModelLen: 512}\n  engine: {kind: tei}",
            "spec.model.maxModelLen: only vLLM takes this setting, not TEI",
        ),
        (
            "model: {name: BAAI/x}\n  external: {endpoint: 'http://localhost:8000'}",
            "spec.external.endpoint: ",
        ),
    ],
    ids=[
        "negative-replicas",
        "unknown-field",
        "truncate-below-minus-one",
        "snake-case",
        "qwen3-no-template",
        "external-with-image",
        "tei-with-a-vllm-field",
        "external-localhost",
    ],
)
def test_validate_names_the_field(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, spec: str, expected: str
) -> None:
    text = f"{HEADER}metadata: {{name: bad}}\nspec:\n  {spec}\n"
    code, out, _ = run(capsys, "validate", "-f", write(tmp_path, text))
    assert code == 1
    [line] = out.splitlines()
    assert line.startswith(f"RerankPipeline/bad: {expected}"), line


def test_validate_prints_one_line_per_problem(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = (
        f"{HEADER}metadata: {{name: bad}}\nspec:\n"
        "  replicas: -1\n  bogus: true\n"
        "  model: {name: BAAI/x, truncatePromptTokens: -5}\n"
        "  engine: {port: 0}\n"
    )
    code, out, _ = run(capsys, "validate", "-f", write(tmp_path, text))
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 4
    fields = sorted(line.split(": ")[1] for line in lines)
    assert fields == ["spec.bogus", "spec.engine.port", "spec.model.truncatePromptTokens", "spec.replicas"]
    assert all(line.startswith("RerankPipeline/bad: ") for line in lines)


def test_validate_labels_documents_without_a_name(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = f"{HEADER}metadata: {{name: ok}}\nspec: {{model: {{name: BAAI/x}}}}\n---\n{HEADER}spec: {{}}\n"
    code, out, _ = run(capsys, "validate", "-f", write(tmp_path, text))
    assert code == 1
    assert out.splitlines() == [
        "document 2: metadata: Field required",
        "document 2: spec.model: Field required",
    ]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "No such file"),
        ("spec: [unclosed\n", "not valid YAML"),
        ("- a\n- b\n", "not a mapping"),
        ("", "no YAML documents"),
    ],
    ids=["missing", "not-yaml", "not-a-mapping", "empty"],
)
@pytest.mark.parametrize("command", ["validate", "render"])
def test_unreadable_files_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str, content: str | None, fragment: str
) -> None:
    path = str(tmp_path / "missing.yaml") if content is None else write(tmp_path, content)
    code, out, err = run(capsys, command, "-f", path)
    assert code == 2
    assert out == ""
    assert path in err
    assert fragment in err


def test_validate_without_pipelines_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "validate", "-f", write(tmp_path, "kind: Deployment\n"))
    assert code == 1
    assert "no RerankPipeline documents" in err


def test_filename_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["validate"])
    assert info.value.code == 2
    assert "-f/--filename" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------- crd
def test_crd_command_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "crd")
    assert code == 0
    assert out == "".join(crd_files().values())
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["CustomResourceDefinition"] * 2
    assert [d["spec"]["names"]["kind"] for d in docs] == ["RerankPipeline", "RerankPublishGrant"]


def test_crd_command_writes_the_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, "crd", "--output-dir", str(tmp_path / "out"))
    assert (code, out) == (0, "")
    assert {p.name: p.read_text() for p in (tmp_path / "out").iterdir()} == crd_files()


@pytest.mark.skipif(shutil.which("diff") is None, reason="needs diff(1)")
def test_crd_pipe_to_diff_is_empty() -> None:
    """Literally ``rerank-operator crd | diff - <(cat crds/*.yaml)``."""
    crd = subprocess.run([str(EXE), "crd"], capture_output=True, check=True, timeout=60)
    committed = b"".join(p.read_bytes() for p in sorted(CRD_FILE.parent.glob("*.yaml")))
    assert crd.stdout == committed, "crds/ is stale: run `make crd`"


def test_real_entrypoint_validate_exit_codes(tmp_path: Path) -> None:
    ok = subprocess.run(
        [str(EXE), "validate", "-f", str(EXAMPLES / "minimal.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    bad = write(
        tmp_path, f"{HEADER}metadata: {{name: bad}}\nspec: {{replicas: -1, model: {{name: BAAI/x}}}}\n"
    )
    failed = subprocess.run([str(EXE), "validate", "-f", bad], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    assert "RerankPipeline/bad: spec.replicas:" in failed.stdout


# ----------------------------------------------------------------------------------- examples
def load_example(name: str) -> RerankPipeline:
    docs = yaml.safe_load_all((EXAMPLES / name).read_text(encoding="utf-8"))
    [pipeline] = [d for d in docs if d["kind"] == "RerankPipeline"]
    return RerankPipeline.from_body(pipeline)


def test_the_cross_namespace_example_ships_the_grants_it_needs(capsys: pytest.CaptureFixture[str]) -> None:
    from rerank_operator.models.grant import consenting_grant

    pipeline = load_example("cached-private.yaml")
    docs = list(yaml.safe_load_all((EXAMPLES / "cached-private.yaml").read_text(encoding="utf-8")))
    for ns in pipeline.spec.publish.namespaces:
        grants = [d for d in docs if d["kind"] == "RerankPublishGrant" and d["metadata"]["namespace"] == ns]
        assert consenting_grant(grants, pipeline.namespace, pipeline.name), ns
    code, _, err = run(capsys, "validate", "-f", str(EXAMPLES / "cached-private.yaml"))
    assert code == 0 and "2 RerankPublishGrant(s) valid" in err


def test_validate_names_the_field_of_a_bad_grant(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = "apiVersion: rerank.dev/v1alpha1\nkind: RerankPublishGrant\nmetadata: {name: g, namespace: apps}\n"
    code, out, _ = run(capsys, "validate", "-f", write(tmp_path, text + "spec: {from: [{namespace: ML}]}\n"))
    assert code == 1
    assert out.startswith("RerankPublishGrant/g: spec.from[0].namespace:"), out


def test_qwen3_example_spells_out_the_default_overrides() -> None:
    model = load_example("qwen3-reranker.yaml").spec.model
    assert model.name == "Qwen/Qwen3-Reranker-0.6B"
    quirk = quirk_for(model.name)
    assert quirk is not None
    # written out explicitly, and exactly what the operator would default (YAML did not turn "no" into False)
    assert model.hf_overrides == quirk.hf_overrides
    assert model.chat_template


def test_qwen3_example_template_renders_a_yes_no_prompt() -> None:
    jinja2_sandbox = pytest.importorskip("jinja2.sandbox", reason="jinja2 renders the chat template")
    template = load_example("qwen3-reranker.yaml").spec.model.chat_template
    assert template is not None
    # rendered the way Hugging Face tokenizers (and so vLLM) render chat templates
    env = jinja2_sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    messages = [
        {"role": "query", "content": "What is the capital of France?"},
        {"role": "document", "content": "Paris is the capital of France."},
    ]
    prompt = env.from_string(template).render(messages=messages)
    assert prompt.startswith("<|im_start|>system\n")
    assert '"yes"' in prompt
    assert '"no"' in prompt
    assert "<Query>: What is the capital of France?\n" in prompt
    assert "<Document>: Paris is the capital of France.<|im_end|>" in prompt
    assert prompt.index("<Query>") < prompt.index("<Document>")
    # the score is read from the very next token after the empty think block
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    # roles are honoured even if vLLM were to send the document first
    swapped = env.from_string(template).render(messages=list(reversed(messages)))
    assert swapped == prompt


def test_cached_private_example_uses_every_production_feature() -> None:
    spec = load_example("cached-private.yaml").spec
    assert spec.model_cache.pvc is not None
    assert spec.model_cache.pvc.storage_class_name
    assert spec.model_cache.pvc.access_modes == ["ReadWriteMany"]
    assert spec.hf_token_secret_ref is not None
    assert spec.api_key_secret_ref is not None
    assert spec.publish.credential
    assert len(spec.publish.namespaces) >= 1
    assert spec.tolerations
    assert spec.node_selector
    assert spec.resources.requests is not None
    assert spec.resources.requests.cpu is not None
    assert spec.resources.requests.memory is not None
    assert spec.resources.limits is not None
    assert spec.replicas > 1  # so the shared (ReadWriteMany) cache matters


def test_examples_readme_mentions_every_example() -> None:
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    for path in EXAMPLES.glob("*.yaml"):
        assert path.name in readme


def test_run_refuses_namespace_patterns_before_starting(capsys: pytest.CaptureFixture[str]) -> None:
    """Each namespace is watched by name: a pattern would silently watch nothing."""
    assert main(["run", "-n", "search", "-n", "team-*"]) == 2
    assert "exact names, not patterns: team-*" in capsys.readouterr().err

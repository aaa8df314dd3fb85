"""BlueGreen on the real control plane: what kube-proxy is told, read from the EndpointSlices.

The EndpointSlice controller (kube-controller-manager) turns the stable Service's selector into the
endpoints kube-proxy routes to. A poller records them throughout a model change, together with the
Service's selector and the published ConfigMap, one ``kubectl get`` per sample (bounded in count and
time). Pods are kwok's; each revision's pods are named after its Deployment, ``<name>-<revision>-...``.

The canary reaches the revisions through host overrides: every Service of a pipeline goes to a healthy
stand-in, except one revision's own Service, sent to a stand-in that ranks wrongly.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from operator_support import (
    OperatorProcess,
    condition,
    get_json,
    operator_for,
    pipeline_manifest,
    service_host,
    wait_until,
)

from rerank_operator.models import RerankPipeline
from rerank_operator.render import revision
from rerank_operator.sandbox import ClusterClient
from rerank_operator.standin.server import StandinServer

SUFFIX = uuid.uuid4().hex[:6]
NS = f"bluegreen-{SUFFIX}"
SWITCH, FAILING = "switch", "failing"
SERVED = "BAAI/bge-reranker-base"
TIMEOUT = 90
DRAIN = 6
BLUE_GREEN = {"strategy": "BlueGreen", "drainSeconds": DRAIN}
MAX_SAMPLES = 3000  # the poller's bound; at ~0.1 s per sample, minutes


def manifest(name: str, max_model_len: int) -> dict[str, Any]:
    return pipeline_manifest(
        name, NS, replicas=2, rollout=BLUE_GREEN, model={"name": SERVED, "maxModelLen": max_model_len}
    )


def revision_of(body: dict[str, Any]) -> str:
    return revision(RerankPipeline.from_body(body))


BAD = manifest(FAILING, 256)  # its revision's Service answers wrongly


@pytest.fixture(scope="module")
def standins() -> Iterator[tuple[StandinServer, StandinServer]]:
    with StandinServer(served_model=SERVED) as good, StandinServer(served_model=SERVED) as bad:
        bad.set_fault("shuffled")
        yield good, bad


@pytest.fixture(scope="module")
def operator(
    cluster: ClusterClient,
    standins: tuple[StandinServer, StandinServer],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    good, bad = standins
    overrides = {service_host(n, NS): f"127.0.0.1:{good.port}" for n in (SWITCH, FAILING, ADOPT, KILLED)}
    overrides[f"{FAILING}-{revision_of(BAD)}.{NS}.svc.cluster.local:8000"] = f"127.0.0.1:{bad.port}"
    with operator_for(cluster, [NS], overrides, tmp_path_factory.mktemp("bluegreen-operator-logs")) as op:
        yield op


@dataclass
class Sample:
    at: float
    ready: dict[str, list[str]]  # revision -> ready endpoint pods behind the stable Service
    selected: str | None  # the revision in the stable Service's selector
    published: dict[str, str]  # the published ConfigMap's data


@dataclass
class Poller:
    """Samples the stable Service, its EndpointSlices and the published ConfigMap until stopped."""

    cluster: ClusterClient
    name: str
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Poller:
        self._thread = threading.Thread(target=self._run, name=f"poll-{self.name}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)

    def _run(self) -> None:
        service = f"{self.name}-reranker"
        deadline = time.monotonic() + 600
        while not self._stop.is_set() and len(self.samples) < MAX_SAMPLES and time.monotonic() < deadline:
            proc = self.cluster.kubectl(
                "get", "endpointslices,services,configmaps", "-n", NS, "-o", "json", check=False
            )
            if proc.returncode == 0:
                self.samples.append(self._sample(json.loads(proc.stdout)["items"], service))
            time.sleep(0.05)

    def _sample(self, items: list[dict[str, Any]], service: str) -> Sample:
        ready: dict[str, list[str]] = {}
        selected = None
        published: dict[str, str] = {}
        for item in items:
            meta = item["metadata"]
            if item["kind"] == "EndpointSlice":
                if (meta.get("labels") or {}).get("kubernetes.io/service-name") != service:
                    continue
                for endpoint in item.get("endpoints") or []:
                    if not (endpoint.get("conditions") or {}).get("ready"):
                        continue
                    pod = (endpoint.get("targetRef") or {}).get("name", "")
                    ready.setdefault(_revision_of_pod(self.name, pod), []).append(pod)
            elif item["kind"] == "Service" and meta["name"] == service:
                selected = (item["spec"].get("selector") or {}).get("rerank.dev/revision")
            elif item["kind"] == "ConfigMap" and meta["name"] == f"{self.name}-ranker":
                published = item.get("data") or {}
        return Sample(time.monotonic(), ready, selected, published)


def _revision_of_pod(pipeline: str, pod: str) -> str:
    """``<pipeline>-<revision>-<replicaset hash>-<suffix>`` -> the revision."""
    return pod[len(pipeline) + 1 :].split("-", 1)[0]


def pipeline(cluster: ClusterClient, name: str) -> dict[str, Any]:
    obj = get_json(cluster, "rrp", name, "-n", NS)
    assert obj is not None
    return obj


def ready_at(cluster: ClusterClient, op: OperatorProcess, name: str, generation: int) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get_json(cluster, "rrp", name, "-n", NS)
        c = condition(obj, "Ready")
        ok = obj is not None and c is not None and c["status"] == "True"
        return obj if ok and obj["status"].get("observedGeneration") == generation else None

    result: dict[str, Any] = wait_until(
        check, timeout=TIMEOUT, what=f"{name} Ready at {generation}", operator=op
    )
    return result


def wait_only(
    cluster: ClusterClient, op: OperatorProcess, name: str, deployment: str, timeout: float
) -> None:
    """Until ``deployment`` is the pipeline's one Deployment (the others drained and deleted)."""
    wait_until(
        lambda: deployments(cluster, name) == [deployment],
        timeout=timeout,
        what=f"{deployment} as the only Deployment of {name}",
        operator=op,
    )


def deployments(cluster: ClusterClient, name: str) -> list[str]:
    listed = get_json(cluster, "deployments", "-n", NS, "-l", f"rerank.dev/pipeline={name}") or {}
    return sorted(d["metadata"]["name"] for d in listed.get("items", []))


def test_a_model_change_never_puts_two_revisions_behind_the_endpoint(
    cluster: ClusterClient, operator: OperatorProcess
) -> None:
    first, second = manifest(SWITCH, 512), manifest(SWITCH, 384)
    old, new = revision_of(first), revision_of(second)
    assert old != new
    cluster.apply(first)
    ready_at(cluster, operator, SWITCH, 1)
    assert deployments(cluster, SWITCH) == [f"{SWITCH}-{old}"]
    with Poller(cluster, SWITCH) as poller:
        wait_until(
            lambda: poller.samples and poller.samples[-1].ready.get(old),
            timeout=30,
            what="the first revision's pods behind the stable Service",
        )
        cluster.apply(second)
        status = ready_at(cluster, operator, SWITCH, 2)["status"]
        assert status["revisions"]["active"] == new and "candidate" not in status["revisions"]
        wait_only(cluster, operator, SWITCH, f"{SWITCH}-{new}", DRAIN + 30)
        assert get_json(cluster, "service", f"{SWITCH}-{old}", "-n", NS) is None
        wait_until(
            lambda: set(poller.samples[-1].ready) == {new} and len(poller.samples[-1].ready[new]) == 2,
            timeout=30,
            what="both new pods behind the stable Service",
        )
    samples = poller.samples
    mixed = [s for s in samples if len(s.ready) > 1]
    assert not mixed, f"ready pods of two revisions behind the endpoint: {mixed[0]}"
    seen = [next(iter(s.ready)) for s in samples if s.ready]
    assert seen[0] == old and seen[-1] == new
    assert seen == sorted(seen, key=lambda r: r == new), "the endpoint went back to the old revision"
    # the published config names the new generation only once the Service selects the new revision
    for s in samples:
        if json.loads(s.published.get("function.json", "{}") or "{}") and _generation(s) == 2:
            assert s.selected == new, f"published generation 2 while the Service selected {s.selected}"
    assert any(_generation(s) == 2 for s in samples), "the poller never saw the new publication"
    switched = next(s.at for s in samples if s.selected == new)
    moved = next(s.at for s in samples if set(s.ready) == {new})
    gap = next((s.at for s in samples if s.at >= switched and not s.ready), None)
    print(
        f"\nEndpointSlice follow-up after the switch: {moved - switched:.2f}s "
        f"(samples every ~{(samples[-1].at - samples[0].at) / max(1, len(samples) - 1):.2f}s)"
        + ("; an empty endpoint was seen" if gap is not None else "")
    )


def _generation(sample: Sample) -> int | None:
    text = sample.published.get("generation")
    return int(text) if text else None


def test_a_failing_candidate_never_takes_the_endpoint(
    cluster: ClusterClient, operator: OperatorProcess
) -> None:
    good = manifest(FAILING, 512)
    old, bad = revision_of(good), revision_of(BAD)
    cluster.apply(good)
    ready_at(cluster, operator, FAILING, 1)
    published_before = (get_json(cluster, "configmap", f"{FAILING}-ranker", "-n", NS) or {})["data"]
    with Poller(cluster, FAILING) as poller:
        cluster.apply(BAD)

        def refused() -> dict[str, Any] | None:
            status = pipeline(cluster, FAILING).get("status") or {}
            revisions = status.get("revisions") or {}
            probe = status.get("lastProbe") or {}
            if revisions.get("candidate") != bad or probe.get("ok") is not False:
                return None
            return status

        status = wait_until(
            refused, timeout=TIMEOUT, what="the candidate's canary failing", operator=operator
        )
        assert status["revisions"]["active"] == old
        assert status["revisions"]["reason"] == status["lastProbe"]["reason"] == "WrongTopDocument"
        assert condition(pipeline(cluster, FAILING), "Progressing")["status"] == "True"
        time.sleep(6)  # several more failing canaries (2 s interval)
    samples = poller.samples
    assert samples and all(set(s.ready) <= {old} for s in samples), "the failing candidate got traffic"
    assert all(s.selected == old for s in samples)
    assert all(s.published == published_before for s in samples), "the published config changed"
    assert json.loads(published_before["ready"]) is True
    assert f"{FAILING}-{bad}" in deployments(cluster, FAILING)

    cluster.apply(good)  # reverting removes the candidate at once (it never served)
    wait_only(cluster, operator, FAILING, f"{FAILING}-{old}", 30)
    status = ready_at(cluster, operator, FAILING, 3)["status"]
    assert status["revisions"]["active"] == old and "candidate" not in status["revisions"]


ADOPT, KILLED = "adopt", "killed"


def test_a_deployment_from_before_bluegreen_is_replaced_through_the_gated_switch(
    cluster: ClusterClient, operator: OperatorProcess
) -> None:
    # what an upgrade meets: one Deployment rolled in place, selected by the base labels only
    surge = pipeline_manifest(
        ADOPT, NS, replicas=2, rollout={"strategy": "Surge"}, model={"name": SERVED, "maxModelLen": 512}
    )
    cluster.apply(surge)
    ready_at(cluster, operator, ADOPT, 1)
    assert deployments(cluster, ADOPT) == [f"{ADOPT}-reranker"]
    adopted = manifest(ADOPT, 512)
    rev = revision_of(adopted)
    with Poller(cluster, ADOPT) as poller:
        wait_until(
            lambda: poller.samples and len(poller.samples[-1].ready.get("reranker", [])) == 2,
            timeout=30,
            what="the in-place Deployment's pods behind the stable Service",
        )
        cluster.apply(adopted)
        status = ready_at(cluster, operator, ADOPT, 2)["status"]
        assert status["revisions"]["active"] == rev
        wait_only(cluster, operator, ADOPT, f"{ADOPT}-{rev}", DRAIN + 30)
        wait_until(
            lambda: len(poller.samples[-1].ready.get(rev, [])) == 2,
            timeout=30,
            what="the revision's pods behind the stable Service",
        )
    samples = [s for s in poller.samples if s.ready or s is not poller.samples[0]]
    assert not [s for s in samples if len(s.ready) > 1], "old and new pods behind the endpoint at once"
    assert all(s.ready for s in samples), "the endpoint had no ready pod during the adoption"
    assert all(json.loads(s.published.get("ready", "false")) for s in samples), "published turned not ready"
    assert get_json(cluster, "service", f"{ADOPT}-reranker", "-n", NS) is not None  # the endpoint stays


def test_killed_during_a_switch_the_operator_converges_to_one_revision(
    cluster: ClusterClient, operator: OperatorProcess
) -> None:
    first, second = manifest(KILLED, 512), manifest(KILLED, 320)
    old, new = revision_of(first), revision_of(second)
    cluster.apply(first)
    ready_at(cluster, operator, KILLED, 1)
    cluster.apply(second)
    rng = random.Random(SUFFIX)
    for _ in range(4):  # bounded: four kills at random moments of the switch
        time.sleep(rng.uniform(0.2, 2.5))
        operator.kill()
        operator.start()
    status = ready_at(cluster, operator, KILLED, 2)["status"]
    assert status["revisions"]["active"] == new
    wait_only(cluster, operator, KILLED, f"{KILLED}-{new}", DRAIN + 60)
    service = get_json(cluster, "service", f"{KILLED}-reranker", "-n", NS)
    assert service is not None and service["spec"]["selector"]["rerank.dev/revision"] == new
    assert get_json(cluster, "service", f"{KILLED}-{old}", "-n", NS) is None
    assert get_json(cluster, "service", f"{KILLED}-{new}", "-n", NS) is not None

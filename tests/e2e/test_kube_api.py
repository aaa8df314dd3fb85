"""The API facade's write verbs on the real apiserver: what ownership checks rely on.

kmock models none of this: create-only semantics, managedFields, delete preconditions.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rerank_operator import FIELD_MANAGER
from rerank_operator.kube import ApiError, KubeApi
from rerank_operator.kube.credentials import kubeconfig_credentials
from rerank_operator.reconcile.view import slim
from rerank_operator.sandbox import ClusterClient


@pytest.fixture
def kube(cluster: ClusterClient) -> KubeApi:
    return KubeApi(kubeconfig_credentials([str(cluster.kubeconfig)]))


def configmap(namespace: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "cm", "namespace": namespace},
        "data": data,
    }


def test_create_never_writes_over_an_existing_object(
    kube: KubeApi, cluster: ClusterClient, namespace: str
) -> None:
    cluster.kubectl("create", "configmap", "cm", "-n", namespace, "--from-literal=important=keep-me")
    with pytest.raises(ApiError) as info:
        asyncio.run(kube.create(configmap(namespace, endpoint="http://x:8000")))
    assert info.value.status == 409
    assert cluster.kubectl_json("get", "configmap", "cm", "-n", namespace)["data"] == {"important": "keep-me"}


@pytest.mark.parametrize("seen", ["as created", "as the index keeps it"])
def test_a_field_dropped_after_create_is_removed(kube: KubeApi, namespace: str, seen: str) -> None:
    """create leaves an Update entry of our manager; apply folds it into our Apply entry first, so that
    the key the next manifest no longer sets (``reason`` once a pipeline is ready) really goes away.
    The same from the watched copy, whose field trees are packed into strings."""

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        created = await kube.create(configmap(namespace, ready="false", reason="AwaitingFirstProbe"))
        entries = created["metadata"]["managedFields"]
        assert [(e["manager"], e["operation"]) for e in entries] == [(FIELD_MANAGER, "Update")]
        live = created if seen == "as created" else slim("ConfigMap", created)
        applied = await kube.apply(configmap(namespace, ready="true"), live)
        again = await kube.apply(configmap(namespace, ready="true"), applied)
        return applied, again

    applied, again = asyncio.run(scenario())
    assert applied["data"] == {"ready": "true"}
    assert [(e["manager"], e["operation"]) for e in applied["metadata"]["managedFields"]] == [
        (FIELD_MANAGER, "Apply")
    ]
    assert (
        again["metadata"]["resourceVersion"] == applied["metadata"]["resourceVersion"]
    )  # nothing left to fold


def test_delete_with_a_uid_precondition_spares_a_recreated_object(
    kube: KubeApi, cluster: ClusterClient, namespace: str
) -> None:
    async def scenario() -> str:
        first = await kube.create(configmap(namespace, a="1"))
        assert await kube.delete("ConfigMap", namespace, "cm", uid=first["metadata"]["uid"])
        second = await kube.create(configmap(namespace, a="2"))  # someone else's, same name
        with pytest.raises(ApiError) as info:
            await kube.delete("ConfigMap", namespace, "cm", uid=first["metadata"]["uid"])
        assert info.value.status == 409
        return str(second["metadata"]["uid"])

    uid = asyncio.run(scenario())
    assert cluster.kubectl_json("get", "configmap", "cm", "-n", namespace)["metadata"]["uid"] == uid

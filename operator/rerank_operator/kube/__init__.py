"""A small async facade over the Kubernetes REST API, used by the handlers.

The kubernetes client does auth and TLS (kubeconfig, in-cluster tokens); this layer adds the few
verbs the operator needs on raw dicts, so manifests from ``render`` go out unchanged.
"""

from rerank_operator.kube.client import ApiError, KubeApi, load_api_client, secret_value
from rerank_operator.kube.paths import object_path, resource_path
from rerank_operator.kube.timestamps import utcnow

__all__ = ["ApiError", "KubeApi", "load_api_client", "object_path", "resource_path", "secret_value", "utcnow"]

"""A small async facade over the Kubernetes REST API, used by the handlers.

``credentials`` finds who the operator is (its ServiceAccount, or a kubeconfig); ``client`` sends the
few verbs the operator needs, on raw dicts, so manifests from ``render`` go out unchanged.
"""

from rerank_operator.kube.client import ApiError, KubeApi, load_api_client, secret_value
from rerank_operator.kube.paths import object_path, resource_path
from rerank_operator.kube.timestamps import utcnow

__all__ = ["ApiError", "KubeApi", "load_api_client", "object_path", "resource_path", "secret_value", "utcnow"]

"""rerank-operator: run vLLM rerankers on Kubernetes and publish verified Milvus ranker configs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rerank-operator")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

GROUP = "rerank.dev"
VERSION = "v1alpha1"
KIND = "RerankPipeline"
PLURAL = "rerankpipelines"
SINGULAR = "rerankpipeline"
SHORT_NAMES = ["rrp"]
API_VERSION = f"{GROUP}/{VERSION}"
FIELD_MANAGER = "rerank-operator"
FINALIZER = f"{GROUP}/finalizer"
ANNOTATION_PREFIX = GROUP

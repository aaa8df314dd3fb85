"""``RerankPublishGrant``: a namespace's consent to receive ranker ConfigMaps from pipelines elsewhere.

Why a grant object and not a field on the pipeline: whoever can create a RerankPipeline in namespace A
must not be able to make the operator write into namespace B. Only B's owners can say yes, so the yes
lives in B, as a namespaced object that B's RBAC controls (the shape of Gateway API's ReferenceGrant).
Without a matching grant the operator writes nothing into B; deleting the grant withdraws the copy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator

from rerank_operator.models.base import ApiModel
from rerank_operator.models.pipeline import DNS1035_LABEL, MAX_NAME_LENGTH, format_errors
from rerank_operator.models.spec import DNS1123_LABEL

GRANT_KIND = "RerankPublishGrant"
GRANT_PLURAL = "rerankpublishgrants"
GRANT_SINGULAR = "rerankpublishgrant"
GRANT_SHORT_NAMES = ["rpg"]

PipelineName = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=DNS1035_LABEL)]


class GrantFrom(ApiModel):
    """Pipelines whose copies this namespace accepts."""

    namespace: str = Field(
        min_length=1,
        max_length=63,
        pattern=DNS1123_LABEL,
        description="Namespace of the RerankPipelines allowed to publish their ranker ConfigMap here.",
    )
    pipelines: list[PipelineName] | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Only these pipelines of that namespace; every pipeline there when unset.",
    )

    @field_validator("pipelines")
    @classmethod
    def _unique(cls, value: list[str] | None) -> list[str] | None:
        # mirrors x-kubernetes-list-type: set
        if value is not None and len(set(value)) != len(value):
            duplicates = sorted({p for p in value if value.count(p) > 1})
            raise ValueError(f"duplicate pipelines {', '.join(duplicates)} (each may appear once)")
        return value

    def admits(self, namespace: str, pipeline: str) -> bool:
        return self.namespace == namespace and (self.pipelines is None or pipeline in self.pipelines)


class RerankPublishGrantSpec(ApiModel):
    """Who may publish ranker ConfigMaps into the grant's namespace."""

    from_: list[GrantFrom] = Field(
        alias="from",
        min_length=1,
        max_length=64,
        description="Sources this namespace accepts copies from; any one entry matching is consent.",
    )


class GrantMeta(ApiModel):
    """The parts of a grant's metadata the operator reads (any valid object name)."""

    model_config = ApiModel.model_config | ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=253)
    namespace: str = Field(default="default", min_length=1, max_length=63)


class RerankPublishGrant(ApiModel):
    api_version: Literal["rerank.dev/v1alpha1"] = Field(default="rerank.dev/v1alpha1", alias="apiVersion")
    kind: Literal["RerankPublishGrant"] = "RerankPublishGrant"
    metadata: GrantMeta
    spec: RerankPublishGrantSpec

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> RerankPublishGrant | None:
        """A grant from the API, or ``None`` when it does not parse (one that bypassed admission):
        a grant that cannot be read is no consent, never an error that stops publishing elsewhere."""
        try:
            return cls.model_validate(dict(body))
        except ValidationError:
            return None

    def admits(self, namespace: str, pipeline: str) -> bool:
        return any(source.admits(namespace, pipeline) for source in self.spec.from_)


def consenting_grant(grants: Iterable[Mapping[str, Any]], namespace: str, pipeline: str) -> str | None:
    """The name of a grant that lets ``namespace/pipeline`` publish here, or ``None`` (no consent)."""
    for body in grants:
        grant = RerankPublishGrant.parse(body)
        if grant is not None and grant.admits(namespace, pipeline):
            return grant.metadata.name
    return None


def grant_problems(body: dict[str, Any]) -> list[str]:
    """``field: problem`` lines for ``rerank-operator validate`` (empty when the grant is valid)."""
    try:
        RerankPublishGrant.model_validate(body)
    except ValidationError as exc:
        return format_errors(exc)
    return []


def consent_hint(target_namespace: str, source_namespace: str, pipeline: str) -> str:
    """What a status message tells the pipeline's owner: who must consent, and how."""
    return (
        f"namespace {target_namespace} has no RerankPublishGrant admitting {source_namespace}/{pipeline}; "
        f"its owners can grant it with a RerankPublishGrant in {target_namespace} whose spec.from lists "
        f"{{namespace: {source_namespace}}}"
    )

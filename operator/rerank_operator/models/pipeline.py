"""The whole ``RerankPipeline`` object as found in a file or in the API."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError

from rerank_operator.models.base import ApiModel
from rerank_operator.models.spec import RerankPipelineSpec

# Children are named <name>-<suffix>; the longest (Service, DNS-1035) must fit in 63 characters.
MAX_NAME_LENGTH = 52
DNS1035_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"


class ObjectMeta(ApiModel):
    """The parts of metadata the operator reads; the rest is kept but not interpreted."""

    model_config = ApiModel.model_config | ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, pattern=DNS1035_LABEL)
    namespace: str = Field(default="default", min_length=1, max_length=63)
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class RerankPipeline(ApiModel):
    """A RerankPipeline: apiVersion, kind, metadata and spec (status is not read from files)."""

    api_version: Literal["rerank.dev/v1alpha1"] = Field(default="rerank.dev/v1alpha1", alias="apiVersion")
    kind: Literal["RerankPipeline"] = "RerankPipeline"
    metadata: ObjectMeta
    spec: RerankPipelineSpec
    status: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> RerankPipeline:
        """Parse an API object or file document; raises ``InvalidPipeline`` with one line per problem."""
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            raise InvalidPipeline(format_errors(exc)) from exc


class InvalidPipeline(ValueError):
    """A pipeline that cannot be served; ``problems`` holds one ``field: message`` line each."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


def format_errors(exc: ValidationError) -> list[str]:
    """Turn pydantic errors into ``spec.replicas: must be >= 0`` lines naming the API field."""
    lines: list[str] = []
    for err in exc.errors():
        path = _path(err["loc"])
        msg = err["msg"]
        if msg.startswith("Value error, "):
            msg = msg.removeprefix("Value error, ")
            # validators prefix a sub-field ("chatTemplate: ...", "engine.image: ...") when the problem is
            # one field
            head, sep, rest = msg.partition(": ")
            if sep and _FIELD_PREFIX.match(head):
                path = f"{path}.{head}" if path else head
                msg = rest
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"{path or '<root>'}: {msg}")
    return lines


_FIELD_PREFIX = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")  # chatTemplate, engine.image

# Labels pydantic inserts into an error location: union members are named after their type (the
# Quantity ``int | str`` gives ``cpu.int``), validators and constrained types by a ``kind-`` prefix.
# Matched exactly or by a prefix that no camelCase API field can start with (``intervalSeconds`` must stay).
_UNION_MEMBER_LABELS = frozenset({"int", "str"})
_INTERNAL_LABEL_PREFIXES = ("function-", "union[", "constrained-", "literal[")


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _UNION_MEMBER_LABELS or str(part).startswith(_INTERNAL_LABEL_PREFIXES):
            continue  # pydantic's internal union/validator labels are noise to a user
        else:
            out += f".{part}" if out else str(part)
    return out

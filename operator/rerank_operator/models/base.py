"""Shared pydantic configuration for every API object.

The API speaks camelCase like every Kubernetes API, while Python code uses snake_case.
``extra="forbid"`` makes unknown fields an error offline, matching the apiserver's
structural pruning (which would silently drop them) with a *clear* message instead.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, JsonValue
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=False,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
        strict=True,  # `replicas: "2"` fails offline exactly as it fails at the apiserver
        use_attribute_docstrings=False,
    )

    def to_api(self) -> dict[str, Any]:
        """Serialise to the camelCase wire form, leaving out unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def cel(
    rule: str, message: str, *, field_path: str | None = None, reason: str | None = None
) -> dict[str, str]:
    """One ``x-kubernetes-validations`` entry; the apiserver evaluates it at admission."""
    out = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    return out


def with_cel(*rules: dict[str, str]) -> ConfigDict:
    """The shared model config plus CEL rules for this object's schema."""
    config = ApiModel.model_config.copy()
    validations: list[JsonValue] = [dict(rule) for rule in rules]
    config["json_schema_extra"] = {"x-kubernetes-validations": validations}
    return config

"""Kubernetes ``resource.Quantity`` values as the API accepts them, and their numeric value.

Shared by resources (``cpu: 4``, ``memory: 16Gi``) and autoscaling targets (``800m``); KEDA wants a
plain number where Kubernetes takes a quantity, hence ``quantity_decimal``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema

QUANTITY = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][0-9]+)?$"

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def _check_quantity(value: int | str) -> int | str:
    if isinstance(value, str) and not re.fullmatch(QUANTITY, value):
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 4, 16Gi)")
    if isinstance(value, int) and value < 0:
        raise ValueError("quantities must not be negative")
    return value


# A resource.Quantity: YAML users write both `cpu: 4` and `memory: 16Gi`.
Quantity = Annotated[
    int | str,
    AfterValidator(_check_quantity),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY,  # applies to strings only
            "minimum": 0,  # applies to integers only: the apiserver rejects `cpu: -1` as pydantic does
        }
    ),
]


def quantity_decimal(value: int | str) -> Decimal:
    """The number a valid quantity stands for: ``800m`` is 0.8, ``2Ki`` is 2048, ``1e3`` is 1000."""
    text = str(_check_quantity(value))
    match = re.fullmatch(QUANTITY, text)
    assert match is not None  # _check_quantity accepted it
    number, _, suffix = match.group(1), match.group(2), match.group(3) or ""
    if suffix[:1] in ("e", "E"):
        return Decimal(number) * Decimal(10) ** int(suffix[1:])
    return Decimal(number) * _SUFFIXES[suffix]

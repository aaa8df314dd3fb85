"""Kubernetes quantities: what the API accepts, and the number each one stands for."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rerank_operator.models.quantity import quantity_decimal


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (4, Decimal(4)),
        ("4", Decimal(4)),
        ("500m", Decimal("0.5")),
        ("1.5", Decimal("1.5")),
        (".5", Decimal("0.5")),
        ("2k", Decimal(2000)),
        ("2Ki", Decimal(2048)),
        ("1Gi", Decimal(2**30)),
        ("3M", Decimal(3_000_000)),
        ("1e3", Decimal(1000)),
        ("2E2", Decimal(200)),
    ],
)
def test_quantity_decimal(value: int | str, number: Decimal) -> None:
    assert quantity_decimal(value) == number


@pytest.mark.parametrize("value", ["lots", "-1", "1.2.3", "5 m", -3])
def test_invalid_quantities_are_refused(value: int | str) -> None:
    with pytest.raises(ValueError, match="quantit"):
        quantity_decimal(value)

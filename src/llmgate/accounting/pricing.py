"""What one upstream call cost, from the deployment's price per million tokens."""
from __future__ import annotations

from decimal import Decimal

from ..providers.base import Price, Usage

_MILLION = Decimal(1_000_000)
_QUANTUM = Decimal("0.00000001")


def call_cost(price: Price | None, usage: Usage) -> Decimal | None:
    """Cost in USD, or None when the price is not known (unknown is not zero).

    A side without a price is fine when no tokens went that way (embeddings price input only).
    """
    if price is None or (price.input_per_mtok is None and price.output_per_mtok is None):
        return None
    total = Decimal(0)
    for tokens, per_mtok in ((usage.input_tokens, price.input_per_mtok),
                             (usage.output_tokens, price.output_per_mtok)):
        if tokens:
            if per_mtok is None:
                return None
            total += Decimal(tokens) * Decimal(str(per_mtok))
    cost = total / _MILLION
    return cost.quantize(_QUANTUM)

from __future__ import annotations

import pytest

from contracts.usage import Usage
from policy.pricing import Price, PriceTable

TABLE = PriceTable()


@pytest.mark.parametrize(
    ("model", "usage", "usd"),
    [
        ("claude-sonnet-4-5", Usage(input_tokens=1_000_000), 3.0),
        ("claude-sonnet-4-5-20250929", Usage(output_tokens=1_000_000), 15.0),
        ("claude-sonnet-4-5", Usage(cache_creation_input_tokens=1_000_000), 3.75),
        ("claude-sonnet-4-5", Usage(cache_read_input_tokens=1_000_000), 0.3),
        ("claude-opus-4-5", Usage(input_tokens=1000, output_tokens=1000), 0.03),
        ("claude-opus-4-1", Usage(input_tokens=1000, output_tokens=1000), 0.09),
        ("unknown-model", Usage(input_tokens=1000), None),
    ],
)
def test_cost(model: str, usage: Usage, usd: float | None) -> None:
    cost = TABLE.cost(model, usage)
    assert cost == pytest.approx(usd) if usd is not None else cost is None


def test_table_is_configurable() -> None:
    table = PriceTable(prices={"my-model": Price(input=1, output=2, cache_read=0.5)})
    assert table.cost("my-model-v2", Usage(input_tokens=10**6, cache_read_input_tokens=10**6)) == pytest.approx(1.5)

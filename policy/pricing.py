"""Cost of a model call from its usage and a price table (USD per million tokens). Pure."""

from __future__ import annotations

from pydantic import BaseModel, Field

from contracts.usage import Usage

# Anthropic's prompt-cache prices as fractions of the input price: a 5-minute cache write costs
# 1.25 input tokens, a cache read 0.1.
CACHE_WRITE_RATIO = 1.25
CACHE_READ_RATIO = 0.1


class Price(BaseModel):
    input: float = Field(description="USD per million input tokens.")
    output: float
    cache_write: float | None = Field(default=None, description="Default: 1.25 x input (5-minute cache).")
    cache_read: float | None = Field(default=None, description="Default: 0.1 x input.")


class PriceTable(BaseModel):
    """Prices by model-id prefix; the longest matching prefix wins. Override with FORGEFLOW_PRICES (JSON)."""

    prices: dict[str, Price] = Field(
        default_factory=lambda: {
            "claude-opus-4-5": Price(input=5, output=25),
            "claude-opus-4": Price(input=15, output=75),
            "claude-sonnet-4": Price(input=3, output=15),
            "claude-haiku-4-5": Price(input=1, output=5),
            "claude-3-5-haiku": Price(input=0.8, output=4),
        }
    )

    def price_for(self, model: str) -> Price | None:
        matches = [prefix for prefix in self.prices if model.startswith(prefix)]
        return self.prices[max(matches, key=len)] if matches else None

    def cost(self, model: str, usage: Usage) -> float | None:
        """USD for one call, or None for a model the table doesn't know."""
        price = self.price_for(model)
        if price is None:
            return None
        write = price.cache_write if price.cache_write is not None else price.input * CACHE_WRITE_RATIO
        read = price.cache_read if price.cache_read is not None else price.input * CACHE_READ_RATIO
        total = (
            usage.input_tokens * price.input
            + usage.output_tokens * price.output
            + usage.cache_creation_input_tokens * write
            + usage.cache_read_input_tokens * read
        )
        return total / 1_000_000


def billed_tokens(usage: Usage) -> float:
    """Tokens as billed, in input-token equivalents of prompt caching: a cache read counts 0.1 of a
    token and a cache write 1.25, so a long run that reads most of its prompt from cache is budgeted
    by what it spends, not by what it re-reads. Output counts as one (the USD budget prices it)."""
    return (
        usage.input_tokens
        + usage.output_tokens
        + usage.cache_creation_input_tokens * CACHE_WRITE_RATIO
        + usage.cache_read_input_tokens * CACHE_READ_RATIO
    )

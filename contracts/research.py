"""The planner's research tool: question in, answer with citations out."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ResearchInput(BaseModel):
    query: str = Field(min_length=1, max_length=2000)


class ResearchResult(BaseModel):
    available: bool
    answer: str = ""
    citations: list[str] = Field(default_factory=list)
    cached: bool = False


def research_text(result: ResearchResult) -> str:
    """How a research answer reads to the model."""
    if not result.available:
        return f"Research unavailable: {result.answer}. Plan without it and say so in the plan."
    sources = "\n".join(f"[{i}] {url}" for i, url in enumerate(result.citations, 1))
    return f"{result.answer}\n\nSources:\n{sources}" if sources else result.answer

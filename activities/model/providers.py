"""The model-provider interface: one request in, one assistant message out.

The request and response shapes live in contracts/model.py, so telemetry can describe a model call
without importing activities.
"""

from __future__ import annotations

from typing import Protocol

from contracts.model import ModelRequest, ModelResponse


class ModelProvider(Protocol):
    async def complete(self, req: ModelRequest) -> ModelResponse: ...

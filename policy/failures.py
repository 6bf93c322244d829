"""Which agent failures a human can help with, and which end the run. Pure."""

from __future__ import annotations

# Misconfiguration a human's feedback can't fix inside the run: end it with the reason.
FATAL_ERROR_TYPES = frozenset(
    {
        "ProviderUnavailable",  # no model provider configured on the workers
        "ScriptNotFound",  # the scripted replay file is missing on the worker
        "ScriptDiverged",  # the run left the recorded conversation
        "TranscriptMissing",  # workers don't share the blob store
        "AuthenticationFailed",  # the model API refused the worker's key
        "PermissionDenied",  # the key may not use this model
        "ModelNotFound",  # a wrong or retired model id
    }
)


# Not here: SandboxUnavailable (no bubblewrap on the sandbox worker) waits at the escalation gate,
# because an operator can install it and answer "try again" without losing the run.


def ends_run(error_type: str | None) -> bool:
    """True when an agent's failure should end the run instead of waiting at the escalation gate."""
    return error_type in FATAL_ERROR_TYPES

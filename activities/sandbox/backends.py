"""Which isolation backend runs a worker's steps: the registration table, and the one place a
backend is chosen (activities.sandbox.backend says what a backend is).

Each entry finds its backend on this worker or says why it cannot be used. The first one found
wins, so the table is in order of preference: the strongest isolation first, and the operator's
opt-in to no isolation at all last.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from temporalio.exceptions import ApplicationError

from activities.sandbox import bubblewrap, unsandboxed
from activities.sandbox.backend import BackendOptions, IsolationBackend, Unavailable

BACKENDS: Mapping[str, Callable[[BackendOptions], IsolationBackend | Unavailable]] = {
    "bubblewrap": bubblewrap.find,
    "unsandboxed": unsandboxed.find,  # last: only when no backend that isolates is available
}


def select_backend(options: BackendOptions) -> IsolationBackend:
    """The first backend in BACKENDS available here. If none is, a non-retryable SandboxUnavailable
    says what the preferred one needs, then what else would do: an operator fixes the worker and
    answers the escalation, since retrying on the same worker changes nothing."""
    missing: list[Unavailable] = []
    for find in BACKENDS.values():
        found = find(options)
        if not isinstance(found, Unavailable):
            return found
        missing.append(found)
    preferred, *others = missing
    alternatives = f" (or {'; or '.join(other.advice for other in others)})" if others else ""
    raise ApplicationError(preferred.advice + alternatives, type="SandboxUnavailable", non_retryable=True)

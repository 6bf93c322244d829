"""Take secrets out of text before it is written anywhere (logs, span attributes). Pure.

Two nets: the exact values of the worker's secrets (API keys, tokens, the App key), and the shapes
that credentials have whether or not we know them (Anthropic, GitHub, Perplexity, AWS keys, bearer
tokens, PEM private keys).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

REDACTED = "[REDACTED]"
MIN_SECRET_LENGTH = 8  # shorter values ("1", "true") would redact ordinary words
SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE)", re.IGNORECASE)
TOKEN_SHAPES = re.compile(
    "|".join(
        [
            r"sk-ant-[A-Za-z0-9_\-]{8,}",  # Anthropic
            r"sk-[A-Za-z0-9_\-]{20,}",  # OpenAI-style keys
            r"pplx-[A-Za-z0-9]{16,}",  # Perplexity
            r"gh[pousr]_[A-Za-z0-9]{20,}",  # GitHub tokens
            r"github_pat_[A-Za-z0-9_]{20,}",
            r"AKIA[0-9A-Z]{16}",  # AWS access key id
            r"(?i:bearer)\s+[A-Za-z0-9._~+/\-]{16,}=*",
            r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
        ]
    )
)


def secret_values(env: Mapping[str, str], extra: Iterable[str | None] = ()) -> list[str]:
    """The values worth hiding: variables whose names say secret, plus `extra`; longest first."""
    found = {v for k, v in env.items() if SECRET_NAME.search(k)} | {v for v in extra if v}
    return sorted((v for v in found if len(v) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for value in secrets:  # longest first, so a secret containing another goes whole
        if value in text:
            text = text.replace(value, REDACTED)
    return TOKEN_SHAPES.sub(REDACTED, text)

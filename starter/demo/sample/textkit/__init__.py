"""Small text helpers."""

import re
import unicodedata


def slugify(text: str) -> str:
    """Lower-case ASCII slug: 'Hello, World!' -> 'hello-world'."""
    normalized = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", normalized.lower())
    return "-".join(words)

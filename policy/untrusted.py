"""Issue, PR and spec text is untrusted: strip what a person can't see, bound its size, and fence it
clearly."""

from __future__ import annotations

import re
import unicodedata

_HTML_COMMENT = re.compile(r"<!--.*?(-->|$)", re.DOTALL)
# Zero-width, bidi-control and other format characters hide text from a reader but not from a model.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Co", "Cs"})


def strip_hidden(text: str) -> str:
    """Remove HTML comments and invisible characters; keep newlines and tabs."""
    text = _HTML_COMMENT.sub("", text)
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in _INVISIBLE_CATEGORIES)


MAX_TEXT = 60_000  # characters of one issue, spec or comment a model reads (about 15,000 tokens)


MARKER_ROOM = 100  # what the "not shown" line may add: bounding bounded text changes nothing


def bound(text: str, limit: int = MAX_TEXT) -> str:
    """At most `limit` characters, and a line saying how many more there were."""
    if len(text) <= limit + MARKER_ROOM:
        return text
    return f"{text[:limit]}\n… [{len(text) - limit} more characters not shown]"


def fence(label: str, text: str, limit: int = MAX_TEXT) -> str:
    """Wrap untrusted text in a tag the prompts name as data; the closing tag cannot be forged."""
    tag = f"untrusted-{label}"
    cleaned = bound(strip_hidden(text), limit).replace(f"</{tag}>", f"<\\/{tag}>")
    return f"<{tag}>\n{cleaned}\n</{tag}>"

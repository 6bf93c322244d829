"""The repository a run works on: parsed once, where it enters, into a reference that names its host.

A reference travels as the text a person wrote (`owner/name`, `/srv/repo`, `file:///srv/repo`), so
recorded histories and the start input keep their shape; in Python it is a `RepoRef` that knows its
host kind and its parts, and nothing parses the text again.

A new kind of host (GitLab, say) adds one `RepoShape` to SHAPES here and its host module under
activities/codehost/ (registered in starter/workers.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_GITHUB = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")


class RepoRefError(ValueError):
    """The text names no repository forgeflow can serve; the message says why."""


@dataclass(frozen=True)
class RepoRef:
    """A parsed repository reference. `kind` picks the code host; `location` is what that host
    needs (the path of a local repository, `owner/name` on GitHub); `text` is what was written."""

    kind: str
    location: str
    text: str

    def __str__(self) -> str:
        return self.text

    @property
    def path(self) -> str:
        """The filesystem path of a local repository."""
        if self.kind != "local":
            raise RepoRefError(f"{self.text!r} is a {self.kind} repository, not a local path")
        return self.location

    @property
    def owner(self) -> str:
        """The account holding a hosted repository (`owner` of owner/name)."""
        return self._parts()[0]

    @property
    def name(self) -> str:
        """The repository's own name: the last part of its path or of owner/name."""
        return self.location.rstrip("/").rsplit("/", 1)[-1]

    def _parts(self) -> tuple[str, str]:
        owner, _, name = self.location.partition("/")
        if not owner or not name:  # a path ("/srv/repo") has no owner
            raise RepoRefError(f"{self.text!r} is a {self.kind} repository, not owner/name")
        return owner, name


@dataclass(frozen=True)
class RepoShape:
    """How one host kind's references are written: `parse` returns the location, None if the text
    is not of this kind, or raises RepoRefError if it is of this kind but malformed."""

    kind: str
    parse: Callable[[str], str | None]
    example: str


def _local(text: str) -> str | None:
    if not (text.startswith("/") or text.startswith("file://")):
        return None
    path = text.removeprefix("file://")
    if not path.startswith("/"):
        raise RepoRefError("a local repo must be an absolute path or file:///absolute/path")
    return path


def _github(text: str) -> str | None:
    return text if _GITHUB.match(text) else None


SHAPES: tuple[RepoShape, ...] = (
    RepoShape("local", _local, "/srv/repo or file:///srv/repo"),
    RepoShape("github", _github, "owner/name"),
)
KINDS = tuple(shape.kind for shape in SHAPES)


def parse_repo(text: str) -> RepoRef:
    """The reference `text` names; RepoRefError says what is wrong with it."""
    for shape in SHAPES:
        location = shape.parse(text)
        if location is not None:
            return RepoRef(kind=shape.kind, location=location, text=text)
    written = " or ".join(shape.example for shape in SHAPES)
    raise RepoRefError(f"{text!r} is not a repository reference: write {written}")


def _validate(value: Any) -> RepoRef:
    if isinstance(value, RepoRef):
        return value
    if not isinstance(value, str):
        raise RepoRefError(f"a repository reference is text, not {type(value).__name__}")
    return parse_repo(value)


# The field type for contracts: validated from text (or a RepoRef), written back as the same text.
Repo = Annotated[
    RepoRef,
    BeforeValidator(_validate),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "description": "owner/name on GitHub, or an absolute path / file:// URL."}),
]

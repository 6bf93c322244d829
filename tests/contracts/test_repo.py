"""A repository reference is parsed once into a RepoRef and travels as the text that was written."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel, ValidationError
from temporalio.contrib.pydantic import pydantic_data_converter

from contracts.agents import Workspace
from contracts.codehost import FetchTaskInput
from contracts.repo import KINDS, SHAPES, Repo, RepoRef, RepoRefError, parse_repo
from contracts.run import IssueInput


class Holder(BaseModel):
    repo: Repo


@pytest.mark.parametrize(
    ("text", "kind", "location"),
    [
        ("acme/calc", "github", "acme/calc"),
        ("acme-co/calc.py_2", "github", "acme-co/calc.py_2"),
        ("/srv/repo", "local", "/srv/repo"),
        ("/srv/repo/", "local", "/srv/repo/"),
        ("file:///srv/repo", "local", "/srv/repo"),
    ],
)
def test_shapes(text: str, kind: str, location: str) -> None:
    ref = parse_repo(text)
    assert (ref.kind, ref.location, ref.text, str(ref)) == (kind, location, text, text)


def test_parts() -> None:
    github, local = parse_repo("acme/calc"), parse_repo("file:///srv/calc/")
    assert (github.owner, github.name) == ("acme", "calc")
    assert (local.path, local.name) == ("/srv/calc/", "calc")
    with pytest.raises(RepoRefError, match="'acme/calc' is a github repository, not a local path"):
        _ = github.path
    with pytest.raises(RepoRefError, match="is a local repository, not owner/name"):
        _ = local.owner


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("file://srv/repo", "a local repo must be an absolute path or file:///absolute/path"),
        ("calc", "'calc' is not a repository reference: write /srv/repo or file:///srv/repo or owner/name"),
        ("acme/calc/extra", "'acme/calc/extra' is not a repository reference"),
        ("-acme/calc", "'-acme/calc' is not a repository reference"),
        ("acme/ca lc", "'acme/ca lc' is not a repository reference"),
        ("", "'' is not a repository reference"),
        ("relative/../path/x", "is not a repository reference"),
    ],
)
def test_errors_name_the_problem(text: str, says: str) -> None:
    with pytest.raises(RepoRefError, match=re.escape(says)):
        parse_repo(text)
    with pytest.raises(ValidationError) as err:
        IssueInput.model_validate({"repo": text, "spec_content": "s"})
    assert says in str(err.value) and "repo" in str(err.value)


def test_a_non_text_value_is_refused() -> None:
    with pytest.raises(ValidationError, match="a repository reference is text, not int"):
        Holder.model_validate({"repo": 12})


@pytest.mark.parametrize("text", ["acme/calc", "/srv/repo", "file:///srv/repo"])
def test_round_trip_keeps_the_text(text: str) -> None:
    for model in (
        Holder(repo=text),
        FetchTaskInput(repo=text, spec_content="s"),
        Workspace(repo=text, base_sha="abc"),
        IssueInput(repo=text, spec_content="s"),
    ):
        assert isinstance(model.repo, RepoRef) and model.repo == parse_repo(text)
        assert model.model_dump(mode="json")["repo"] == text
        assert type(model).model_validate_json(model.model_dump_json()) == model
    # Through the data converter the workers use, as history stores it.
    payload = pydantic_data_converter.payload_converter.to_payloads([Holder(repo=text)])[0]
    assert payload.data == f'{{"repo":"{text}"}}'.encode()
    assert pydantic_data_converter.payload_converter.from_payloads([payload], [Holder]) == [Holder(repo=text)]


def test_a_reporef_passed_in_is_kept() -> None:
    ref = parse_repo("acme/calc")
    assert Holder(repo=ref).repo is ref
    assert Workspace(repo=ref, base_sha="abc").model_copy(update={"base_sha": "def"}).repo is ref


def test_json_schema_is_a_string() -> None:
    schema = IssueInput.model_json_schema()["properties"]["repo"]
    assert schema["type"] == "string"


def test_every_kind_has_one_shape() -> None:
    assert len(set(KINDS)) == len(KINDS) == len(SHAPES)

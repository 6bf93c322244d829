"""A loopback server for the subset of GitHub's REST API forgeflow uses, backed by a real git repository.

Trees, commits, refs and archives are real git objects, so what the client writes can be checked
with git. Errors use GitHub's shapes (`{"message": ..., "documentation_url": ...}`), including
bad credentials and the secondary rate limit with `retry-after`.

A test also acts as the people on the other side (`comment`, `label_issue`, `review`): each call
changes the repository's state as GitHub would and returns the webhook payload GitHub would send
for it, in GitHub's own shape (users, issues, pull requests and the repository as REST serves
them), for `testkit.loopback.webhooks.WebhookSender` to deliver.

Here: the server, its state, authentication and routing. The JSON it serves is built in
`github_shapes`; the endpoints are in `github_routes` (and `github_git`).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt

from testkit.loopback._server import LoopbackServer
from testkit.loopback.github_routes import (
    APP_ONLY,
    ROUTES,
    Handler,
    create_check_run,
    list_check_runs,
    update_check_run,
)
from testkit.loopback.github_shapes import (
    ApiError,
    issue_json,
    label_json,
    new_comment,
    now,
    pull_author,
    pull_full,
    repo_json,
    review_comment,
    review_json,
    rollup,
    user_json,
)
from testkit.loopback.json_api import JsonHandler

# What tests import from here: the server and its issues, its errors, and the check-run endpoints
# (to deny them, as to an App lacking the Checks permission).
__all__ = ["ApiError", "GitHubLoopback", "Issue", "create_check_run", "list_check_runs", "update_check_run"]

DOCS = "https://docs.github.com/rest"
QUOTA = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999"}  # on every answer, as GitHub does
REVIEW_STATES = {"changes_requested": "CHANGES_REQUESTED", "commented": "COMMENTED", "approved": "APPROVED"}
OWN_PULL_REFUSED = {"changes_requested": "request changes on", "approved": "approve"}


@dataclass
class Issue:
    title: str
    body: str
    author: str = "octocat"
    labels: list[str] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)
    created_at: str = field(default_factory=now)


class GitHubLoopback(LoopbackServer):
    def __init__(self, owner: str, name: str, repo: Path, token: str, app: tuple[int, int, str] | None = None) -> None:
        """`app` = (app id, installation id, public key PEM): accept a GitHub App's installation tokens too."""
        self.owner, self.name, self.repo, self.token = owner, name, repo, token
        self.app = app
        self.installation_tokens: list[str] = []
        self.issues: dict[int, Issue] = {}
        self.pulls: dict[int, dict[str, Any]] = {}
        self.permissions: dict[str, str] = {"octocat": "write", "maintainer": "admin"}  # others: read
        self.reviews: dict[int, list[dict[str, Any]]] = {}
        self.review_comments: dict[int, list[dict[str, Any]]] = {}  # by pull request number
        # ("comment", comment id) or ("issue", number) -> its reactions, oldest first
        self.reactions: dict[tuple[str, int], list[dict[str, Any]]] = {}
        self.check_runs: dict[int, dict[str, Any]] = {}  # by id, as last set
        self.check_run_states: dict[int, list[tuple[str, str | None, str | None]]] = {}  # (status, conclusion, summary)
        self.statuses: dict[str, list[dict[str, Any]]] = {}  # by commit SHA, oldest first
        self.started = now()  # when issues and pull requests a test adds by hand were opened
        self._ids = itertools.count(1001)  # one sequence, so no two comments (or reviews, ...) share an id
        self.requests: list[tuple[str, str]] = []
        self.rate_limit_next: int = 0  # answer this many requests with a secondary rate limit first
        self.primary_limit_next = 0  # answer this many requests as out of the hourly quota (reset in 120 s)
        self.denied: set[Handler] = set()  # endpoints answered 403, as to an App lacking their permission
        self.forbidden = False  # answer everything with 403 "Resource not accessible" (a missing permission)
        # (method, path) of each request answered with success, called before the reply is sent: a crash
        # test holds a reply here until it has killed the client that is waiting for it.
        self.hold: Callable[[str, str], None] | None = None
        super().__init__(self._handler())

    # --- git, ids and comment threads ----------------------------------------------------------

    def git(self, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            ["git", "-C", str(self.repo), *args],
            input=stdin,
            capture_output=True,
            env={**os.environ, **(env or {})},
            check=False,
        )
        if done.returncode != 0:
            raise ApiError(422, done.stderr.decode(errors="replace").strip() or "git failed")
        return done.stdout.decode().strip()

    def resolve(self, ref: str) -> str:
        """The commit `ref` names, or GitHub's 404."""
        try:
            return self.git("rev-parse", "--verify", f"{ref}^{{commit}}")
        except ApiError:
            raise ApiError(404, "Not Found") from None

    def new_id(self) -> int:
        return next(self._ids)  # atomic under the GIL: request threads and the test share it

    def conversation(self, number: int) -> list[dict[str, Any]]:
        """An issue's comments, or a pull request's conversation (GitHub serves both as issue comments)."""
        if number in self.issues:
            return self.issues[number].comments
        if number in self.pulls:
            thread: list[dict[str, Any]] = self.pulls[number].setdefault("comments", [])
            return thread
        raise ApiError(404, "Not Found")

    # --- acting as the people on the other side: each returns the webhook payload GitHub sends ---

    def label_issue(self, number: int, label: str, sender: str) -> dict[str, Any]:
        """`sender` adds `label` to issue `number`: the `issues` event, action `labeled`."""
        issue = self.issues[number]
        if label not in issue.labels:
            issue.labels.append(label)
        return self._event("labeled", sender, issue=issue_json(self, number), label=label_json(self, label))

    def comment(self, number: int, sender: str, body: str) -> dict[str, Any]:
        """`sender` comments on issue or pull request `number`: the `issue_comment` event, action `created`."""
        comment = new_comment(self, number, sender, body)
        self.conversation(number).append(comment)
        reactions = rollup(self, ("comment", comment["id"]), f"{comment['url']}/reactions")
        return self._event(
            "created", sender, issue=issue_json(self, number), comment={**comment, "reactions": reactions}
        )

    def review(
        self, pr_number: int, sender: str, state: str, body: str = "", comments: Sequence[tuple[str, int, str]] = ()
    ) -> dict[str, Any]:
        """`sender` submits a review (`changes_requested`, `commented` or `approved`) with line comments
        (path, line, body) on the head commit: the `pull_request_review` event, action `submitted`."""
        pull = self.pulls[pr_number]
        if state in OWN_PULL_REFUSED and sender == pull_author(pull):  # as GitHub's 422 says
            raise ValueError(f"Can not {OWN_PULL_REFUSED[state]} your own pull request")
        head = self.resolve(pull["head"]["ref"])
        review = review_json(self, pr_number, sender, REVIEW_STATES[state], body, head)
        self.reviews.setdefault(pr_number, []).append(review)
        thread = self.review_comments.setdefault(pr_number, [])
        base = self.resolve(pull["base"]["ref"])
        thread += [review_comment(self, pr_number, review["id"], (base, head), sender, c) for c in comments]
        webhook_review = {**review, "state": state}  # webhooks spell review states in lowercase
        return self._event("submitted", sender, review=webhook_review, pull_request=pull_full(self, pr_number))

    def _event(self, action: str, sender: str, **objects: Any) -> dict[str, Any]:
        payload = {"action": action, **objects, "repository": repo_json(self), "sender": user_json(sender)}
        if self.app is not None:  # deliveries to a GitHub App name its installation
            payload["installation"] = {
                "id": self.app[1],
                "node_id": f"MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9u{self.app[1]}",
            }
        return payload

    # --- routes --------------------------------------------------------------------------------

    def route(self, method: str, path: str, body: Any, installation: bool = False) -> tuple[int, Any]:
        """`installation`: the request came with an installation token (a GitHub App's), not the plain token."""
        if self.app is not None and method == "POST" and path == f"/app/installations/{self.app[1]}/access_tokens":
            token = f"ghs_installation_{len(self.installation_tokens)}"
            self.installation_tokens.append(token)
            return 201, {"token": token, "expires_at": "2099-01-01T00:00:00Z", "permissions": {}}
        prefix = f"/repos/{self.owner}/{self.name}"
        if not path.startswith(prefix):
            raise ApiError(404, "Not Found")
        rest, _, query = path[len(prefix) :].partition("?")
        for (verb, pattern), handler in ROUTES.items():
            match = re.fullmatch(pattern, rest)
            if verb == method and match:
                if handler in APP_ONLY and not installation:
                    raise ApiError(403, "Resource not accessible by personal access token")
                if handler in self.denied:  # an App installed without the permission this needs
                    raise ApiError(403, "Resource not accessible by integration")
                if method == "GET" and query:
                    body = {key: values[-1] for key, values in parse_qs(query).items()}
                return handler(self, match, body)
        raise ApiError(404, "Not Found")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        loopback = self

        class Handler(JsonHandler):
            def _serve(self, method: str) -> None:
                loopback.requests.append((method, self.path))
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                try:
                    token = loopback._authorise(self.headers.get("authorization", ""), self.path)
                    installation = token in loopback.installation_tokens
                    status, payload = loopback.route(method, self.path, json.loads(raw) if raw else None, installation)
                except ApiError as err:
                    self._send(err.status, {"message": err.message, "documentation_url": DOCS}, err.headers)
                    return
                if loopback.hold is not None:
                    loopback.hold(method, self.path)  # e.g. GitHub has opened the PR, the client never hears it
                try:
                    if isinstance(payload, bytes):
                        self.send_body(status, payload, "application/x-gzip", QUOTA)
                    else:
                        self._send(status, payload, {})
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client died waiting (a crash test killed it): GitHub's work stands

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def do_PATCH(self) -> None:
                self._serve("PATCH")

            def _send(self, status: int, payload: Any, headers: dict[str, str]) -> None:
                self.send_json(status, payload, {**QUOTA, **headers}, "application/json; charset=utf-8")

        return Handler

    def _authorise(self, header: str, path: str = "") -> str:
        """The token the request came with ("" for an app's JWT), or GitHub's refusal."""
        if self.app is not None and path.startswith("/app/"):
            self._verify_app_jwt(header.removeprefix("Bearer "))
            return ""
        token = header.partition(" ")[2]
        if header.partition(" ")[0] not in ("Bearer", "token") or token not in [self.token, *self.installation_tokens]:
            raise ApiError(401, "Bad credentials")
        if self.forbidden:
            raise ApiError(403, "Resource not accessible by personal access token")
        if self.primary_limit_next > 0:
            self.primary_limit_next -= 1
            reset = str(int(time.time()) + 120)
            raise ApiError(403, "API rate limit exceeded.", {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset})
        if self.rate_limit_next > 0:
            self.rate_limit_next -= 1
            raise ApiError(403, "You have exceeded a secondary rate limit.", {"retry-after": "30"})
        return token

    def _verify_app_jwt(self, token: str) -> None:
        """An app authenticates with a JWT signed by its private key (RS256), issued by its app id."""
        assert self.app is not None
        try:
            claims = jwt.decode(token, self.app[2], algorithms=["RS256"])
        except jwt.PyJWTError as err:
            raise ApiError(401, f"A JSON web token could not be decoded ({err})") from None
        if str(claims.get("iss")) != str(self.app[0]):
            raise ApiError(401, "'Issuer' claim ('iss') must be an Integer")

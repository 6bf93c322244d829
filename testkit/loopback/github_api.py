"""A loopback server for the subset of GitHub's REST API forgeflow uses, backed by a real git repository.

Trees, commits, refs and archives are real git objects, so what the client writes can be checked
with git. Errors use GitHub's shapes (`{"message": ..., "documentation_url": ...}`), including
bad credentials and the secondary rate limit with `retry-after`.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt

from testkit.loopback._server import LoopbackServer
from testkit.loopback.json_api import JsonHandler

DOCS = "https://docs.github.com/rest"
QUOTA = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999"}  # on every answer, as GitHub does
Handler = Callable[["GitHubLoopback", re.Match[str], Any], tuple[int, Any]]


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


@dataclass
class Issue:
    title: str
    body: str
    author: str = "octocat"
    labels: list[str] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)


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
        self.requests: list[tuple[str, str]] = []
        self.rate_limit_next: int = 0  # answer this many requests with a secondary rate limit first
        self.primary_limit_next = 0  # answer this many requests as out of the hourly quota (reset in 120 s)
        self.forbidden = False  # answer everything with 403 "Resource not accessible" (a missing permission)
        # (method, path) of each request answered with success, called before the reply is sent: a crash
        # test holds a reply here until it has killed the client that is waiting for it.
        self.hold: Callable[[str, str], None] | None = None
        super().__init__(self._handler())

    # --- git -----------------------------------------------------------------------------------

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

    def _sha(self, ref: str) -> str:
        try:
            return self.git("rev-parse", "--verify", f"{ref}^{{commit}}")
        except ApiError:
            raise ApiError(404, "Not Found") from None

    # --- routes --------------------------------------------------------------------------------

    def route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
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
                    loopback._authorise(self.headers.get("authorization", ""), self.path)
                    status, payload = loopback.route(method, self.path, json.loads(raw) if raw else None)
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

    def _authorise(self, header: str, path: str = "") -> None:
        if self.app is not None and path.startswith("/app/"):
            self._verify_app_jwt(header.removeprefix("Bearer "))
            return
        accepted = [self.token, *self.installation_tokens]
        if header not in [f"{kind} {t}" for t in accepted for kind in ("Bearer", "token")]:
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

    def _verify_app_jwt(self, token: str) -> None:
        """An app authenticates with a JWT signed by its private key (RS256), issued by its app id."""
        assert self.app is not None
        try:
            claims = jwt.decode(token, self.app[2], algorithms=["RS256"])
        except jwt.PyJWTError as err:
            raise ApiError(401, f"A JSON web token could not be decoded ({err})") from None
        if str(claims.get("iss")) != str(self.app[0]):
            raise ApiError(401, "'Issuer' claim ('iss') must be an Integer")


# --- handlers: one small function per endpoint --------------------------------------------------


def get_repo(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    branch = gh.git("symbolic-ref", "--short", "HEAD")
    full = f"{gh.owner}/{gh.name}"
    return 200, {"id": 1, "name": gh.name, "full_name": full, "default_branch": branch, "private": False,
                 "owner": {"login": gh.owner}, "permissions": {"admin": False, "push": True, "pull": True}}  # fmt: skip


def get_issue(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    issue = gh.issues.get(int(m["n"]))
    if issue is None:
        raise ApiError(404, "Not Found")
    return 200, {"number": int(m["n"]), "title": issue.title, "body": issue.body, "state": "open",
                 "user": {"login": issue.author}, "labels": [{"name": n} for n in issue.labels],
                 "comments": len(issue.comments)}  # fmt: skip


def _thread(gh: GitHubLoopback, number: int) -> list[dict[str, Any]]:
    """An issue's comments, or a pull request's conversation (GitHub serves both as issue comments)."""
    if number in gh.issues:
        return gh.issues[number].comments
    if number in gh.pulls:
        thread: list[dict[str, Any]] = gh.pulls[number].setdefault("comments", [])
        return thread
    raise ApiError(404, "Not Found")


def list_comments(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    return 200, _thread(gh, int(m["n"]))


def create_comment(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    thread = _thread(gh, int(m["n"]))
    comment = {"id": 1000 + len(thread), "body": body["body"], "user": {"login": "forgeflow[bot]"}}
    thread.append(comment)
    return 201, comment


def get_commit(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    sha = gh._sha(m["ref"])
    return 200, {"sha": sha, "commit": {"tree": {"sha": gh.git("rev-parse", f"{sha}^{{tree}}")}}}


def tarball(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    sha = gh._sha(m["ref"])
    prefix = f"{gh.owner}-{gh.name}-{sha[:7]}/"  # GitHub's archives wrap the tree in one folder
    data = subprocess.run(
        ["git", "-C", str(gh.repo), "archive", "--format=tar.gz", f"--prefix={prefix}", sha],
        capture_output=True,
        check=True,
    ).stdout
    return 200, data


def create_blob(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    content = body["content"]
    data = base64.b64decode(content) if body.get("encoding") == "base64" else content.encode()
    return 201, {"sha": gh.git("hash-object", "-w", "--stdin", stdin=data)}


def get_tree(gh: GitHubLoopback, m: re.Match[str], query: Any) -> tuple[int, Any]:
    """A tree as GitHub lists it: modes as git writes them (120000 for a symbolic link), one level or all."""
    try:
        sha = gh.git("rev-parse", "--verify", f"{m['sha']}^{{tree}}")
    except ApiError:
        raise ApiError(404, "Not Found") from None
    recursive = ("-r", "-t") if (query or {}).get("recursive") else ()
    listing = gh.git("ls-tree", "-z", "-l", "--full-tree", *recursive, sha)
    entries = []
    for record in filter(None, listing.split("\0")):
        meta, _, path = record.partition("\t")
        mode, kind, object_id, size = meta.split()
        entry = {"path": path, "mode": mode, "type": kind, "sha": object_id}
        entries.append(entry if size == "-" else {**entry, "size": int(size)})
    url = f"https://api.github.test/repos/{gh.owner}/{gh.name}/git/trees/{sha}"
    return 200, {"sha": sha, "url": url, "tree": entries, "truncated": False}


def create_tree(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        if body.get("base_tree"):
            gh.git("read-tree", body["base_tree"], env=env)
        for entry in body["tree"]:
            if entry.get("sha") is None and "content" not in entry:
                gh.git("update-index", "--force-remove", entry["path"], env=env)
                continue
            sha = entry.get("sha") or gh.git("hash-object", "-w", "--stdin", stdin=entry["content"].encode())
            gh.git("update-index", "--add", "--cacheinfo", f"{entry['mode']},{sha},{entry['path']}", env=env)
        return 201, {"sha": gh.git("write-tree", env=env)}


def create_commit(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    parents = [arg for p in body.get("parents", []) for arg in ("-p", p)]
    env = {"GIT_AUTHOR_NAME": "forgeflow", "GIT_AUTHOR_EMAIL": "forgeflow@users.noreply.github.com",
           "GIT_COMMITTER_NAME": "GitHub", "GIT_COMMITTER_EMAIL": "noreply@github.com"}  # fmt: skip
    sha = gh.git("commit-tree", body["tree"], *parents, "-m", body["message"], env=env)
    return 201, {"sha": sha, "tree": {"sha": body["tree"]}, "parents": [{"sha": p} for p in body.get("parents", [])]}


def get_ref(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    ref = f"refs/heads/{m['branch']}"
    try:
        sha = gh.git("rev-parse", "--verify", ref)
    except ApiError:
        raise ApiError(404, "Not Found") from None
    return 200, {"ref": ref, "object": {"type": "commit", "sha": sha}}


def create_ref(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    try:
        gh.git("update-ref", body["ref"], body["sha"], "0" * 40)
    except ApiError:
        raise ApiError(422, "Reference already exists") from None
    return 201, {"ref": body["ref"], "object": {"type": "commit", "sha": body["sha"]}}


def update_ref(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    ref = f"refs/heads/{m['branch']}"
    current = get_ref(gh, m, None)[1]["object"]["sha"]
    ancestor = subprocess.run(
        ["git", "-C", str(gh.repo), "merge-base", "--is-ancestor", current, body["sha"]], check=False
    )
    if not body.get("force") and ancestor.returncode != 0:
        raise ApiError(422, "Update is not a fast forward")
    gh.git("update-ref", ref, body["sha"], current)
    return 200, {"ref": ref, "object": {"type": "commit", "sha": body["sha"]}}


def get_git_commit(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    sha = gh._sha(m["sha"])
    parents = gh.git("rev-list", "--parents", "-n", "1", sha).split()[1:]
    return 200, {
        "sha": sha,
        "tree": {"sha": gh.git("rev-parse", f"{sha}^{{tree}}")},
        "parents": [{"sha": p} for p in parents],
    }


def _pull_json(gh: GitHubLoopback, number: int) -> dict[str, Any]:
    pull = gh.pulls[number]
    return {**pull, "number": number, "html_url": f"https://github.test/{gh.owner}/{gh.name}/pull/{number}"}


def list_pulls(gh: GitHubLoopback, m: re.Match[str], query: Any) -> tuple[int, Any]:
    query = query or {}
    head = str(query.get("head", ""))
    found = [
        _pull_json(gh, n)
        for n, pull in gh.pulls.items()
        if (not head or f"{gh.owner}:{pull['head']['ref']}" == head) and pull["state"] == query.get("state", "open")
    ]
    return 200, found


def create_pull(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    if any(p["head"]["ref"] == body["head"] and p["state"] == "open" for p in gh.pulls.values()):
        raise ApiError(422, f"A pull request already exists for {gh.owner}:{body['head']}.")
    number = 100 + len(gh.pulls)
    gh.pulls[number] = {
        "title": body["title"],
        "body": body.get("body", ""),
        "state": "open",
        "draft": body.get("draft", False),
        "head": {"ref": body["head"]},
        "base": {"ref": body["base"]},
    }
    return 201, _pull_json(gh, number)


def get_pull(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    number = int(m["n"])
    if number not in gh.pulls:
        raise ApiError(404, "Not Found")
    pull = _pull_json(gh, number)
    head, base = gh._sha(pull["head"]["ref"]), gh._sha(pull["base"]["ref"])
    return 200, {**pull, "head": {**pull["head"], "sha": head}, "base": {**pull["base"], "sha": base}}


def update_pull(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    number = int(m["n"])
    if number not in gh.pulls:
        raise ApiError(404, "Not Found")
    gh.pulls[number].update({k: v for k, v in body.items() if k in ("title", "body")})
    return 200, _pull_json(gh, number)


def list_reviews(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    return 200, gh.reviews.get(int(m["n"]), [])


def create_review(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    number = int(m["n"])
    if number not in gh.pulls:
        raise ApiError(404, "Not Found")
    review = {"id": 5000 + len(gh.reviews.get(number, [])), "body": body.get("body", ""), "state": "COMMENTED",
              "event": body.get("event"), "commit_id": body.get("commit_id"), "comments": body.get("comments", []),
              "html_url": f"https://github.test/{gh.owner}/{gh.name}/pull/{number}#review"}  # fmt: skip
    gh.reviews.setdefault(number, []).append(review)
    return 200, review


def get_permission(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    permission = gh.permissions.get(m["user"], "read")
    return 200, {"permission": permission, "role_name": permission, "user": {"login": m["user"]}}


ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", ""): get_repo,
    ("GET", r"/issues/(?P<n>\d+)"): get_issue,
    ("GET", r"/issues/(?P<n>\d+)/comments"): list_comments,
    ("POST", r"/issues/(?P<n>\d+)/comments"): create_comment,
    ("GET", r"/commits/(?P<ref>[^/]+)"): get_commit,
    ("GET", r"/tarball/(?P<ref>[^/]+)"): tarball,
    ("POST", r"/git/blobs"): create_blob,
    ("GET", r"/git/trees/(?P<sha>[^/]+)"): get_tree,
    ("POST", r"/git/trees"): create_tree,
    ("POST", r"/git/commits"): create_commit,
    ("GET", r"/git/ref/heads/(?P<branch>.+)"): get_ref,
    ("POST", r"/git/refs"): create_ref,
    ("PATCH", r"/git/refs/heads/(?P<branch>.+)"): update_ref,
    ("GET", r"/git/commits/(?P<sha>[0-9a-f]{40})"): get_git_commit,
    ("GET", r"/collaborators/(?P<user>[^/]+)/permission"): get_permission,
    ("GET", r"/pulls"): list_pulls,
    ("POST", r"/pulls"): create_pull,
    ("GET", r"/pulls/(?P<n>\d+)"): get_pull,
    ("PATCH", r"/pulls/(?P<n>\d+)"): update_pull,
    ("GET", r"/pulls/(?P<n>\d+)/reviews"): list_reviews,
    ("POST", r"/pulls/(?P<n>\d+)/reviews"): create_review,
}

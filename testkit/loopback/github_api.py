"""A loopback server for the subset of GitHub's REST API forgeflow uses, backed by a real git repository.

Trees, commits, refs and archives are real git objects, so what the client writes can be checked
with git. Errors use GitHub's shapes (`{"message": ..., "documentation_url": ...}`), including
bad credentials and the secondary rate limit with `retry-after`.

A test also acts as the people on the other side (`comment`, `label_issue`, `review`): each call
changes the repository's state as GitHub would and returns the webhook payload GitHub would send
for it, in GitHub's own shape (users, issues, pull requests and the repository as REST serves
them), for `testkit.loopback.webhooks.WebhookSender` to deliver.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import subprocess
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

import jwt

from testkit.loopback._server import LoopbackServer
from testkit.loopback.json_api import JsonHandler

DOCS = "https://docs.github.com/rest"
QUOTA = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999"}  # on every answer, as GitHub does
Handler = Callable[["GitHubLoopback", re.Match[str], Any], tuple[int, Any]]
WEB, API = "https://github.test", "https://api.github.test"
REPO_ID = 1
BOT = "forgeflow[bot]"  # who the loopback's tokens act as
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
REVIEW_STATES = {"changes_requested": "CHANGES_REQUESTED", "commented": "COMMENTED", "approved": "APPROVED"}
OWN_PULL_REFUSED = {"changes_requested": "request changes on", "approved": "approve"}
REVIEW_EVENTS = {"REQUEST_CHANGES": "CHANGES_REQUESTED", "COMMENT": "COMMENTED", "APPROVE": "APPROVED"}
CHECK_STATUSES = ("queued", "in_progress", "completed", "waiting", "requested", "pending")
CHECK_CONCLUSIONS = ("action_required", "cancelled", "failure", "neutral", "success", "skipped", "stale", "timed_out")
COMMIT_STATES = ("error", "failure", "pending", "success")
HUNK = re.compile(r"@@ -\S+ \+(\d+)")  # a hunk header, and the first line it shows of the new file


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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

    def new_id(self) -> int:
        return next(self._ids)  # atomic under the GIL: request threads and the test share it

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
        _thread(self, number).append(comment)
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
        if state in OWN_PULL_REFUSED and sender == _author(pull):  # as GitHub's 422 says
            raise ValueError(f"Can not {OWN_PULL_REFUSED[state]} your own pull request")
        head = self._sha(pull["head"]["ref"])
        review = review_json(self, pr_number, sender, REVIEW_STATES[state], body, head)
        self.reviews.setdefault(pr_number, []).append(review)
        thread = self.review_comments.setdefault(pr_number, [])
        base = self._sha(pull["base"]["ref"])
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


# --- GitHub's objects, as REST serves them and webhooks embed them ------------------------------

# A repository's URL templates, relative to its API URL.
REPO_URLS = {
    "archive": "/{archive_format}{/ref}", "assignees": "/assignees{/user}", "blobs": "/git/blobs{/sha}",
    "branches": "/branches{/branch}", "collaborators": "/collaborators{/collaborator}",
    "comments": "/comments{/number}", "commits": "/commits{/sha}", "compare": "/compare/{base}...{head}",
    "contents": "/contents/{+path}", "contributors": "/contributors", "deployments": "/deployments",
    "downloads": "/downloads", "events": "/events", "forks": "/forks", "git_commits": "/git/commits{/sha}",
    "git_refs": "/git/refs{/sha}", "git_tags": "/git/tags{/sha}", "hooks": "/hooks",
    "issue_comment": "/issues/comments{/number}", "issue_events": "/issues/events{/number}",
    "issues": "/issues{/number}", "keys": "/keys{/key_id}", "labels": "/labels{/name}", "languages": "/languages",
    "merges": "/merges", "milestones": "/milestones{/number}",
    "notifications": "/notifications{?since,all,participating}", "pulls": "/pulls{/number}",
    "releases": "/releases{/id}", "stargazers": "/stargazers", "statuses": "/statuses/{sha}",
    "subscribers": "/subscribers", "subscription": "/subscription", "tags": "/tags", "teams": "/teams",
    "trees": "/git/trees{/sha}",
}  # fmt: skip


def user_json(login: str) -> dict[str, Any]:
    """A user as GitHub embeds one everywhere; a login ending in `[bot]` is a GitHub App's bot."""
    bot, uid, url = login.endswith("[bot]"), zlib.crc32(login.encode()), f"{API}/users/{quote(login)}"
    return {"login": login, "id": uid, "node_id": f"U_{uid}", "avatar_url": f"{WEB}/avatars/u/{uid}", "gravatar_id": "",
            "url": url, "html_url": f"{WEB}/apps/{login.removesuffix('[bot]')}" if bot else f"{WEB}/{login}",
            "followers_url": f"{url}/followers", "following_url": f"{url}/following{{/other_user}}",
            "gists_url": f"{url}/gists{{/gist_id}}", "starred_url": f"{url}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{url}/subscriptions", "organizations_url": f"{url}/orgs",
            "repos_url": f"{url}/repos", "events_url": f"{url}/events{{/privacy}}",
            "received_events_url": f"{url}/received_events",
            "type": "Bot" if bot else "User", "site_admin": False}  # fmt: skip


def association(gh: GitHubLoopback, login: str) -> str:
    """`author_association`: how GitHub labels a login's relation to the repository."""
    if login == gh.owner:
        return "OWNER"
    return "COLLABORATOR" if gh.permissions.get(login) in ("admin", "maintain", "write") else "NONE"


def repo_json(gh: GitHubLoopback) -> dict[str, Any]:
    full = f"{gh.owner}/{gh.name}"
    api, web = f"{API}/repos/{full}", f"{WEB}/{full}"
    return {"id": REPO_ID, "node_id": f"R_{REPO_ID}", "name": gh.name, "full_name": full, "private": False,
            "owner": user_json(gh.owner), "html_url": web, "description": None, "fork": False, "url": api,
            **{f"{key}_url": api + suffix for key, suffix in REPO_URLS.items()},
            "git_url": f"git://github.test/{full}.git", "ssh_url": f"git@github.test:{full}.git",
            "clone_url": f"{web}.git", "svn_url": web, "mirror_url": None, "homepage": None, "language": "Python",
            "size": 1, "forks": 0, "forks_count": 0, "stargazers_count": 0, "watchers": 0, "watchers_count": 0,
            "open_issues": len(gh.issues), "open_issues_count": len(gh.issues), "license": None, "topics": [],
            "visibility": "public", "default_branch": gh.git("symbolic-ref", "--short", "HEAD"), "has_issues": True,
            "has_projects": False, "has_downloads": True, "has_wiki": False, "has_pages": False,
            "has_discussions": False, "archived": False, "disabled": False, "is_template": False,
            "allow_forking": True, "web_commit_signoff_required": False,
            "created_at": gh.started, "updated_at": gh.started, "pushed_at": gh.started}  # fmt: skip


def label_json(gh: GitHubLoopback, name: str) -> dict[str, Any]:
    lid = zlib.crc32(name.encode())
    url = f"{API}/repos/{gh.owner}/{gh.name}/labels/{quote(name)}"
    return {"id": lid, "node_id": f"LA_{lid}", "url": url, "name": name, "color": "ededed", "default": False,
            "description": None, "archived_at": None, "archived_by": None}  # fmt: skip


def rollup(gh: GitHubLoopback, subject: tuple[str, int], url: str) -> dict[str, Any]:
    """The reaction counts GitHub embeds in an issue or comment."""
    contents = [r["content"] for r in gh.reactions.get(subject, [])]
    return {"url": url, "total_count": len(contents), **{c: contents.count(c) for c in REACTIONS}}


def _author(pull: dict[str, Any]) -> str:
    login: str = pull.get("user", {}).get("login", "octocat")  # pull requests a test adds by hand: octocat's
    return login


def issue_json(gh: GitHubLoopback, number: int) -> dict[str, Any]:
    """An issue as REST serves it and webhooks embed it; a pull request seen as an issue has `pull_request`."""
    full = f"{gh.owner}/{gh.name}"
    api = f"{API}/repos/{full}/issues/{number}"
    if number in gh.issues:
        issue = gh.issues[number]
        title, body, author, labels, created = issue.title, issue.body, issue.author, issue.labels, issue.created_at
        html, state = f"{WEB}/{full}/issues/{number}", "open"
    elif number in gh.pulls:
        pull = gh.pulls[number]
        title, body, author, labels = pull["title"], pull.get("body", ""), _author(pull), pull.get("labels", [])
        html, state, created = f"{WEB}/{full}/pull/{number}", pull["state"], pull.get("created_at", gh.started)
    else:
        raise ApiError(404, "Not Found")
    found = {"url": api, "repository_url": f"{API}/repos/{full}", "labels_url": f"{api}/labels{{/name}}",
             "comments_url": f"{api}/comments", "events_url": f"{api}/events", "html_url": html,
             "id": 2_000_000 + number, "node_id": f"I_{number}", "number": number, "title": title,
             "user": user_json(author), "labels": [label_json(gh, n) for n in labels], "state": state,
             "locked": False, "assignee": None, "assignees": [], "milestone": None,
             "comments": len(_thread(gh, number)), "created_at": created, "updated_at": created, "closed_at": None,
             "author_association": association(gh, author), "active_lock_reason": None, "body": body,
             "reactions": rollup(gh, ("issue", number), f"{api}/reactions"), "timeline_url": f"{api}/timeline",
             "performed_via_github_app": None, "state_reason": None}  # fmt: skip
    if number not in gh.issues:
        found["pull_request"] = {"url": f"{API}/repos/{full}/pulls/{number}", "html_url": html,
                                 "diff_url": f"{html}.diff", "patch_url": f"{html}.patch",
                                 "merged_at": None}  # fmt: skip
    return found


def new_comment(gh: GitHubLoopback, number: int, login: str, body: str) -> dict[str, Any]:
    """A new comment by `login` on issue or pull request `number` (not yet in its thread)."""
    cid, created, full = gh.new_id(), now(), f"{gh.owner}/{gh.name}"
    page = "issues" if number in gh.issues else "pull"
    return {"url": f"{API}/repos/{full}/issues/comments/{cid}",
            "html_url": f"{WEB}/{full}/{page}/{number}#issuecomment-{cid}",
            "issue_url": f"{API}/repos/{full}/issues/{number}", "id": cid, "node_id": f"IC_{cid}",
            "user": user_json(login), "created_at": created, "updated_at": created,
            "author_association": association(gh, login), "body": body, "performed_via_github_app": None}  # fmt: skip


def _branch(gh: GitHubLoopback, ref: str, sha: str) -> dict[str, Any]:
    return {"label": f"{gh.owner}:{ref}", "ref": ref, "sha": sha, "user": user_json(gh.owner), "repo": repo_json(gh)}


def pull_full(gh: GitHubLoopback, number: int) -> dict[str, Any]:
    """A pull request as `GET /pulls/{n}` serves it and webhooks embed it (head and base SHAs resolved)."""
    if number not in gh.pulls:
        raise ApiError(404, "Not Found")
    pull, full = gh.pulls[number], f"{gh.owner}/{gh.name}"
    api, html, created = f"{API}/repos/{full}/pulls/{number}", f"{WEB}/{full}/pull/{number}", pull.get("created_at")
    head, base = pull["head"]["ref"], pull["base"]["ref"]
    links = {"self": api, "html": html, "issue": f"{API}/repos/{full}/issues/{number}",
             "comments": f"{API}/repos/{full}/issues/{number}/comments", "review_comments": f"{api}/comments",
             "review_comment": f"{API}/repos/{full}/pulls/comments{{/number}}", "commits": f"{api}/commits",
             "statuses": f"{API}/repos/{full}/statuses/{gh._sha(head)}"}  # fmt: skip
    return {"url": api, "id": 3_000_000 + number, "node_id": f"PR_{number}", "html_url": html,
            "diff_url": f"{html}.diff", "patch_url": f"{html}.patch", "issue_url": links["issue"], "number": number,
            "state": pull["state"], "locked": False, "title": pull["title"], "user": user_json(_author(pull)),
            "body": pull.get("body", ""), "created_at": created or gh.started, "updated_at": created or gh.started,
            "closed_at": None, "merged_at": None, "merge_commit_sha": None, "assignee": None, "assignees": [],
            "requested_reviewers": [], "requested_teams": [],
            "labels": [label_json(gh, n) for n in pull.get("labels", [])], "milestone": None,
            "draft": pull.get("draft", False), "commits_url": links["commits"],
            "review_comments_url": links["review_comments"], "review_comment_url": links["review_comment"],
            "comments_url": links["comments"], "statuses_url": links["statuses"],
            "head": _branch(gh, head, gh._sha(head)), "base": _branch(gh, base, gh._sha(base)),
            "_links": {key: {"href": href} for key, href in links.items()},
            "author_association": association(gh, _author(pull)), "auto_merge": None, "active_lock_reason": None,
            "comments": len(pull.get("comments", [])),
            "review_comments": len(gh.review_comments.get(number, []))}  # fmt: skip


def review_json(gh: GitHubLoopback, number: int, login: str, state: str, body: str, commit: str) -> dict[str, Any]:
    """A submitted review as REST serves it (`state` in capitals, as REST spells it)."""
    rid, full = gh.new_id(), f"{gh.owner}/{gh.name}"
    api, html = f"{API}/repos/{full}/pulls/{number}", f"{WEB}/{full}/pull/{number}#pullrequestreview-{rid}"
    return {"id": rid, "node_id": f"PRR_{rid}", "user": user_json(login), "body": body, "state": state,
            "html_url": html, "pull_request_url": api, "author_association": association(gh, login),
            "_links": {"html": {"href": html}, "pull_request": {"href": api}}, "submitted_at": now(),
            "commit_id": commit}  # fmt: skip


def diff_hunk(gh: GitHubLoopback, base: str, head: str, path: str, line: int) -> tuple[str, int | None]:
    """What GitHub shows above a line comment: the file's diff from the line's hunk header down to the line,
    and the line's `position` (lines below the file's first `@@`). Outside the diff: a one-line hunk, no position."""
    try:
        lines = gh.git("diff", base, head, "--", path).splitlines()
    except ApiError:  # a commit git does not have: no diff to quote
        lines = []
    first = next((i for i, text in enumerate(lines) if text.startswith("@@")), len(lines))
    header, new = first, 0
    for i in range(first, len(lines)):
        text = lines[i]
        if (hunk := HUNK.match(text)) is not None:
            header, new = i, int(hunk[1]) - 1
        elif not text.startswith(("-", "\\")):
            new += 1
            if new == line:
                return "\n".join(lines[header : i + 1]), i - first
    return f"@@ -{line},1 +{line},1 @@", None


def review_comment(
    gh: GitHubLoopback, number: int, review_id: int, base_head: tuple[str, str], login: str, spec: tuple[str, int, str]
) -> dict[str, Any]:
    """A review's line comment `spec` = (path, line, body) on the right side of the diff `base_head`."""
    (path, line, body), cid, created, full = spec, gh.new_id(), now(), f"{gh.owner}/{gh.name}"
    hunk, position = diff_hunk(gh, *base_head, path, line)
    api, pr_api = f"{API}/repos/{full}/pulls/comments/{cid}", f"{API}/repos/{full}/pulls/{number}"
    html = f"{WEB}/{full}/pull/{number}#discussion_r{cid}"
    return {"url": api, "pull_request_review_id": review_id, "id": cid, "node_id": f"PRRC_{cid}", "diff_hunk": hunk,
            "path": path, "position": position, "original_position": position or line, "commit_id": base_head[1],
            "original_commit_id": base_head[1], "user": user_json(login), "body": body, "created_at": created,
            "updated_at": created, "html_url": html, "pull_request_url": pr_api,
            "author_association": association(gh, login), "start_line": None, "original_start_line": None,
            "start_side": None, "line": line, "original_line": line, "side": "RIGHT", "subject_type": "line",
            "_links": {"self": {"href": api}, "html": {"href": html}, "pull_request": {"href": pr_api}}}  # fmt: skip


# --- handlers: one small function per endpoint --------------------------------------------------


def get_repo(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    return 200, {**repo_json(gh), "permissions": {"admin": False, "push": True, "pull": True}}


def get_issue(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    return 200, issue_json(gh, int(m["n"]))


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
    comment = new_comment(gh, int(m["n"]), BOT, body["body"])
    thread.append(comment)
    return 201, comment


def _find_comment(gh: GitHubLoopback, comment_id: int) -> dict[str, Any]:
    threads = [i.comments for i in gh.issues.values()] + [p.get("comments", []) for p in gh.pulls.values()]
    found: dict[str, Any] | None = next((c for thread in threads for c in thread if c["id"] == comment_id), None)
    if found is None:
        raise ApiError(404, "Not Found")
    return found


def _reactions(gh: GitHubLoopback, m: re.Match[str]) -> list[dict[str, Any]]:
    """The reactions to the comment or issue the path names (404 when it does not exist)."""
    if m.groupdict().get("id") is not None:
        subject = ("comment", _find_comment(gh, int(m["id"]))["id"])
    else:
        subject = ("issue", int(m["n"]))
        _thread(gh, subject[1])
    return gh.reactions.setdefault(subject, [])


def list_reactions(gh: GitHubLoopback, m: re.Match[str], query: Any) -> tuple[int, Any]:
    content = (query or {}).get("content")
    return 200, [r for r in _reactions(gh, m) if content in (None, r["content"])]


def create_reaction(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    """GitHub's reactions are idempotent: the same user reacting the same way again gets the first one, 200."""
    if body.get("content") not in REACTIONS:
        raise ApiError(422, "Validation Failed")
    with gh._lock:  # concurrent identical reactions still make one
        found = _reactions(gh, m)
        same = next((r for r in found if r["content"] == body["content"] and r["user"]["login"] == BOT), None)
        if same is not None:
            return 200, same
        rid = gh.new_id()
        reaction = {"id": rid, "node_id": f"REA_{rid}", "user": user_json(BOT), "content": body["content"],
                    "created_at": now()}  # fmt: skip
        found.append(reaction)
    return 201, reaction


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
    """A pull request as listed: what the test or client set, without resolving its branches."""
    pull = {key: value for key, value in gh.pulls[number].items() if key != "comments"}  # served as issue comments
    return {**pull, "number": number, "html_url": f"{WEB}/{gh.owner}/{gh.name}/pull/{number}",
            "user": user_json(_author(pull))}  # fmt: skip


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
        "user": {"login": BOT},
        "created_at": now(),
    }
    return 201, _pull_json(gh, number)


def get_pull(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    return 200, pull_full(gh, int(m["n"]))


def update_pull(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    number = int(m["n"])
    if number not in gh.pulls:
        raise ApiError(404, "Not Found")
    gh.pulls[number].update({k: v for k, v in body.items() if k in ("title", "body")})
    return 200, _pull_json(gh, number)


def list_reviews(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    return 200, gh.reviews.get(int(m["n"]), [])


def create_review(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    """A review by the token's bot; also kept: the request's `event` and `comments` (for tests to read)."""
    number = int(m["n"])
    if number not in gh.pulls:
        raise ApiError(404, "Not Found")
    pull = gh.pulls[number]
    commit = body.get("commit_id") or gh._sha(pull["head"]["ref"])
    state = REVIEW_EVENTS.get(body.get("event") or "", "PENDING")
    review = review_json(gh, number, BOT, state, body.get("body", ""), commit)
    review.update({"event": body.get("event"), "comments": body.get("comments", [])})
    gh.reviews.setdefault(number, []).append(review)
    base_head = (gh._sha(pull["base"]["ref"]), commit)
    specs = [(c["path"], c.get("line") or c.get("position") or 1, c["body"]) for c in review["comments"]]
    gh.review_comments.setdefault(number, []).extend(
        review_comment(gh, number, review["id"], base_head, BOT, spec) for spec in specs
    )
    return 200, review


def list_review_comments(gh: GitHubLoopback, m: re.Match[str], query: Any) -> tuple[int, Any]:
    if int(m["n"]) not in gh.pulls:
        raise ApiError(404, "Not Found")
    return 200, gh.review_comments.get(int(m["n"]), [])


def list_comments_for_review(gh: GitHubLoopback, m: re.Match[str], query: Any) -> tuple[int, Any]:
    number, review_id = int(m["n"]), int(m["review_id"])
    if not any(r["id"] == review_id for r in gh.reviews.get(number, [])):
        raise ApiError(404, "Not Found")
    return 200, [c for c in gh.review_comments.get(number, []) if c["pull_request_review_id"] == review_id]


def get_permission(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    permission = gh.permissions.get(m["user"], "read")
    return 200, {"permission": permission, "role_name": permission, "user": {"login": m["user"]}}


def _commit(gh: GitHubLoopback, sha: str) -> str:
    try:
        return gh._sha(sha)
    except ApiError:
        raise ApiError(422, f"No commit found for SHA: {sha}") from None


def _app_json(gh: GitHubLoopback) -> dict[str, Any]:
    app_id = gh.app[0] if gh.app is not None else 1
    return {"id": app_id, "slug": "forgeflow", "node_id": f"A_{app_id}", "client_id": f"Iv1.{app_id}",
            "owner": user_json(gh.owner), "name": "forgeflow", "description": None,
            "external_url": f"{WEB}/apps/forgeflow", "html_url": f"{WEB}/apps/forgeflow",
            "created_at": gh.started, "updated_at": gh.started,
            "permissions": {"checks": "write", "contents": "write", "issues": "write", "pull_requests": "write",
                            "statuses": "write", "metadata": "read"},
            "events": ["issue_comment", "issues", "pull_request_review"]}  # fmt: skip


def _check_run_json(gh: GitHubLoopback, run: dict[str, Any]) -> dict[str, Any]:
    """A check run as GitHub serves it, with the open pull requests whose head is its commit."""
    full = f"{gh.owner}/{gh.name}"
    url, repo = (
        f"{API}/repos/{full}/check-runs/{run['id']}",
        {"id": REPO_ID, "url": f"{API}/repos/{full}", "name": gh.name},
    )
    pulls = []
    for number, pull in gh.pulls.items():
        head, base = pull["head"]["ref"], pull["base"]["ref"]
        with contextlib.suppress(ApiError):  # a pull request whose branch is gone has no head here
            if pull["state"] != "open" or gh._sha(head) != run["head_sha"]:
                continue
            pulls.append({"id": 3_000_000 + number, "number": number, "url": f"{API}/repos/{full}/pulls/{number}",
                          "head": {"ref": head, "sha": run["head_sha"], "repo": repo},
                          "base": {"ref": base, "sha": gh._sha(base), "repo": repo}})  # fmt: skip
    output = {**run["output"], "annotations_count": 0, "annotations_url": f"{url}/annotations"}
    return {**run, "node_id": f"CR_{run['id']}", "url": url, "html_url": f"{WEB}/{full}/runs/{run['id']}",
            "output": output, "check_suite": {"id": 4_000_000 + run["id"]}, "app": _app_json(gh),
            "pull_requests": pulls}  # fmt: skip


def _set_check_run(gh: GitHubLoopback, run: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """Apply a create or update as GitHub does: a conclusion completes the run, completing needs one;
    each state the run passes through is kept in `check_run_states`."""
    fields = ("name", "details_url", "external_id", "status", "conclusion")
    changed: dict[str, Any] = {**run, **{k: body[k] for k in fields if k in body}}
    changed["output"] = {**run["output"], **{k: v for k, v in (body.get("output") or {}).items() if k != "annotations"}}
    if changed["conclusion"] is not None:
        changed["status"] = "completed"
    valid_conclusion = changed["conclusion"] in (None, *CHECK_CONCLUSIONS)
    complete = changed["status"] != "completed" or changed["conclusion"] is not None
    if changed["status"] not in CHECK_STATUSES or not valid_conclusion or not complete:
        raise ApiError(422, "Validation Failed")
    if changed["status"] == "completed":
        changed["completed_at"] = body.get("completed_at") or run["completed_at"] or now()
    gh.check_runs[run["id"]] = changed
    states = gh.check_run_states.setdefault(run["id"], [])
    states.append((changed["status"], changed["conclusion"], changed["output"].get("summary")))
    return _check_run_json(gh, changed)


def create_check_run(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    run_id, started = gh.new_id(), body.get("started_at") or now()
    run = {"id": run_id, "name": body["name"], "head_sha": _commit(gh, body["head_sha"]), "external_id": "",
           "details_url": None, "status": "queued", "conclusion": None, "started_at": started, "completed_at": None,
           "output": {"title": None, "summary": None, "text": None}}  # fmt: skip
    return 201, _set_check_run(gh, run, body)


def update_check_run(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    run = gh.check_runs.get(int(m["id"]))
    if run is None:
        raise ApiError(404, "Not Found")
    return 200, _set_check_run(gh, run, body)


def list_check_runs(gh: GitHubLoopback, m: re.Match[str], query: Any) -> tuple[int, Any]:
    """Newest first; by default (`filter=latest`) only the newest run of each name, as GitHub lists them."""
    query, sha = query or {}, gh._sha(unquote(m["ref"]))
    runs = [r for r in reversed(gh.check_runs.values()) if r["head_sha"] == sha]
    runs = [
        r for r in runs if query.get("check_name") in (None, r["name"]) and query.get("status") in (None, r["status"])
    ]
    if query.get("filter", "latest") == "latest":
        runs = [r for i, r in enumerate(runs) if r["name"] not in {o["name"] for o in runs[:i]}]
    return 200, {"total_count": len(runs), "check_runs": [_check_run_json(gh, r) for r in runs]}


def create_status(gh: GitHubLoopback, m: re.Match[str], body: Any) -> tuple[int, Any]:
    sha = _commit(gh, m["sha"])
    if body.get("state") not in COMMIT_STATES:
        raise ApiError(422, "Validation Failed")
    sid, created = gh.new_id(), now()
    status = {"url": f"{API}/repos/{gh.owner}/{gh.name}/statuses/{sha}", "avatar_url": user_json(BOT)["avatar_url"],
              "id": sid, "node_id": f"SC_{sid}", "state": body["state"], "description": body.get("description"),
              "target_url": body.get("target_url"), "context": body.get("context") or "default",
              "created_at": created, "updated_at": created, "creator": user_json(BOT)}  # fmt: skip
    gh.statuses.setdefault(sha, []).append(status)
    return 201, status


def list_statuses(gh: GitHubLoopback, m: re.Match[str], query: Any) -> tuple[int, Any]:
    return 200, list(reversed(gh.statuses.get(gh._sha(unquote(m["ref"])), [])))


ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", ""): get_repo,
    ("GET", r"/issues/(?P<n>\d+)"): get_issue,
    ("GET", r"/issues/(?P<n>\d+)/comments"): list_comments,
    ("POST", r"/issues/(?P<n>\d+)/comments"): create_comment,
    ("GET", r"/issues/comments/(?P<id>\d+)/reactions"): list_reactions,
    ("POST", r"/issues/comments/(?P<id>\d+)/reactions"): create_reaction,
    ("GET", r"/issues/(?P<n>\d+)/reactions"): list_reactions,
    ("POST", r"/issues/(?P<n>\d+)/reactions"): create_reaction,
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
    ("GET", r"/pulls/(?P<n>\d+)/reviews/(?P<review_id>\d+)/comments"): list_comments_for_review,
    ("GET", r"/pulls/(?P<n>\d+)/comments"): list_review_comments,
    ("POST", r"/check-runs"): create_check_run,
    ("PATCH", r"/check-runs/(?P<id>\d+)"): update_check_run,
    ("GET", r"/commits/(?P<ref>.+)/check-runs"): list_check_runs,
    ("POST", r"/statuses/(?P<sha>[^/]+)"): create_status,
    ("GET", r"/commits/(?P<ref>.+)/statuses"): list_statuses,
}
APP_ONLY = {create_check_run, update_check_run}  # GitHub lets only GitHub Apps write check runs

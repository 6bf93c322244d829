"""GitHub's JSON, one builder per object kind, as REST serves them and webhooks embed them.

Each builder reads the loopback's state and returns a plain dict in GitHub's own shape: users, the
repository, labels, issues, comments, pull requests, reviews and their line comments, check runs.
Also here, as every GitHub module needs them: the hosts' URLs, `now()` and `ApiError`.
"""

from __future__ import annotations

import contextlib
import re
import zlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from testkit.loopback.github_api import GitHubLoopback

WEB, API = "https://github.test", "https://api.github.test"
REPO_ID = 1
BOT = "forgeflow[bot]"  # who the loopback's tokens act as
REACTIONS = ("+1", "-1", "laugh", "confused", "heart", "hooray", "rocket", "eyes")
HUNK = re.compile(r"@@ -\S+ \+(\d+)")  # a hunk header, and the first line it shows of the new file


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An error GitHub answers with: `status`, `{"message": ..., "documentation_url": ...}` and `headers`."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


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


def pull_author(pull: dict[str, Any]) -> str:
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
        title, body, author, labels = pull["title"], pull.get("body", ""), pull_author(pull), pull.get("labels", [])
        html, state, created = f"{WEB}/{full}/pull/{number}", pull["state"], pull.get("created_at", gh.started)
    else:
        raise ApiError(404, "Not Found")
    found = {"url": api, "repository_url": f"{API}/repos/{full}", "labels_url": f"{api}/labels{{/name}}",
             "comments_url": f"{api}/comments", "events_url": f"{api}/events", "html_url": html,
             "id": 2_000_000 + number, "node_id": f"I_{number}", "number": number, "title": title,
             "user": user_json(author), "labels": [label_json(gh, n) for n in labels], "state": state,
             "locked": False, "assignee": None, "assignees": [], "milestone": None,
             "comments": len(gh.conversation(number)), "created_at": created, "updated_at": created, "closed_at": None,
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


def pull_json(gh: GitHubLoopback, number: int) -> dict[str, Any]:
    """A pull request as listed: what the test or client set, without resolving its branches."""
    pull = {key: value for key, value in gh.pulls[number].items() if key != "comments"}  # served as issue comments
    return {**pull, "number": number, "html_url": f"{WEB}/{gh.owner}/{gh.name}/pull/{number}",
            "user": user_json(pull_author(pull))}  # fmt: skip


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
             "statuses": f"{API}/repos/{full}/statuses/{gh.resolve(head)}"}  # fmt: skip
    return {"url": api, "id": 3_000_000 + number, "node_id": f"PR_{number}", "html_url": html,
            "diff_url": f"{html}.diff", "patch_url": f"{html}.patch", "issue_url": links["issue"], "number": number,
            "state": pull["state"], "locked": False, "title": pull["title"], "user": user_json(pull_author(pull)),
            "body": pull.get("body", ""), "created_at": created or gh.started, "updated_at": created or gh.started,
            "closed_at": None, "merged_at": None, "merge_commit_sha": None, "assignee": None, "assignees": [],
            "requested_reviewers": [], "requested_teams": [],
            "labels": [label_json(gh, n) for n in pull.get("labels", [])], "milestone": None,
            "draft": pull.get("draft", False), "commits_url": links["commits"],
            "review_comments_url": links["review_comments"], "review_comment_url": links["review_comment"],
            "comments_url": links["comments"], "statuses_url": links["statuses"],
            "head": _branch(gh, head, gh.resolve(head)), "base": _branch(gh, base, gh.resolve(base)),
            "_links": {key: {"href": href} for key, href in links.items()},
            "author_association": association(gh, pull_author(pull)), "auto_merge": None, "active_lock_reason": None,
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


def _app_json(gh: GitHubLoopback) -> dict[str, Any]:
    app_id = gh.app[0] if gh.app is not None else 1
    return {"id": app_id, "slug": "forgeflow", "node_id": f"A_{app_id}", "client_id": f"Iv1.{app_id}",
            "owner": user_json(gh.owner), "name": "forgeflow", "description": None,
            "external_url": f"{WEB}/apps/forgeflow", "html_url": f"{WEB}/apps/forgeflow",
            "created_at": gh.started, "updated_at": gh.started,
            "permissions": {"checks": "write", "contents": "write", "issues": "write", "pull_requests": "write",
                            "statuses": "write", "metadata": "read"},
            "events": ["issue_comment", "issues", "pull_request_review"]}  # fmt: skip


def check_run_json(gh: GitHubLoopback, run: dict[str, Any]) -> dict[str, Any]:
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
            if pull["state"] != "open" or gh.resolve(head) != run["head_sha"]:
                continue
            pulls.append({"id": 3_000_000 + number, "number": number, "url": f"{API}/repos/{full}/pulls/{number}",
                          "head": {"ref": head, "sha": run["head_sha"], "repo": repo},
                          "base": {"ref": base, "sha": gh.resolve(base), "repo": repo}})  # fmt: skip
    output = {**run["output"], "annotations_count": 0, "annotations_url": f"{url}/annotations"}
    return {**run, "node_id": f"CR_{run['id']}", "url": url, "html_url": f"{WEB}/{full}/runs/{run['id']}",
            "output": output, "check_suite": {"id": 4_000_000 + run["id"]}, "app": _app_json(gh),
            "pull_requests": pulls}  # fmt: skip
